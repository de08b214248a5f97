# Owner(s): ["module: tests"]
"""Every public component of the patch set inside the rest of PyTorch.

For each component: ``torch.compile`` (``backend="eager"`` and ``"aot_eager"``,
``fullgraph=True`` where tracing through is natural), ``fork`` (raw ``os.fork``
and ``DataLoader`` workers), ``spawn`` with decorated module-level functions,
two real ``gloo`` ranks, and a quiet ``import torch``.

Every test that starts a process bounds it with a hard timeout and kills it
past that, so nothing here can hang CI.
"""

import contextlib
import importlib.util
import json
import multiprocessing
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import unittest
import urllib.request
import warnings
from unittest import mock

import numpy as np

import torch
import torch._dynamo
import torch.distributed as dist
import torch.utils.telemetry
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    IS_WINDOWS,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils.auto_tensorize import auto_tensorize, to_tensor
from torch.utils.dry_run import dry_run, skippable
from torch.utils.error_callback import error_callback
from torch.utils.telemetry import telemetry


HAS_TIMEOUT = importlib.util.find_spec("torch.utils.timeout") is not None
HAS_RETRY = importlib.util.find_spec("torch.utils.retry") is not None
NO_TIMEOUT = "torch.utils.timeout is not in this build (its PR is not applied)"
NO_RETRY = "torch.utils.retry is not in this build (its PR is not applied)"

# Hard limit, in seconds, for every child process started here.
HARD_LIMIT = 60.0

# What the compile tests found: component -> (graphs, graph breaks, break reasons, fullgraph) (see
# TestGraphBreakTable, which prints them as the table in RFC.md).
GRAPH_BREAKS: dict[str, tuple[int, int, int, str]] = {}


# Module-level functions wrapped by each decorator: spawn workers and pickle
# must find them by reference.
@torch.cuda.safe_run
def safe_double(x):
    return x * 2


@torch.cuda.min_free_vram(0)
def guarded_double(x):
    return x * 2


@telemetry
def timed_double(x):
    return x * 2


@auto_tensorize
def tensorized_double(x):
    return x * 2


@skippable
def skippable_double(x):
    return x * 2


@torch._accelerator.DeviceContext("cpu")
def on_cpu_ones(n):
    return torch.ones(n) * 2


DECORATED = {
    "safe_run": safe_double,
    "telemetry": timed_double,
    "auto_tensorize": tensorized_double,
    "skippable": skippable_double,
    "DeviceContext": on_cpu_ones,
}

if HAS_TIMEOUT:
    from torch.utils.timeout import timeout

    @timeout(30.0)
    def bounded_double(x):
        return x * 2

    DECORATED["timeout"] = bounded_double

if HAS_RETRY:
    from torch.utils.retry import retry

    @retry(attempts=2)
    def retried_double(x):
        return x * 2

    DECORATED["retry"] = retried_double


def _call_decorated(name):
    fn = DECORATED[name]
    arg = 3 if name == "DeviceContext" else torch.arange(3.0)
    out = fn(arg)
    return name, out.tolist(), os.getpid()


def _count_breaks(name, fn, *args):
    """Record, for the table in RFC.md, dynamo's graphs and graph breaks for ``fn`` and whether fullgraph holds."""
    torch._dynamo.reset()
    explained = torch._dynamo.explain(fn)(*args)
    torch._dynamo.reset()
    try:
        torch.compile(fn, backend="eager", fullgraph=True)(*args)
        fullgraph = "yes"
    except torch._dynamo.exc.Unsupported:
        fullgraph = "no"
    finally:
        torch._dynamo.reset()
    GRAPH_BREAKS[name] = (explained.graph_count, max(explained.graph_break_count, 0), len(explained.break_reasons), fullgraph)
    return explained.graph_break_count


@contextlib.contextmanager
def _cuda_memory_check_passes():
    """The memory guards' check, recorded instead of asking a GPU this machine may not have."""
    with mock.patch("torch.cuda._memory_guard._check_free_memory") as check:
        yield check


