# Owner(s): ["module: tests"]

import json
import logging
import math
import multiprocessing
import os
import pickle
import tempfile
import threading
import unittest
from unittest import mock

from hypothesis import given, settings, strategies as st

import torch
import torch.utils.error_callback as ec
import torch.utils.telemetry as tm
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    IS_WINDOWS,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)
from torch.utils.data import DataLoader, Dataset
from torch.utils.telemetry import reset, snapshot, telemetry, to_json


KEYS = ["count", "device", "errors", "max_ms", "mean_ms", "min_ms", "p50_ms", "p95_ms", "peak_memory_bytes", "total_ms"]


@telemetry
def module_level_step(x):
    return x + 1


@telemetry(name="load")
def module_level_load(i):
    return i * 2


class FakeClock:
    """Replaces perf_counter_ns: each read advances by the next step (ns)."""

    def __init__(self, *durations_ns):
        self.now = 0
        self.reads = []
        for d in durations_ns:
            self.reads += [0, d]  # start read, end read

    def __call__(self):
        self.now += self.reads.pop(0)
        return self.now


class TelemetryTestCase(TestCase):
    def setUp(self):
        super().setUp()
        reset()
        self.addCleanup(reset)
        # Host clock even where an earlier test initialized an accelerator;
        # the accelerator path has its own classes below.
        patcher = mock.patch.object(tm, "_device_module", False)
        patcher.start()
        self.addCleanup(patcher.stop)


class TestForms(TelemetryTestCase):
    def test_bare_decorator_uses_qualname(self):
        @telemetry
        def step(x):
            return x * 2

        self.assertEqual(step(3), 6)
        self.assertEqual(step.__name__, "step")
        self.assertEqual(list(snapshot()), ["TestForms.test_bare_decorator_uses_qualname.<locals>.step"])

    @parametrize("form", ["keyword", "positional"])
    def test_named_decorator(self, form):
        deco = telemetry(name="fwd") if form == "keyword" else telemetry("fwd")

        @deco
        def forward(x):
            return x

        forward(1)
        forward(2)
        self.assertEqual(snapshot()["fwd"]["count"], 2)

    def test_with_block(self):
        with telemetry("block") as t:
            self.assertEqual(repr(t), "telemetry('block')")
        with telemetry("block"):
            pass
        self.assertEqual(snapshot()["block"]["count"], 2)

    def test_block_object_reusable_but_not_reentrant(self):
        block = telemetry("b")
        with block:
            pass
        with block:
            with self.assertRaisesRegex(RuntimeError, "already timing a block"):
                with block:
                    pass
        self.assertEqual(snapshot()["b"]["count"], 2)

    def test_snapshot_shape_and_json(self):
        module_level_step(torch.ones(2))
        stats = snapshot()
        self.assertEqual(sorted(stats["module_level_step"]), KEYS)
        entry = stats["module_level_step"]
        self.assertEqual((entry["count"], entry["errors"], entry["device"], entry["peak_memory_bytes"]), (1, 0, "cpu", None))
        self.assertEqual(json.loads(to_json()), stats)
        self.assertEqual(json.loads(to_json(indent=2)), stats)

    def test_reset(self):
        module_level_step(1)
        reset()
        self.assertEqual(snapshot(), {})

    def test_bad_arguments(self):
        with self.assertRaises(TypeError) as cm:
            telemetry(42)
        self.assertExpectedInline(str(cm.exception), """telemetry(): expected a callable or a name (str), but got 42""")
        with self.assertRaises(TypeError) as cm:
            telemetry()
        self.assertExpectedInline(str(cm.exception), """telemetry(): expected a function to time or a name, but got neither""")
        with self.assertRaises(ValueError) as cm:
            telemetry("")
        self.assertExpectedInline(str(cm.exception), """telemetry(): name must be a non-empty string, but got ''""")
        with self.assertRaises(TypeError) as cm:
            telemetry(name=b"x")
        self.assertExpectedInline(str(cm.exception), """telemetry(): name must be a str, but got b'x'""")
        with self.assertRaises(TypeError) as cm:
            telemetry("a", name="b")
        self.assertExpectedInline(
            str(cm.exception), """telemetry(): give the name once, positionally or as name=, but got 'a' and 'b'"""
        )
        with self.assertRaises(TypeError) as cm:
            telemetry("a")(3)
        self.assertExpectedInline(str(cm.exception), """telemetry('a') decorates a callable, but got 3""")

    def test_module_level_functions_pickle(self):
        self.assertIs(pickle.loads(pickle.dumps(module_level_step)), module_level_step)
        self.assertIs(pickle.loads(pickle.dumps(module_level_load)), module_level_load)


