# Owner(s): ["module: tests"]
"""The dashboard's server-side history (/api/history) and its host and GPU metrics."""

import ctypes
import http.client
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
import urllib.parse
from unittest import mock

import torch
import torch.utils.dashboard as dashboard
import torch.utils.telemetry as tm
from torch._accelerator import _nvml
from torch.testing._internal.common_utils import IS_WINDOWS, run_tests, TestCase
from torch.utils import _dashboard_host
from torch.utils._dashboard_history import History, MAX_SAMPLES, samples_for
from torch.utils.dashboard import live_dashboard
from torch.utils.telemetry import reset


def get(url):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def figures(count, total_ms, errors=0, p50=1.0, p95=2.0):
    return {"count": count, "errors": errors, "total_ms": total_ms, "p50_ms": p50, "p95_ms": p95}


PROCESS = {"rss_bytes": 1000, "cpu_seconds": 1.0}


class TestHistory(TestCase):
    def series(self, samples, window=60.0, interval=1.0, since=None):
        history = History(window, interval)
        for i, (stats, process, gpus) in enumerate(samples):
            history.sample(stats, process, gpus, now=1000.0 + i, monotonic=float(i))
        return history.to_json(since)

    def test_first_sample_is_the_baseline(self):
        # Calls made before the dashboard started do not show as one spike.
        out = self.series([({"a": figures(50, 500.0)}, PROCESS, None), ({"a": figures(52, 506.0)}, PROCESS, None)])
        self.assertEqual(out["t"], [1001.0])
        self.assertEqual(out["names"]["a"]["calls"], [2])
        self.assertEqual(out["names"]["a"]["mean_ms"], [3.0])  # of the interval, not cumulative (10 ms)
        self.assertEqual((out["interval_s"], out["window_s"]), (1.0, 60.0))

    def test_intervals_gaps_errors_and_rates(self):
        steps = [
            {},
            {"a": figures(4, 8.0)},
            {"a": figures(4, 8.0), "b": figures(1, 100.0, errors=1)},  # a idle: a gap
            {"a": figures(10, 20.0, errors=2, p50=1.5, p95=3.0), "b": figures(1, 100.0, errors=1)},
        ]
        out = self.series([(s, PROCESS, None) for s in steps])
        self.assertEqual(out["t"], [1001.0, 1002.0, 1003.0])
        a, b = out["names"]["a"], out["names"]["b"]
        self.assertEqual(a["calls"], [4, 0, 6])
        self.assertEqual(a["calls_per_s"], [4.0, 0.0, 6.0])
        self.assertEqual(a["mean_ms"], [2.0, None, 2.0])
        self.assertEqual(a["errors"], [0, 0, 2])
        self.assertEqual(a["p95_ms"], [2.0, None, 3.0])
        self.assertEqual(b["calls"], [0, 1, 0])
        self.assertEqual(b["errors"], [0, 1, 0])
        self.assertEqual(b["mean_ms"], [None, 100.0, None])

    def test_reset_counts_from_zero(self):
        steps = [{"a": figures(10, 10.0)}, {"a": figures(20, 20.0)}, {"a": figures(3, 9.0)}]
        out = self.series([(s, PROCESS, None) for s in steps])
        self.assertEqual(out["names"]["a"]["calls"], [10, 3])
        self.assertEqual(out["names"]["a"]["mean_ms"], [1.0, 3.0])

    def test_ring_buffer_is_bounded(self):
        self.assertEqual(samples_for(3600.0, 1.0), 3601)
        history = History(3.0, 1.0)
        for i in range(20):
            history.sample({"a": figures(i, float(i))}, PROCESS, None, now=float(i), monotonic=float(i))
        self.assertEqual(len(history.samples), 4)
        self.assertEqual(history.to_json()["t"], [16.0, 17.0, 18.0, 19.0])
        self.assertEqual(History(1e9, 1.0).samples.maxlen, MAX_SAMPLES)

    def test_since(self):
        steps = [{"a": figures(i, float(i))} for i in range(5)]
        out = self.series([(s, PROCESS, None) for s in steps], since=1002.0)
        self.assertEqual(out["t"], [1003.0, 1004.0])
        self.assertEqual(out["names"]["a"]["calls"], [1, 1])
        self.assertEqual(self.series([(s, PROCESS, None) for s in steps], since=2000.0)["t"], [])

    def test_process_and_gpus(self):
        gpu = {"index": 0, "name": "H100", "uuid": "GPU-0", "utilization_percent": 50, "memory_used_bytes": 1 << 30,
               "memory_total_bytes": 80 << 30, "power_watts": 300.5, "temperature_c": 60, "error": None}
        lost = dict(gpu, utilization_percent=None, error="nvmlDeviceGetUtilizationRates: NVML_ERROR_GPU_IS_LOST (15)")
        out = self.series(
            [
                ({}, {"rss_bytes": 10, "cpu_seconds": 1.0}, [gpu]),
                ({}, {"rss_bytes": 20, "cpu_seconds": 1.5}, [gpu]),
                ({}, {"rss_bytes": None, "cpu_seconds": None}, [lost]),
            ]
        )
        self.assertEqual(out["process"], {"rss_bytes": [20, None], "cpu_percent": [50.0, None]})
        g = out["gpus"]["0"]
        self.assertEqual(g["utilization_percent"], [50, None])
        self.assertEqual(g["power_watts"], [300.5, 300.5])
        self.assertEqual((g["name"], g["uuid"]), ("H100", "GPU-0"))
        self.assertIn("GPU_IS_LOST", g["error"])  # as of the newest sample
        json.dumps(out)  # plain JSON


