# Owner(s): ["module: tests"]
"""Telemetry of a whole job: ranks, DataLoader workers, the Prometheus histogram."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from unittest import mock

import torch
import torch.utils._telemetry_job as job
import torch.utils._telemetry_workers as spool
import torch.utils.telemetry as tm
from torch.testing._internal.common_utils import IS_WINDOWS, run_tests, TestCase
from torch.utils.data import DataLoader, Dataset
from torch.utils.telemetry import reset, snapshot, telemetry


try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - in requirements/test.txt
    text_string_to_metric_families = None


@telemetry(name="load")
def module_level_load(i):
    return i * 2


class _Items(Dataset):
    def __init__(self, n=8, die_at=None):
        self.n, self.die_at = n, die_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        module_level_load(i)
        if i == self.die_at:
            spool.flush()  # what the spool thread does every second
            os.kill(os.getpid(), signal.SIGKILL)
        return i


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class JobTestCase(TestCase):
    def setUp(self):
        super().setUp()
        reset()
        self.addCleanup(reset)
        patcher = mock.patch.object(tm, "_device_module", False)
        patcher.start()
        self.addCleanup(patcher.stop)


def _state(durations_ns, device="cpu", errors=0):
    stat = tm._Stat(device)
    for ns in durations_ns:
        stat.add(ns)
    stat.errors = errors
    return stat.state()


class TestMerge(JobTestCase):
    def test_merged_view_exact_figures_ranks_and_slowest(self):
        per_rank = {0: {"step": _state([1000, 3000]), "only0": _state([5])}, 1: {"step": _state([2000, 9000, 4000], errors=1)}}
        view = tm._merged_view(per_rank)
        step = view["step"]
        self.assertEqual((step["count"], step["errors"], step["total_ms"]), (5, 1, 0.019))
        self.assertEqual((step["min_ms"], step["max_ms"]), (0.001, 0.009))
        self.assertEqual(sorted(step["ranks"]), [0, 1])
        self.assertEqual(step["ranks"][1]["count"], 3)
        self.assertEqual(step["slowest_rank"], 1)
        # p50 of the merged histogram: 3000 ns within the documented 1/32
        self.assertLess(abs(step["p50_ms"] - 0.003) / 0.003, 1 / 32)
        self.assertEqual(sorted(view["only0"]["ranks"]), [0])
        self.assertEqual(view["only0"]["slowest_rank"], 0)

    def test_slowest_rank_tie_is_lowest(self):
        view = tm._merged_view({1: {"a": _state([10])}, 0: {"a": _state([10])}})
        self.assertEqual(view["a"]["slowest_rank"], 0)

    def test_job_snapshot_without_distributed_is_snapshot(self):
        with telemetry("x"):
            pass
        self.assertEqual(job._job_snapshot(), snapshot())

    def test_publisher_needs_distributed_and_checks_interval(self):
        with self.assertRaisesRegex(RuntimeError, "torch.distributed is not initialized"):
            job._Publisher().start()
        with self.assertRaisesRegex(TypeError, "interval must be a number"):
            job._Publisher("1")
        with self.assertRaisesRegex(ValueError, "interval must be finite and > 0"):
            job._Publisher(float("nan"))
        job._Publisher().stop()  # never started: nothing to do


class FakeStore:
    def __init__(self):
        self.data, self.gets = {}, []

    def set(self, key, value):
        self.data[key] = value.encode() if isinstance(value, str) else value

    def check(self, keys):
        return all(k in self.data for k in keys)

    def get(self, key):
        self.gets.append(key)
        return self.data[key]  # a real store blocks here when the key is missing


class FakeDist:
    def __init__(self, rank, world):
        self.rank, self.world = rank, world

    def get_rank(self):
        return self.rank

    def get_world_size(self):
        return self.world


class TestPublisherWithFakeStore(JobTestCase):
    def setUp(self):
        super().setUp()
        self.store = FakeStore()
        self.dist = FakeDist(1, 3)
        for patcher in (
            mock.patch.object(job, "_store", lambda: self.store),
            mock.patch.object(job, "_distributed", lambda: self.dist),
        ):
            patcher.start()
            self.addCleanup(patcher.stop)

    def test_publish_then_job_view_skips_silent_ranks_without_blocking(self):
        with telemetry("step"):
            pass
        publisher = job._Publisher(0.01).start()
        self.assertTrue(_wait_for(lambda: "torch.utils.telemetry/1" in self.store.data))
        publisher.stop()
        publisher.stop()  # idempotent
        reset()
        self.dist.rank = 0  # now read it as rank 0, which recorded nothing; rank 2 never published
        view = job._job_snapshot()
        self.assertEqual(sorted(view["step"]["ranks"]), [1])
        self.assertEqual(view["step"]["slowest_rank"], 1)
        self.assertEqual(self.store.gets, ["torch.utils.telemetry/1"])

    def test_thread_survives_errors_and_stops(self):
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError("store down")
            return {}

        with mock.patch.object(tm, "_local_states", flaky), self.assertLogs("torch.utils.telemetry", "ERROR") as logs:
            with job._Publisher(0.01) as publisher:
                self.assertTrue(_wait_for(lambda: len(calls) >= 4))
                thread = publisher._thread
        self.assertFalse(thread.is_alive())
        self.assertIn("could not publish", logs.output[0])


@unittest.skipIf(text_string_to_metric_families is None, "needs prometheus_client")
class TestPrometheus(JobTestCase):
    def test_histogram_parsed_by_prometheus_client(self):
        per_rank = {None: {"step": _state([500, 2000, 2000, 70_000, 3 * 10**9], errors=1)}}
        text = job._exposition(per_rank)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        duration = families["torch_telemetry_duration_seconds"]
        self.assertEqual(duration.type, "histogram")
        buckets = [(s.labels["le"], s.value) for s in duration.samples if s.name.endswith("_bucket")]
        self.assertLessEqual(len(duration.samples), 20)
        self.assertEqual(buckets[-1], ("+Inf", 5.0))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))  # cumulative
        le = {float(b): v for b, v in buckets}
        self.assertEqual(le[2**10 / 1e9], 1.0)  # 500 ns
        self.assertEqual(le[2**12 / 1e9], 3.0)  # + 2 x 2 us
        self.assertEqual(le[2**18 / 1e9], 4.0)  # + 70 us
        self.assertEqual(le[2**32 / 1e9], 5.0)  # + 3 s
        samples = {s.name: s.value for s in duration.samples if not s.name.endswith("_bucket")}
        self.assertEqual(samples["torch_telemetry_duration_seconds_count"], 5.0)
        self.assertAlmostEqual(samples["torch_telemetry_duration_seconds_sum"], 3.0000745)
        self.assertEqual(families["torch_telemetry_errors"].samples[0].value, 1.0)
        self.assertNotIn("rank", duration.samples[0].labels)

    def test_rank_label_on_every_series_and_same_bounds(self):
        text = job._exposition({0: {"a": _state([10])}, 1: {"a": _state([10**6]), 'b\n"': _state([1])}})
        families = list(text_string_to_metric_families(text))
        bounds = {}
        for family in families:
            for s in family.samples:
                self.assertIn(s.labels["rank"], ("0", "1"))
                if "le" in s.labels:
                    bounds.setdefault((s.labels["rank"], s.labels["name"]), []).append(s.labels["le"])
        self.assertEqual(len({tuple(b) for b in bounds.values()}), 1)
        self.assertIn(("1", 'b\n"'), bounds)

    def test_exposition_of_this_process(self):
        for _ in range(3):
            module_level_load(1)
        families = {f.name: f for f in text_string_to_metric_families(job._exposition())}
        self.assertEqual(families["torch_telemetry_calls"].samples[0].value, 3.0)


_RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import torch.distributed as dist
    import torch.utils._telemetry_job as job
    from torch.utils.telemetry import snapshot, telemetry

    rank, port = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    for _ in range(rank + 1):
        with telemetry("step"):
            time.sleep(0.01 * (1 + 4 * rank))
    with telemetry(f"only{rank}"):
        pass
    out = {"all": snapshot(all_ranks=True)}
    if rank == 1:
        publisher = job._Publisher(0.05).start()
        time.sleep(0.2)
        publisher.stop()
    dist.barrier()
    if rank == 0:
        out["job"] = job._job_snapshot()
        out["metrics"] = job._exposition()
    dist.barrier()
    dist.destroy_process_group()
    print(json.dumps(out))
    """
)