class TestFigures(TelemetryTestCase):
    def test_exact_count_total_min_max_mean(self):
        clock = FakeClock(1_000_000, 3_000_000, 2_000_000)  # 1, 3, 2 ms
        with mock.patch.object(tm, "_perf_counter_ns", clock):
            for _ in range(3):
                module_level_step(0)
        s = snapshot()["module_level_step"]
        self.assertEqual((s["count"], s["errors"]), (3, 0))
        self.assertEqual((s["total_ms"], s["mean_ms"], s["min_ms"], s["max_ms"]), (6.0, 2.0, 1.0, 3.0))
        self.assertLessEqual(abs(s["p50_ms"] - 2.0), 2.0 / 32)
        self.assertLessEqual(abs(s["p95_ms"] - 3.0), 3.0 / 32)

    def test_block_uses_host_clock(self):
        with mock.patch.object(tm, "_perf_counter_ns", FakeClock(5_000)):
            with telemetry("b"):
                pass
        self.assertEqual(snapshot()["b"]["total_ms"], 0.005)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
    def test_quantiles_within_documented_error(self, durations):
        stat = tm._Stat("cpu")
        stat.buffer.extend(durations)
        stat.fold()
        ordered = sorted(durations)
        for q in (0.5, 0.95):
            exact = ordered[max(1, math.ceil(q * len(ordered))) - 1]
            self.assertLessEqual(abs(stat.quantile_ns(q) - exact), exact / 32 + 0.5, (q, exact))
        self.assertEqual((stat.min_ns, stat.max_ns, stat.total_ns), (ordered[0], ordered[-1], sum(durations)))

    def test_memory_is_bounded(self):
        durations = range(0, 10**9, 79193)
        clock = FakeClock(*durations)
        with mock.patch.object(tm, "_perf_counter_ns", clock):
            for _ in durations:
                module_level_step(0)
                stat = tm._stats["module_level_step"]
                self.assertLess(len(stat.buffer), tm._FLUSH_EVERY)
        self.assertEqual(len(stat.buckets), 1024)
        s = snapshot()["module_level_step"]
        self.assertEqual((s["count"], s["max_ms"]), (len(durations), durations[-1] / 1e6))

    def test_thread_safe_counts(self):
        def work():
            for _ in range(500):
                module_level_step(1)
                with telemetry("block"):
                    pass

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = snapshot()
        self.assertEqual(stats["module_level_step"]["count"], 4000)
        self.assertEqual(stats["block"]["count"], 4000)


class TestFailures(TelemetryTestCase):
    def test_errors_counted_reported_logged_and_reraised(self):
        err = ValueError("bad batch")

        @telemetry(name="step")
        def step():
            raise err

        seen = []
        with ec.error_callback(lambda exc, info: seen.append((exc, info))):
            with self.assertLogs("torch.utils.telemetry", logging.DEBUG) as logs:
                with self.assertRaises(ValueError) as cm:
                    step()
        self.assertIs(cm.exception, err)
        self.assertEqual(seen, [(err, {"source": "torch.utils.telemetry", "name": "step"})])
        self.assertIn("step raised ValueError", logs.output[0])
        s = snapshot()["step"]
        self.assertEqual((s["count"], s["errors"]), (1, 1))

    def test_block_errors(self):
        seen = []
        with ec.error_callback(lambda exc, info: seen.append(info["name"])):
            with self.assertRaises(KeyError):
                with telemetry("blk"):
                    raise KeyError("k")
        self.assertEqual(seen, ["blk"])
        self.assertEqual(snapshot()["blk"]["errors"], 1)