class DashboardTestCase(TestCase):
    def setUp(self):
        super().setUp()
        reset()
        self.addCleanup(reset)
        patcher = mock.patch.object(tm, "_device_module", False)
        patcher.start()
        self.addCleanup(patcher.stop)

    def start(self, **kwargs):
        board = live_dashboard(**kwargs)
        self.addCleanup(board.stop)
        return board

    def wait_for(self, predicate, what):
        for _ in range(600):
            if predicate():
                return
            threading.Event().wait(0.05)
        self.fail(f"timed out waiting for {what}")


class TestHistoryEndpoint(DashboardTestCase):
    def history(self, board, query=""):
        status, headers, body = get(board.url + "api/history" + query)
        self.assertEqual((status, headers["Content-Type"]), (200, "application/json"))
        return json.loads(body)

    def test_served_with_timestamps_and_since(self):
        board = self.start(refresh=0.05, history=60)
        self.wait_for(lambda: len(self.history(board)["t"]) >= 2, "two samples")
        with tm.telemetry("step"):
            pass
        self.wait_for(lambda: "step" in self.history(board)["names"], "a sample with the call")
        out = self.history(board)
        self.assertEqual(out["t"], sorted(out["t"]))
        self.assertEqual(sum(out["names"]["step"]["calls"]), 1)
        self.assertEqual(len(out["names"]["step"]["calls"]), len(out["t"]))
        self.assertEqual((out["interval_s"], out["window_s"]), (0.05, 60.0))
        newer = self.history(board, "?since=" + urllib.parse.quote(repr(out["t"][-1])))
        self.assertTrue(all(t > out["t"][-1] for t in newer["t"]))
        for bad in ("x", "nan", "inf"):
            status, _, body = get(board.url + "api/history?since=" + bad)
            self.assertEqual(status, 400, bad)
            self.assertIn(b"since must be a finite number", body)

    def test_history_argument(self):
        with self.assertRaisesRegex(TypeError, r"live_dashboard\(\): history must be a number .* got '1'"):
            live_dashboard(history="1")
        with self.assertRaisesRegex(TypeError, "history must be a number"):
            live_dashboard(history=True)
        for bad in (0, -1.0, float("nan"), float("inf")):
            with self.assertRaisesRegex(ValueError, r"live_dashboard\(\): history must be a finite number"):
                live_dashboard(history=bad)
        with self.assertRaisesRegex(ValueError, r"an integer of \d+ bits.*more than 1000000 samples"):
            live_dashboard(history=10**400)
        with self.assertRaisesRegex(ValueError, r"refresh=0.01 would keep more than 1000000 samples"):
            live_dashboard(history=86400.0, refresh=0.01)
        self.start(history=900, refresh=0.001).stop()  # 900001 samples: allowed

    def test_sampler_survives_errors_and_stops_with_the_board(self):
        failures = []

        def flaky():
            if len(failures) < 3:
                failures.append(1)
                raise RuntimeError("injected")
            return tm.snapshot()

        with mock.patch.object(dashboard, "_stats", flaky):
            with self.assertLogs("torch.utils.dashboard", logging.WARNING) as logs:
                board = self.start(refresh=0.05)
                self.wait_for(lambda: any("works again" in line for line in logs.output), "recovery")
        self.assertEqual(len(failures), 3)
        self.assertEqual(sum("could not sample the history" in line for line in logs.output), 1)  # once per run
        self.assertIn("injected", logs.output[0])
        self.assertTrue(board.running and board._sampler.is_alive())
        board.stop()
        self.assertFalse(board._sampler.is_alive())
        self.assertFalse(board._thread.is_alive())

    def test_threads_named_and_stopped(self):
        with live_dashboard() as board:
            names = {t.name for t in threading.enumerate()}
            self.assertIn(f"torch.utils.dashboard:{board.port}:history", names)
        self.assertFalse(board._sampler.is_alive())