@unittest.skipIf(IS_WINDOWS or not torch.distributed.is_available(), "needs torch.distributed with gloo")
class TestTwoRanks(TestCase):
    def test_two_gloo_ranks(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "rank.py")
            with open(script, "w") as f:
                f.write(_RANK_SCRIPT)
            procs = [
                subprocess.Popen([sys.executable, script, str(r), str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for r in range(2)
            ]
            outs = []
            try:
                for p in procs:
                    out, err = p.communicate(timeout=240)
                    self.assertEqual(p.returncode, 0, err.decode()[-2000:])
                    outs.append(json.loads(out.decode().strip().splitlines()[-1]))
            finally:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
        self.assertEqual(outs[0]["all"], outs[1]["all"])
        step = outs[0]["all"]["step"]
        self.assertEqual((step["count"], step["errors"], step["slowest_rank"]), (3, 0, 1))
        self.assertEqual({r: f["count"] for r, f in step["ranks"].items()}, {"0": 1, "1": 2})
        self.assertAlmostEqual(step["total_ms"], sum(f["total_ms"] for f in step["ranks"].values()))
        self.assertEqual(sorted(outs[0]["all"]), ["only0", "only1", "step"])
        self.assertEqual(outs[0]["job"], outs[0]["all"])  # the store view, without a collective
        if text_string_to_metric_families is not None:
            for family in text_string_to_metric_families(outs[0]["metrics"]):
                for s in family.samples:
                    self.assertIn(s.labels["rank"], ("0", "1"))


@unittest.skipIf(IS_WINDOWS, "fork is POSIX-only")
class TestDataLoaderWorkers(JobTestCase):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        patcher = mock.patch.object(tempfile, "tempdir", tmp.name)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(spool._remove_own_spool)

    def test_workers_figures_reach_parent_persistent(self):
        for _ in range(3):
            module_level_load(0)
        loader = DataLoader(
            _Items(), batch_size=None, num_workers=2, multiprocessing_context="fork", persistent_workers=True, timeout=60
        )
        self.assertEqual(sorted(loader), list(range(8)))
        # Persistent workers stay alive: their figures arrive with the periodic flush.
        self.assertTrue(_wait_for(lambda: snapshot()["load"]["count"] == 11))
        view = snapshot(workers=True)["load"]
        self.assertEqual(len(view["workers"]), 2)
        self.assertEqual(sum(w["count"] for w in view["workers"].values()), 8)
        self.assertEqual(sorted(snapshot()["load"]), sorted(k for k in view if k != "workers"))
        # reset() forgets the workers' figures too (their later calls are kept)
        reset("load")
        self.assertNotIn("load", snapshot())
        time.sleep(3 * spool.INTERVAL)  # the workers write again meanwhile
        self.assertEqual(sorted(loader), list(range(8)))
        self.assertTrue(_wait_for(lambda: snapshot().get("load", {}).get("count") == 8))
        time.sleep(2 * spool.INTERVAL)
        self.assertEqual(snapshot()["load"]["count"], 8)
        del loader

    def test_reset_never_drops_calls_recorded_after_it(self):
        loader = DataLoader(
            _Items(), batch_size=None, num_workers=2, multiprocessing_context="fork", persistent_workers=True, timeout=60
        )
        self.assertEqual(sorted(loader), list(range(8)))
        self.assertTrue(_wait_for(lambda: snapshot().get("load", {}).get("count") == 8))
        for forget in ("load", None):  # reset at the start of each epoch, then a short epoch at once
            reset(forget)
            self.assertNotIn("load", snapshot())
            self.assertEqual(sorted(loader), list(range(8)))
            self.assertTrue(_wait_for(lambda: snapshot().get("load", {}).get("count") == 8))
            time.sleep(3 * spool.INTERVAL)  # the workers' next writes keep them
            figures = snapshot(workers=True)["load"]
            self.assertEqual(figures["count"], 8)
            self.assertEqual(sum(w["count"] for w in figures["workers"].values()), 8)
            self.assertLessEqual(figures["min_ms"], figures["p50_ms"])
            self.assertLessEqual(figures["p95_ms"], figures["max_ms"])
        del loader

    def test_since_a_baseline(self):
        base = _state([1000, 5000])
        self.assertIsNone(tm._since(base, base))
        after = tm._since(_state([1000, 5000, 300, 2000]), base)  # a new minimum: exact
        self.assertEqual((after["count"], after["total_ns"], after["min_ns"]), (2, 2300, 300))
        self.assertEqual(sum(after["buckets"].values()), 2)
        self.assertLessEqual(after["max_ns"], 5000)  # not above the old maximum: from the histogram
        self.assertGreaterEqual(after["max_ns"], 2000)
        self.assertLess(after["max_ns"], 2000 * 17 / 16)

    def test_dead_worker_keeps_what_it_flushed(self):
        loader = DataLoader(_Items(n=4, die_at=1), batch_size=None, num_workers=1, multiprocessing_context="fork", timeout=60)
        with self.assertRaises(RuntimeError):
            list(loader)
        self.assertEqual(snapshot()["load"]["count"], 2)


_SPAWN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from torch.utils.data import DataLoader, Dataset
    from torch.utils.telemetry import snapshot, telemetry

    @telemetry(name="load")
    def load(i):
        return i

    class Items(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return load(i)

    if __name__ == "__main__":
        loader = DataLoader(Items(), batch_size=None, num_workers=2, multiprocessing_context=sys.argv[1], timeout=120)
        list(loader)
        del loader  # non-persistent workers exit at the end of the epoch and flush on exit
        print(json.dumps(snapshot(workers=True)["load"]))
    """
)


@unittest.skipIf(IS_WINDOWS, "POSIX spool")
class TestWorkerProcesses(TestCase):
    def test_spawn_and_fork_workers_and_no_files_left(self):
        for method in ("spawn", "fork"):
            with self.subTest(method=method), tempfile.TemporaryDirectory() as tmp:
                script = os.path.join(tmp, "main.py")
                with open(script, "w") as f:
                    f.write(_SPAWN_SCRIPT)
                spool_root = os.path.join(tmp, "spool")
                os.mkdir(spool_root)
                result = subprocess.run(
                    [sys.executable, script, method],
                    capture_output=True,
                    timeout=300,
                    env={**os.environ, "TMPDIR": spool_root},
                )
                self.assertEqual(result.returncode, 0, result.stderr.decode()[-2000:])
                load = json.loads(result.stdout.decode().strip().splitlines()[-1])
                self.assertEqual(load["count"], 6)
                self.assertEqual(len(load["workers"]), 2)
                self.assertEqual(os.listdir(spool_root), [])

    def test_stale_spool_of_dead_parent_swept(self):
        with tempfile.TemporaryDirectory() as tmp, mock.patch.object(tempfile, "tempdir", tmp):
            proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
            dead = int(proc.stdout)
            os.mkdir(spool.spool_dir(dead))
            os.mkdir(spool.spool_dir(os.getpid()))
            spool._sweep()
            self.assertEqual(os.listdir(tmp), [os.path.basename(spool.spool_dir(os.getpid()))])


if __name__ == "__main__":
    run_tests()