class TestProfiler(TelemetryTestCase):
    def test_range_only_while_profiling(self):
        with mock.patch("torch.autograd.profiler.record_function") as rf:
            module_level_step(1)
            with telemetry("b"):
                pass
        rf.assert_not_called()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            module_level_step(torch.ones(1))
            with telemetry("my_block"):
                torch.ones(1).sum()
        names = {e.name for e in prof.events()}
        self.assertIn("module_level_step", names)
        self.assertIn("my_block", names)
        self.assertEqual(snapshot()["module_level_step"]["count"], 2)


@instantiate_parametrized_tests
class TestCompile(TelemetryTestCase):
    @parametrize("backend", ["eager", "aot_eager"])
    def test_results_equal_eager(self, backend):
        torch._dynamo.reset()

        @telemetry(name="inner")
        def inner(x):
            return x.sin() * 2

        def outer(x):
            return inner(x) + 1

        x = torch.randn(8)
        self.assertEqual(torch.compile(outer, backend=backend)(x), outer(x))
        self.assertEqual(torch.compile(inner, backend=backend)(x), inner(x))
        # Host-side timing: every call is counted, compiled or not.
        self.assertEqual(snapshot()["inner"]["count"], 4)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_block_in_compiled_function(self, backend):
        torch._dynamo.reset()

        def fn(x):
            with telemetry("blk"):
                y = x.cos()
            return y * 3

        x = torch.randn(8)
        self.assertEqual(torch.compile(fn, backend=backend)(x), fn(x))
        self.assertEqual(snapshot()["blk"]["count"], 2)


def _fork_child(queue):
    module_level_step(1)
    queue.put(snapshot())