GiB = 1 << 30


class FakeNvmlLibrary:
    """libnvidia-ml.so.1 as ctypes sees it: (uuid, name, used GiB, total GiB, util %, mW, C) per GPU."""

    def __init__(self, gpus, fail=None):
        self.gpus = gpus
        self.fail = fail or {}  # (getter, gpu index) -> NVML error code

    def _rc(self, getter, handle):
        return self.fail.get((getter, handle.value - 1), 0)

    def nvmlInit_v2(self):
        return 0

    def nvmlDeviceGetCount_v2(self, count):
        count._obj.value = len(self.gpus)
        return 0

    def nvmlDeviceGetHandleByIndex_v2(self, index, handle):
        rc = self.fail.get(("nvmlDeviceGetHandleByIndex_v2", index.value), 0)
        if not rc:
            handle._obj.value = index.value + 1
        return rc

    def nvmlDeviceGetUUID(self, handle, buf, size):
        buf.value = self.gpus[handle.value - 1][0].encode()
        return self._rc("nvmlDeviceGetUUID", handle)

    def nvmlDeviceGetName(self, handle, buf, size):
        buf.value = self.gpus[handle.value - 1][1].encode()
        return self._rc("nvmlDeviceGetName", handle)

    def nvmlDeviceGetMemoryInfo(self, handle, memory):
        _, _, used, total, *_ = self.gpus[handle.value - 1]
        memory._obj.used, memory._obj.total, memory._obj.free = used * GiB, total * GiB, (total - used) * GiB
        return self._rc("nvmlDeviceGetMemoryInfo", handle)

    def nvmlDeviceGetUtilizationRates(self, handle, utilization):
        utilization._obj.gpu = self.gpus[handle.value - 1][4]
        return self._rc("nvmlDeviceGetUtilizationRates", handle)

    def nvmlDeviceGetPowerUsage(self, handle, milliwatts):
        milliwatts._obj.value = self.gpus[handle.value - 1][5]
        return self._rc("nvmlDeviceGetPowerUsage", handle)

    def nvmlDeviceGetTemperature(self, handle, sensor, celsius):
        if sensor.value != 0:  # NVML_TEMPERATURE_GPU
            return 2  # NVML_ERROR_INVALID_ARGUMENT
        celsius._obj.value = self.gpus[handle.value - 1][6]
        return self._rc("nvmlDeviceGetTemperature", handle)


TWO_GPUS = [("GPU-a", "NVIDIA H100", 3, 80, 42, 301500, 61), ("GPU-b", "NVIDIA H100", 5, 80, 97, 650000, 74)]


def _acquire_nvml_lock_or_fail():
    sys.exit(0 if _nvml._lock.acquire(timeout=10) else 1)


class FakeNvmlTestCase(DashboardTestCase):
    def setUp(self):
        super().setUp()
        for patch in (mock.patch.multiple(_nvml, _initialized_in=None, _library=None),
                      mock.patch.object(_dashboard_host, "_library", None)):
            patch.start()
            self.addCleanup(patch.stop)

    def nvml(self, lib):
        return mock.patch.object(ctypes, "CDLL", return_value=lib)