def _run_child(target, limit=HARD_LIMIT):
    """Fork, run ``target()`` in the child, return what it returned (JSON) or raise; kill it past ``limit``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_fd)
            payload = {"ok": target()}
        except BaseException as e:  # noqa: B036 - everything must reach the parent
            payload = {"error": f"{type(e).__name__}: {e}"}
            code = 1
        try:
            os.write(write_fd, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks, deadline = [], time.monotonic() + limit
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"forked child did not finish within {limit} s")
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    payload = json.loads(b"".join(chunks) or b'{"error": "child died without a result"}')
    if "error" in payload:
        raise AssertionError(f"forked child failed: {payload['error']}")
    return payload["ok"]


class CompileCase(TestCase):
    def setUp(self):
        super().setUp()
        torch._dynamo.reset()
        torch.utils.telemetry.reset()

    def tearDown(self):
        torch._dynamo.reset()
        torch.utils.telemetry.reset()
        super().tearDown()

    def check_compiled(self, fn, *args, backend, fullgraph=False):
        expected = fn(*args)
        torch._dynamo.reset()
        actual = torch.compile(fn, backend=backend, fullgraph=fullgraph)(*args)
        self.assertEqual(actual, expected, exact_dtype=True)
        return actual


@instantiate_parametrized_tests
class TestCompileTraced(CompileCase):
    """Components that trace through: ``fullgraph=True`` holds, zero graph breaks."""

    @parametrize("backend", ["eager", "aot_eager"])
    def test_autocast_no_argument_form(self, backend):
        def fn(x):
            with torch.amp.autocast():
                return x @ x

        out = self.check_compiled(fn, torch.randn(4, 4), backend=backend, fullgraph=True)
        self.assertEqual(out.dtype, torch.bfloat16)
        self.assertEqual(_count_breaks("torch.amp.autocast()", fn, torch.randn(4, 4)), 0)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_to_tensor_of_a_tensor(self, backend):
        def fn(x):
            return to_tensor(x) + 1

        self.check_compiled(fn, torch.arange(4.0), backend=backend, fullgraph=True)
        self.assertEqual(_count_breaks("to_tensor(tensor)", fn, torch.arange(4.0)), 0)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_auto_tensorize_decorated_with_tensor_args(self, backend):
        self.check_compiled(tensorized_double, torch.arange(4.0), backend=backend)
        _count_breaks("auto_tensorize", tensorized_double, torch.arange(4.0))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_dry_run_and_skippable(self, backend):
        def fn(x):
            return skippable_double(x) + 1

        self.check_compiled(fn, torch.arange(4.0), backend=backend)
        _count_breaks("skippable", fn, torch.arange(4.0))

        def in_dry_run(x):
            with dry_run():
                y = skippable_double(x)
            return x + (0 if y is None else 1)

        self.check_compiled(in_dry_run, torch.arange(4.0), backend=backend)
        _count_breaks("dry_run", in_dry_run, torch.arange(4.0))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_accelerator_queries(self, backend):
        def fn(x):
            return x.to(torch._accelerator.current_device()) + 1

        self.check_compiled(fn, torch.arange(4.0), backend=backend)
        _count_breaks("current_device", fn, torch.arange(4.0))


@instantiate_parametrized_tests
class TestCompileDeviceContext(CompileCase):
    """``DeviceContext``: its default device and autocast trace (patches/0003), ``fullgraph=True`` holds."""

    @parametrize("backend", ["eager", "aot_eager"])
    def test_context_manager_inside(self, backend):
        def fn(x):
            with torch._accelerator.DeviceContext("cpu", amp=True):
                return x @ torch.ones(4, 4)

        out = self.check_compiled(fn, torch.randn(4, 4), backend=backend, fullgraph=True)
        self.assertEqual(out.dtype, torch.bfloat16)
        self.assertEqual(_count_breaks("DeviceContext (with)", fn, torch.randn(4, 4)), 0)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_context_made_outside(self, backend):
        ctx = torch._accelerator.DeviceContext("meta")

        def fn(n):
            with ctx:
                return torch.ones(n) * 2

        out = torch.compile(fn, backend=backend, fullgraph=True)(3)
        self.assertEqual((out.device.type, out.shape), ("meta", (3,)))
        self.assertEqual(_count_breaks("DeviceContext (made outside)", fn, 3), 0)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_decorated_function(self, backend):
        out = self.check_compiled(on_cpu_ones, 3, backend=backend, fullgraph=True)
        self.assertEqual(out.device, torch.device("cpu"))
        self.assertEqual(_count_breaks("DeviceContext (decorator)", on_cpu_ones, 3), 0)


@instantiate_parametrized_tests
class TestCompileExcluded(CompileCase):
    """Host-side wrappers excluded from tracing: no crash, eager result, the wrapped body still runs."""

    @parametrize("backend", ["eager", "aot_eager"])
    def test_safe_run(self, backend):
        self.check_compiled(safe_double, torch.arange(4.0), backend=backend)
        _count_breaks("safe_run", safe_double, torch.arange(4.0))

        def inside(x):
            return torch.cuda.safe_run(torch.sin)(x) + 1

        self.check_compiled(inside, torch.arange(4.0), backend=backend)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_safe_run_recovers_under_compile(self, backend):
        calls = []

        @torch.cuda.safe_run(fallback_to_cpu=False, use_autocast_on_oom=False)
        def flaky(x):
            calls.append(1)
            if len(calls) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")
            return x + 1

        with mock.patch("torch.cuda._safe_run.clear_cache", return_value=0):
            out = torch.compile(flaky, backend=backend)(torch.arange(3.0))
        self.assertEqual(out, torch.arange(3.0) + 1)
        self.assertEqual(len(calls), 2)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_memory_guards(self, backend):
        with _cuda_memory_check_passes() as check:
            self.check_compiled(guarded_double, torch.arange(4.0), backend=backend)

            def inside(x):
                with torch.cuda.min_free_vram("1GiB"):
                    y = x * 2
                torch.cuda.assert_free_memory(0)
                return y

            self.check_compiled(inside, torch.arange(4.0), backend=backend)
            _count_breaks("min_free_vram", guarded_double, torch.arange(4.0))
        # The check ran eagerly on every call, compiled or not.
        self.assertGreaterEqual(check.call_count, 6)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_clear_cache(self, backend):
        def fn(x):
            torch.cuda.clear_cache()
            return x + 1

        self.check_compiled(fn, torch.arange(4.0), backend=backend)
        _count_breaks("clear_cache", fn, torch.arange(4.0))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_telemetry(self, backend):
        self.check_compiled(timed_double, torch.arange(4.0), backend=backend)
        _count_breaks("telemetry (decorator)", timed_double, torch.arange(4.0))

        def block(x):
            with telemetry("block"):
                return x * 3

        self.check_compiled(block, torch.arange(4.0), backend=backend)
        _count_breaks("telemetry (with)", block, torch.arange(4.0))
        # The host-side timing ran eagerly on every call, compiled or not.
        stats = torch.utils.telemetry.snapshot()
        self.assertGreaterEqual(stats["timed_double"]["count"], 2)
        self.assertGreaterEqual(stats["block"]["count"], 2)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_error_callback(self, backend):
        seen = []

        def fn(x):
            with error_callback(lambda exc, info: seen.append(type(exc))):
                return x + 1

        self.check_compiled(fn, torch.arange(4.0), backend=backend)
        _count_breaks("error_callback (with)", fn, torch.arange(4.0))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_dashboard_serving_while_compiled_code_runs(self, backend):
        from torch.utils.dashboard import live_dashboard

        with live_dashboard() as board:
            self.check_compiled(timed_double, torch.arange(4.0), backend=backend)
            with urllib.request.urlopen(board.url + "api/stats", timeout=10) as response:
                self.assertEqual(response.status, 200)
        self.assertFalse(board.running)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_patch_numpy(self, backend):
        from torch.utils.patch_numpy import patch_numpy

        lib = types.ModuleType("lib")
        exec("import numpy as np\ndef energy(x):\n    return np.sum(x * x)", vars(lib))

        def fn(x):
            return x + 1

        with warnings.catch_warnings():
            # "CuPy is not installed, so NumPy calls keep running on NumPy": expected here.
            warnings.filterwarnings("ignore", "patch_numpy", UserWarning)
            with patch_numpy(lib):
                self.check_compiled(fn, torch.arange(4.0), backend=backend)
                self.assertEqual(float(lib.energy(np.array([1.0, 2.0]))), 5.0)

    @parametrize("backend", ["eager", "aot_eager"])
    @parametrize("form", ["decorator", "with"])
    def test_timeout(self, backend, form):
        if not HAS_TIMEOUT:
            self.skipTest(NO_TIMEOUT)
        if form == "decorator":
            self.check_compiled(bounded_double, torch.arange(4.0), backend=backend)
            _count_breaks("timeout (decorator)", bounded_double, torch.arange(4.0))
        else:

            def fn(x):
                with timeout(30.0):
                    return x * 2

            self.check_compiled(fn, torch.arange(4.0), backend=backend)
            _count_breaks("timeout (with)", fn, torch.arange(4.0))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_timeout_fires_under_compile(self, backend):
        if not HAS_TIMEOUT:
            self.skipTest(NO_TIMEOUT)

        # Long enough for the first call's compile on a loaded 2-core machine.
        @timeout(5.0)
        def slow(seconds):
            time.sleep(seconds.item())
            return seconds + 1

        compiled = torch.compile(slow, backend=backend)
        with warnings.catch_warnings():
            # The compiled body breaks the graph at time.sleep, which dynamo warns about.
            warnings.filterwarnings("ignore", "Dynamo does not know how to trace the builtin", UserWarning)
            # Compile first, within the deadline; then the same graphs overrun it.
            self.assertEqual(compiled(torch.tensor(0.0)), torch.tensor(1.0))
            with self.assertRaises(TimeoutError):
                compiled(torch.tensor(60.0))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_timeout_expiring_while_dynamo_compiles(self, backend):
        # Deadlines spread over a compile.  An interrupt inside the compile would leave
        # Dynamo's global state inconsistent (a pending-callback counter, caches), so it
        # waits for the compile to end; one dropped by Python in a weakref callback is
        # raised again.  Every block raises, and Dynamo stays usable.
        if not HAS_TIMEOUT:
            self.skipTest(NO_TIMEOUT)

        def fn(x):
            return (x.sin() + x.cos()).relu() * 2

        compiled = torch.compile(fn, backend=backend)
        compiled(torch.randn(8))  # imports and caches warm
        not_interrupted, dropped = [], []
        # Python reports each dropped interrupt as "Exception ignored"; keep them out of the log.
        with mock.patch.object(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type)):
            for k in range(1, 13):
                torch._dynamo.reset()
                try:
                    with timeout(0.005 * k):
                        compiled(torch.randn(8))
                        end = time.monotonic() + 2.0
                        while time.monotonic() < end:
                            pass
                    not_interrupted.append(0.005 * k)
                except TimeoutError:
                    pass
        self.assertEqual(not_interrupted, [])
        torch._dynamo.reset()  # raised "Cannot clear callbacks while 1 are pending" when a compile was cut short
        self.assertEqual(compiled(torch.ones(8)), fn(torch.ones(8)))

    @parametrize("backend", ["eager", "aot_eager"])
    def test_retry(self, backend):
        if not HAS_RETRY:
            self.skipTest(NO_RETRY)
        self.check_compiled(retried_double, torch.arange(4.0), backend=backend)
        _count_breaks("retry", retried_double, torch.arange(4.0))
        calls = []

        @retry(attempts=3, exceptions=ValueError)
        def flaky(x):
            calls.append(1)
            if len(calls) < 2:
                raise ValueError("transient")
            return x + 1

        self.assertEqual(torch.compile(flaky, backend=backend)(torch.zeros(2)), torch.ones(2))


class TestGraphBreakTable(TestCase):
    def test_zzz_print_table(self):
        # Runs last in this file (alphabetical classes under pytest as well as
        # unittest); prints what the compile tests of this run collected.
        if GRAPH_BREAKS:
            width = max(map(len, GRAPH_BREAKS))
            print(f"\n{'component':<{width}}  graphs  breaks  reasons  fullgraph=True")
            for name, (graphs, breaks, reasons, fullgraph) in sorted(GRAPH_BREAKS.items()):
                print(f"{name:<{width}}  {graphs:>6}  {breaks:>6}  {reasons:>7}  {fullgraph}")


def _telemetry_in_child():
    timed_double(torch.ones(2))
    return torch.utils.telemetry.snapshot()["timed_double"]["count"]


def _hold_lock_while_forking(lock, target):
    """Fork while another thread holds ``lock``: what a DataLoader fork can catch."""
    held, release = threading.Event(), threading.Event()

    def holder():
        with lock:
            held.set()
            release.wait(HARD_LIMIT)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(HARD_LIMIT)
    try:
        return _run_child(target)
    finally:
        release.set()
        thread.join()


@unittest.skipIf(IS_WINDOWS, "os.fork")
class TestFork(TestCase):
    """A child forked after the parent used a component gets a working one."""

    def test_telemetry_state_and_half_held_lock(self):
        timed_double(torch.ones(2))
        self.assertEqual(_hold_lock_while_forking(torch.utils.telemetry._lock, _telemetry_in_child), 1)
        # The parent's own statistics are untouched by the child.
        self.assertGreaterEqual(torch.utils.telemetry.snapshot()["timed_double"]["count"], 1)
        torch.utils.telemetry.reset()

    def test_patch_numpy_half_held_lock(self):
        import torch.utils.patch_numpy as patch_numpy_module

        lib = types.ModuleType("lib")
        exec("import numpy as np\ndef energy(x):\n    return np.sum(x * x)", vars(lib))

        def child():
            with patch_numpy_module.patch_numpy(lib):
                return float(lib.energy(np.array([1.0, 2.0])))

        with warnings.catch_warnings():
            # "CuPy is not installed, so NumPy calls keep running on NumPy": expected here.
            warnings.filterwarnings("ignore", "patch_numpy", UserWarning)
            with patch_numpy_module.patch_numpy(lib):
                lib.energy(np.ones(2))
            self.assertEqual(_hold_lock_while_forking(patch_numpy_module._lock, child), 5.0)

    def test_dashboard_server(self):
        from torch.utils.dashboard import live_dashboard

        def child():
            # The parent's server thread does not exist here; the child can
            # start and stop its own.
            with live_dashboard() as own:
                with urllib.request.urlopen(own.url + "api/stats", timeout=10) as response:
                    status = response.status
            return [status, own.running]

        with live_dashboard() as board:
            self.assertEqual(_run_child(child), [200, False])
            with urllib.request.urlopen(board.url + "api/stats", timeout=10) as response:
                self.assertEqual(response.status, 200)

    @unittest.skipIf(not HAS_TIMEOUT, NO_TIMEOUT)
    def test_timeout_watchdog(self):
        def in_thread(seconds, sleep):
            result = []

            def body():
                try:
                    with timeout(seconds):
                        # Short sleeps: a non-main thread is interrupted between
                        # bytecodes, not inside one long sleep.
                        for _ in range(int(sleep / 0.01)):
                            time.sleep(0.01)
                    result.append("finished")
                except TimeoutError:
                    result.append("timed out")

            thread = threading.Thread(target=body)
            thread.start()
            thread.join(HARD_LIMIT)
            return result

        # The parent runs the watchdog (a timeout in a non-main thread) and a
        # signal-mode timeout (main thread) before forking.
        self.assertEqual(in_thread(0.05, 2), ["timed out"])
        with timeout(30.0):
            pass

        def child():
            seen = in_thread(0.05, 2)
            try:
                with timeout(0.05):
                    time.sleep(2)
                seen.append("finished")
            except TimeoutError:
                seen.append("timed out")
            return seen

        self.assertEqual(_run_child(child), ["timed out", "timed out"])
        self.assertEqual(in_thread(0.05, 2), ["timed out"])


class _WorkDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        with telemetry("load"):
            if HAS_TIMEOUT:
                with timeout(30.0):
                    value = torch.tensor(float(index))
            else:
                value = torch.tensor(float(index))
        info = torch.utils.data.get_worker_info()
        return value, torch.utils.telemetry.snapshot()["load"]["count"], info.id


@unittest.skipIf(IS_WINDOWS, "fork start method")
class TestDataLoaderWorkers(TestCase):
    def test_fork_workers_use_timeout_and_telemetry(self):
        # The parent used both first, so the workers inherit their state.
        with telemetry("load"):
            pass
        if HAS_TIMEOUT:
            with timeout(30.0):
                pass
        loader = torch.utils.data.DataLoader(
            _WorkDataset(), batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=HARD_LIMIT
        )
        values, counts = [], {}
        for value, calls, worker in loader:
            values.append(value.item())
            counts[int(worker)] = max(counts.get(int(worker), 0), int(calls))
        self.assertEqual(sorted(values), [float(i) for i in range(8)])
        # Each worker started from empty statistics (reset at fork) and counted its own 4 items.
        self.assertEqual(counts, {0: 4, 1: 4})
        torch.utils.telemetry.reset()


class TestSpawnPickling(TestCase):
    def test_decorated_functions_pickle_by_reference(self):
        for name, fn in DECORATED.items():
            with self.subTest(name):
                data = pickle.dumps(fn)
                self.assertIn(fn.__name__.encode(), data)
                self.assertIs(pickle.loads(data), fn)

    def test_spawn_pool_runs_every_decorated_function(self):
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            pending = pool.map_async(_call_decorated, sorted(DECORATED))
            results = pending.get(timeout=HARD_LIMIT)
        for name, values, pid in results:
            with self.subTest(name):
                self.assertNotEqual(pid, os.getpid())
                expected = [2.0, 2.0, 2.0] if name == "DeviceContext" else [0.0, 2.0, 4.0]
                self.assertEqual(values, expected)
        self.assertEqual(sorted(name for name, _, _ in results), sorted(DECORATED))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_rank(rank, world_size, port, results):
    """One rank of TestDistributed: rank 0 hits an injected OOM under safe_run, rank 1 times out."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import datetime

    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=30))
    seen = {"rank": rank}
    try:
        reports = []
        with error_callback(lambda exc, info: reports.append(info["source"])):
            if rank == 0:
                calls = []

                @torch.cuda.safe_run(max_cuda_retries=1, use_autocast_on_oom=False)
                def step(x):
                    calls.append(1)
                    if len(calls) <= 2:
                        raise torch.OutOfMemoryError("CUDA out of memory (injected)")
                    return x + 1

                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    out = step(torch.zeros(2))
                seen.update(result=out.tolist(), attempts=len(calls), warned=any("CPU" in str(w.message) for w in caught))
                failed = 0
            elif HAS_TIMEOUT:
                try:
                    with timeout(0.2):
                        time.sleep(10)
                    failed = 0
                except TimeoutError as e:
                    seen["error"] = type(e).__name__
                    failed = 1
            else:
                failed = 0
        seen["reports"] = reports
        # The ranks agree on the outcome through a collective that every rank
        # reaches: the failing rank does not leave its peer waiting.
        flag = torch.tensor([float(failed)])
        dist.all_reduce(flag)
        seen["any_failed"] = flag.item()
        dist.barrier()
    finally:
        dist.destroy_process_group()
    results.put(seen)