class _Items(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        module_level_load(i)
        return torch.tensor([torch.utils.data.get_worker_info().id, snapshot()["load"]["count"]])


@unittest.skipIf(IS_WINDOWS, "fork is POSIX-only")
class TestProcesses(TelemetryTestCase):
    def test_fork_child_gets_fresh_state_and_lock(self):
        for _ in range(5):
            module_level_step(1)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        with tm._lock:  # as if another thread held it at fork time
            child = ctx.Process(target=_fork_child, args=(queue,))
            child.start()
        try:
            child_stats = queue.get(timeout=60)
        finally:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
        self.assertEqual(child.exitcode, 0)
        self.assertEqual(child_stats["module_level_step"]["count"], 1)
        self.assertEqual(snapshot()["module_level_step"]["count"], 5)

    def test_dataloader_workers(self):
        for _ in range(3):
            module_level_load(0)
        loader = DataLoader(_Items(), batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=60)
        rows = [row.tolist() for row in loader]
        per_worker = {}
        for worker, count in rows:
            per_worker.setdefault(worker, []).append(count)
        # Each worker counts only its own calls: 1, 2, 3, 4 (not the parent's 3).
        self.assertEqual(sorted(per_worker), [0, 1])
        for counts in per_worker.values():
            self.assertEqual(counts, list(range(1, len(counts) + 1)))
        self.assertEqual(snapshot()["load"]["count"], 3)


def _rank_main(rank, init_file, queue):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        for _ in range(rank + 1):
            module_level_step(rank)
        queue.put((rank, snapshot(all_ranks=True)))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@unittest.skipIf(IS_WINDOWS or not torch.distributed.is_available(), "needs torch.distributed with gloo and fork")
class TestDistributed(TelemetryTestCase):
    def test_requires_initialized_process_group(self):
        with self.assertRaisesRegex(RuntimeError, "needs torch.distributed to be initialized"):
            snapshot(all_ranks=True)

    def test_gather_two_ranks(self):
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        with tempfile.TemporaryDirectory() as tmp:
            init_file = os.path.join(tmp, "init")
            procs = [ctx.Process(target=_rank_main, args=(rank, init_file, queue)) for rank in range(2)]
            for p in procs:
                p.start()
            try:
                results = dict(queue.get(timeout=120) for _ in procs)
            finally:
                for p in procs:
                    p.join(timeout=60)
                    if p.is_alive():
                        p.kill()
        self.assertEqual([p.exitcode for p in procs], [0, 0])
        self.assertEqual(results[0], results[1])
        self.assertEqual(sorted(results[0]), [0, 1])
        self.assertEqual(results[0][0]["module_level_step"]["count"], 1)
        self.assertEqual(results[0][1]["module_level_step"]["count"], 2)


class FakeEvent:
    """Stands in for torch.Event: elapsed times come from a shared schedule, sync calls are counted."""

    created = []
    syncs = 0

    def __init__(self, enable_timing=False):
        self.done = False
        FakeEvent.created.append(self)

    def record(self, stream=None):
        self.t = len(FakeEvent.created)

    def query(self):
        return self.done

    def synchronize(self):
        FakeEvent.syncs += 1
        self.done = True

    def elapsed_time(self, end):
        return 2.0  # ms


class TestAcceleratorPath(TelemetryTestCase):
    """The accelerator code path on any machine, with a fake device module and fake events."""

    def setUp(self):
        super().setUp()
        FakeEvent.created, FakeEvent.syncs = [], 0
        fake_module = mock.Mock(is_initialized=mock.Mock(return_value=True))
        for patcher in (
            mock.patch.object(tm, "_device_module", fake_module),
            mock.patch.object(tm, "_backlog_logged", False),
            mock.patch.object(torch, "Event", FakeEvent),
            mock.patch.object(torch.accelerator, "current_accelerator", return_value=torch.device("cuda")),
            mock.patch.object(torch.accelerator, "current_device_index", return_value=1),
            mock.patch.object(torch.accelerator, "max_memory_allocated", side_effect=[100, 300, 200, 50]),
        ):
            patcher.start()
            self.addCleanup(patcher.stop)

    def test_events_resolved_lazily_at_snapshot(self):
        module_level_step(1)
        module_level_step(2)
        with telemetry("blk"):
            pass
        self.assertEqual(FakeEvent.syncs, 0)  # nothing waited for in the hot path
        self.assertEqual(len(FakeEvent.created), 6)
        stats = snapshot()
        self.assertEqual(FakeEvent.syncs, 3)
        step = stats["module_level_step"]
        self.assertEqual((step["count"], step["total_ms"], step["device"], step["peak_memory_bytes"]), (2, 4.0, "cuda:1", 300))
        self.assertEqual(stats["blk"]["peak_memory_bytes"], 200)

    def test_backlog_is_bounded(self):
        with mock.patch.object(tm, "_MAX_PENDING", 8), mock.patch.object(torch.accelerator, "max_memory_allocated", return_value=1):
            with self.assertLogs("torch.utils.telemetry", logging.WARNING) as logs:
                for _ in range(9):
                    module_level_step(1)
            self.assertIn("still queued", logs.output[0])
            self.assertLessEqual(len(tm._stats["module_level_step"].pending), 8)
            self.assertEqual(snapshot()["module_level_step"]["count"], 9)
            self.assertEqual(snapshot()["module_level_step"]["total_ms"], 18.0)


@unittest.skipIf(not TEST_CUDA, "needs CUDA")
class TestCUDA(TelemetryTestCase):
    def setUp(self):
        super().setUp()
        patcher = mock.patch.object(tm, "_device_module", None)  # detect the real accelerator
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_cuda_timing_without_synchronize_in_hot_path(self):
        torch.cuda.init()

        @telemetry(name="matmul")
        def matmul(a):
            return a @ a

        a = torch.randn(512, 512, device="cuda")
        with mock.patch("torch.cuda.synchronize", side_effect=AssertionError("synchronize in hot path")):
            for _ in range(5):
                matmul(a)
        s = snapshot()["matmul"]
        self.assertEqual((s["count"], s["device"]), (5, f"cuda:{torch.cuda.current_device()}"))
        self.assertGreater(s["total_ms"], 0)
        self.assertGreaterEqual(s["peak_memory_bytes"], a.numel() * 4)


instantiate_parametrized_tests(TestForms)

if __name__ == "__main__":
    run_tests()