class TestHostMetrics(FakeNvmlTestCase):
    def test_process_from_proc(self):
        if not _dashboard_host._proc_rss():
            self.skipTest("needs /proc")
        m = _dashboard_host.process_metrics()
        self.assertGreater(m["rss_bytes"], 10 << 20)  # torch alone is more
        self.assertLessEqual(m["rss_bytes"], m["max_rss_bytes"] * 1.01)
        self.assertGreater(m["cpu_seconds"], 0)

    def test_process_fallback_without_proc(self):
        with mock.patch("builtins.open", side_effect=FileNotFoundError("/proc/self/statm")):
            m = _dashboard_host.process_metrics()
        self.assertIsNone(m["rss_bytes"])  # resource knows only the peak
        self.assertGreater(m["max_rss_bytes"], 10 << 20)
        self.assertGreater(m["cpu_seconds"], 0)

    def test_gpus_through_nvml_without_cuda_context(self):
        with self.nvml(FakeNvmlLibrary(TWO_GPUS)):
            gpus = _dashboard_host.gpu_metrics()
        self.assertEqual(
            gpus[1],
            {"index": 1, "uuid": "GPU-b", "name": "NVIDIA H100", "utilization_percent": 97,
             "memory_used_bytes": 5 * GiB, "memory_total_bytes": 80 * GiB, "power_watts": 650.0,
             "temperature_c": 74, "error": None},
        )
        self.assertFalse(torch.cuda.is_initialized())

    def test_one_error_does_not_disable_the_rest(self):
        # One NVML error must not hide the rest: NO_PERMISSION (cgroup nodes) on one reading, GPU_IS_LOST on a whole GPU.
        fail = {("nvmlDeviceGetPowerUsage", 0): 4, ("nvmlDeviceGetHandleByIndex_v2", 1): 15}
        with self.nvml(FakeNvmlLibrary(TWO_GPUS + [("GPU-c", "NVIDIA H100", 1, 80, 3, 90000, 40)], fail)):
            first, lost, third = _dashboard_host.gpu_metrics()
        self.assertIsNone(first["power_watts"])
        self.assertEqual(first["error"], "nvmlDeviceGetPowerUsage: NVML_ERROR_NO_PERMISSION (4)")
        self.assertEqual((first["utilization_percent"], first["temperature_c"]), (42, 61))
        self.assertEqual(lost["error"], "nvmlDeviceGetHandleByIndex_v2: NVML_ERROR_GPU_IS_LOST (15)")
        self.assertIsNone(lost["utilization_percent"])
        self.assertEqual((third["uuid"], third["power_watts"], third["error"]), ("GPU-c", 90.0, None))

    def test_library_initialized_once_per_process(self):
        lib = FakeNvmlLibrary(TWO_GPUS)
        lib.nvmlInit_v2 = mock.Mock(return_value=0)
        with self.nvml(lib) as cdll:
            for _ in range(3):
                self.assertEqual(len(_dashboard_host.gpu_metrics()), 2)
            self.assertEqual((cdll.call_count, lib.nvmlInit_v2.call_count), (1, 1))
            with mock.patch.object(_dashboard_host.os, "getpid", return_value=-1), \
                    mock.patch.object(_nvml.os, "getpid", return_value=-1):
                _dashboard_host.gpu_metrics()  # a forked child initializes NVML for itself
            self.assertEqual(lib.nvmlInit_v2.call_count, 2)

    @unittest.skipIf(IS_WINDOWS, "fork is POSIX-only")
    def test_fork_never_inherits_the_nvml_lock_held(self):
        # The sampling thread may be initializing NVML when a DataLoader forks its workers.
        held, release = threading.Event(), threading.Event()

        def initializing():
            with _nvml._lock:
                held.set()
                release.wait(30)

        thread = threading.Thread(target=initializing)
        thread.start()
        held.wait(30)
        threading.Timer(0.5, release.set).start()
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=_acquire_nvml_lock_or_fail)
        child.start()  # waits for the lock to be free
        child.join(60)
        thread.join(30)
        self.assertEqual(child.exitcode, 0)

    def test_missing_entry_point_is_recorded(self):
        class OldDriver(FakeNvmlLibrary):
            def __getattribute__(self, name):
                if name == "nvmlDeviceGetPowerUsage":  # a driver without that entry point
                    raise AttributeError(name)
                return super().__getattribute__(name)

        lib = OldDriver(TWO_GPUS[:1])
        with self.nvml(lib):
            (gpu,) = _dashboard_host.gpu_metrics()
        self.assertIsNone(gpu["power_watts"])
        self.assertEqual(gpu["temperature_c"], 61)

    def test_no_nvml(self):
        with mock.patch.object(ctypes, "CDLL", side_effect=OSError("libnvidia-ml.so.1: cannot open")):
            self.assertIsNone(_dashboard_host.gpu_metrics())
        self.assertEqual(_dashboard_host.prometheus({"rss_bytes": None, "cpu_seconds": None}, None), "")

    def test_metrics_endpoint_parses(self):
        from prometheus_client.parser import text_string_to_metric_families

        fail = {("nvmlDeviceGetPowerUsage", 0): 4}
        with self.nvml(FakeNvmlLibrary(TWO_GPUS, fail)):
            board = self.start()
            status, _, body = get(board.url + "metrics")
            self.assertEqual(status, 200)
            families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        self.assertEqual(families["process_resident_memory_bytes"].type, "gauge")
        self.assertGreater(families["process_resident_memory_bytes"].samples[0].value, 10 << 20)
        self.assertEqual(families["process_cpu_seconds"].type, "counter")
        self.assertEqual(families["process_cpu_seconds"].samples[0].name, "process_cpu_seconds_total")

        def values(family):
            return {s.labels["gpu"]: s.value for s in families[family].samples}

        self.assertEqual(values("DCGM_FI_DEV_GPU_UTIL"), {"0": 42, "1": 97})
        self.assertEqual(values("DCGM_FI_DEV_FB_USED"), {"0": 3 * 1024, "1": 5 * 1024})  # MiB
        self.assertEqual(values("DCGM_FI_DEV_POWER_USAGE"), {"1": 650.0})  # GPU 0's power unreadable
        self.assertEqual(values("DCGM_FI_DEV_GPU_TEMP"), {"0": 61, "1": 74})
        labels = families["DCGM_FI_DEV_GPU_UTIL"].samples[1].labels
        self.assertEqual(labels, {"gpu": "1", "UUID": "GPU-b", "modelName": "NVIDIA H100"})
        self.assertFalse(torch.cuda.is_initialized())

    def test_history_carries_gpus_and_process(self):
        with self.nvml(FakeNvmlLibrary(TWO_GPUS)):
            board = self.start(refresh=0.05)

            def sampled():
                return len(json.loads(get(board.url + "api/history")[2])["t"]) >= 2

            self.wait_for(sampled, "two samples")
        out = json.loads(get(board.url + "api/history")[2])
        self.assertEqual(sorted(out["gpus"]), ["0", "1"])
        self.assertEqual(out["gpus"]["1"]["temperature_c"][0], 74)
        self.assertEqual(out["gpus"]["0"]["memory_total_bytes"][0], 80 * GiB)
        self.assertGreater(out["process"]["rss_bytes"][0], 10 << 20)
        self.assertFalse(torch.cuda.is_initialized())