class TestDistributed(TestCase):
    """Two real gloo ranks (CPU).

    What each rank sees:

    * rank 0 runs a step under :func:`torch.cuda.safe_run` that runs out of memory
      (injected) on its first call and on its retry: safe_run reports each OOM to
      :mod:`torch.utils.error_callback` (``source="torch.cuda.safe_run"``), warns
      once that it falls back to the CPU, and returns the CPU result;
    * rank 1 runs a step bounded by :func:`torch.utils.timeout.timeout` that
      overruns: it gets :class:`TimeoutError` locally, reported to its error callbacks;
    * both then reach the same ``all_reduce`` of a failure flag, so both learn
      that a rank failed, and the job ends cleanly.  Neither utility enters a
      collective on its own: a rank that fails must still reach the collectives
      its peers wait in (or the job is bounded by ``init_process_group(timeout=)``).
    """

    def test_oom_on_one_rank_timeout_on_the_other(self):
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        port = _free_port()
        procs = [ctx.Process(target=_distributed_rank, args=(rank, 2, port, results)) for rank in range(2)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + HARD_LIMIT
        try:
            seen = [results.get(timeout=max(deadline - time.monotonic(), 0.1)) for _ in procs]
        finally:
            for p in procs:
                p.join(max(deadline - time.monotonic(), 0.1))
                if p.is_alive():
                    p.kill()
                    p.join()
        by_rank = {s.pop("rank"): s for s in seen}
        self.assertEqual(by_rank[0]["result"], [1.0, 1.0])
        self.assertEqual(by_rank[0]["attempts"], 3)
        self.assertTrue(by_rank[0]["warned"])
        self.assertIn("torch.cuda.safe_run", by_rank[0]["reports"])
        if HAS_TIMEOUT:
            self.assertEqual(by_rank[1]["error"], "TimeoutError")
            self.assertEqual(by_rank[0]["any_failed"], 1.0)
            self.assertEqual(by_rank[1]["any_failed"], 1.0)
        self.assertEqual([p.exitcode for p in procs], [0, 0])


QUIET_IMPORT = r"""
import os, sys, threading, warnings
warnings.simplefilter("error")
import torch
def link(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # the descriptor listdir itself used
        return ""
sockets = [fd for fd in os.listdir("/proc/self/fd") if link(fd).startswith("socket:")]
names = ["torch._accelerator", "torch.utils.dashboard", "torch.utils.telemetry", "torch.utils.timeout",
         "torch.utils.retry", "torch.utils.error_callback", "torch.utils.auto_tensorize", "torch.utils.patch_numpy",
         "torch.utils.dry_run", "torch.utils._memory_size", "http.server", "socketserver"]
print(f"threads={threading.active_count()} sockets={len(sockets)} loaded={[n for n in names if n in sys.modules]}")
"""


class TestQuietImport(TestCase):
    def test_import_torch_is_quiet(self):
        out = subprocess.run(
            [sys.executable, "-W", "error", "-c", QUIET_IMPORT],
            capture_output=True,
            text=True,
            timeout=HARD_LIMIT,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        # One thread (the main one), no socket, none of the new modules.
        self.assertExpectedInline(out.stdout.strip(), """threads=1 sockets=0 loaded=[]""")


if __name__ == "__main__":
    run_tests()