_RANK_BOARD = textwrap.dedent(
    """
    import json, sys, time, urllib.request
    import torch.distributed as dist
    from torch.utils.dashboard import live_dashboard
    from torch.utils.telemetry import telemetry

    rank, port = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    board = live_dashboard(port=0, refresh=0.05)
    for _ in range(rank + 1):
        with telemetry("step"):
            time.sleep(0.01 * (1 + 4 * rank))
    out = {}
    dist.barrier()
    if rank == 0:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = json.load(urllib.request.urlopen(board.url + "api/stats"))
            if stats.get("step", {}).get("count") == 3:  # both ranks' calls published
                break
            time.sleep(0.05)
        out = {"stats": stats, "metrics": urllib.request.urlopen(board.url + "metrics").read().decode()}
    dist.barrier()
    board.stop()
    dist.destroy_process_group()
    print(json.dumps(out))
    """
)


@unittest.skipIf(IS_WINDOWS or not torch.distributed.is_available(), "needs torch.distributed with gloo")
class TestRanks(TestCase):
    def test_rank0_board_shows_the_job(self):
        # Two real gloo ranks, each with a board: rank 0's shows both ranks merged, the straggler named.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "rank.py")
            with open(script, "w") as f:
                f.write(_RANK_BOARD)
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
        step = outs[0]["stats"]["step"]
        self.assertEqual((step["count"], step["slowest_rank"]), (3, 1))
        self.assertEqual({r: f["count"] for r, f in step["ranks"].items()}, {"0": 1, "1": 2})
        from prometheus_client.parser import text_string_to_metric_families

        ranks = {
            s.labels["rank"]
            for family in text_string_to_metric_families(outs[0]["metrics"])
            if family.name.startswith("torch_telemetry")
            for s in family.samples
        }
        self.assertEqual(ranks, {"0", "1"})


if __name__ == "__main__":
    run_tests()
