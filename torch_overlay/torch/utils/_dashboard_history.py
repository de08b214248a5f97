"""The time series kept by :func:`torch.utils.dashboard.live_dashboard` and served at ``/api/history``.

A ring buffer of samples, one per refresh, taken by the dashboard's sampling
thread from the telemetry figures (cumulative) and the host metrics.  Each sample
keeps, per name, what happened *in that interval*: the calls (count delta),
errors, calls per second and the mean duration of those calls, plus the
cumulative p50/p95 at the end of the interval (the figures carry no per-interval
histogram).  Only the names that had calls in an interval are stored in its
sample, so an idle name costs nothing and shows as a gap.

Memory is bounded by the number of samples, ``ceil(window / interval) + 1`` (at
most :data:`MAX_SAMPLES`): about 120 bytes per sample plus about 200 bytes per
name with calls in it, and about 150 bytes per GPU; an hour at one sample per
second with ten busy names and one GPU is under 10 MB.
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any


__all__: list[str] = []

# The most samples one history keeps (a week at one per second would need 604801).
MAX_SAMPLES = 1_000_000

_GPU_FIELDS = ("utilization_percent", "memory_used_bytes", "memory_total_bytes", "power_watts", "temperature_c")


def samples_for(window: float, interval: float) -> int:
    """The number of samples that cover ``window`` seconds at one per ``interval`` seconds, the newest included."""
    return math.ceil(window / interval) + 1


class History:
    """A bounded series of per-interval figures; not thread-safe: the caller holds a lock.

    ``sample(stats, process, gpus)`` is given the cumulative telemetry figures
    (``{name: {"count", "errors", "total_ms", "p50_ms", "p95_ms", ...}}``), the
    process metrics (``{"rss_bytes", "cpu_seconds"}``, values may be ``None``)
    and the GPU metrics (a list of dicts, or ``None`` without NVML).  The first
    call only records the baseline, so the figures recorded before the dashboard
    started do not show as one spike.  A name whose count went down was
    :func:`~torch.utils.telemetry.reset`: its interval counts from zero.
    """

    def __init__(self, window: float, interval: float) -> None:
        self.window = window
        self.interval = interval
        self.samples: collections.deque[tuple[Any, ...]] = collections.deque(
            maxlen=min(samples_for(window, interval), MAX_SAMPLES)
        )
        self._previous: dict[str, tuple[int, int, float]] | None = None
        self._previous_cpu: float | None = None
        self._previous_at = 0.0

    def sample(
        self,
        stats: dict[str, dict[str, Any]],
        process: dict[str, Any],
        gpus: list[dict[str, Any]] | None,
        *,
        now: float | None = None,
        monotonic: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        monotonic = time.monotonic() if monotonic is None else monotonic
        current = {name: (int(s["count"]), int(s["errors"]), float(s["total_ms"])) for name, s in stats.items()}
        cpu = process.get("cpu_seconds")
        previous, self._previous = self._previous, current
        previous_cpu, self._previous_cpu = self._previous_cpu, cpu
        elapsed, self._previous_at = monotonic - self._previous_at, monotonic
        if previous is None:
            return
        names = {}
        for name, (count, errors, total) in current.items():
            before = previous.get(name, (0, 0, 0.0))
            if count < before[0]:  # reset() since the previous sample
                before = (0, 0, 0.0)
            calls = count - before[0]
            if calls <= 0:
                continue
            s = stats[name]
            names[name] = (calls, max(0, errors - before[1]), max(0.0, total - before[2]) / calls, s["p50_ms"], s["p95_ms"])
        cpu_percent = None
        if cpu is not None and previous_cpu is not None and elapsed > 0:
            cpu_percent = max(0.0, cpu - previous_cpu) / elapsed * 100
        gpu_rows = tuple(
            (str(g.get("index")), g.get("name"), g.get("uuid"), g.get("error"), tuple(g.get(f) for f in _GPU_FIELDS))
            for g in gpus or ()
        )
        self.samples.append((round(now, 3), elapsed, names, process.get("rss_bytes"), cpu_percent, gpu_rows))

    def to_json(self, since: float | None = None) -> dict[str, Any]:
        """The samples newer than ``since`` (unix seconds; all of them by default), column by column.

        ``t`` holds the timestamps; every other list has one entry per timestamp.
        ``names[name]`` has ``calls``, ``errors`` and ``calls_per_s`` (``0`` in an
        interval without calls) and ``mean_ms``, ``p50_ms``, ``p95_ms`` (``null``
        in an interval without calls: a gap).  ``process`` has ``rss_bytes`` and
        ``cpu_percent`` (of one core, over the interval); ``gpus[index]`` has
        ``name``, ``uuid`` and ``error`` (as of the newest sample) and one list per
        metric (``null`` where it could not be read).
        """
        rows = [s for s in self.samples if since is None or s[0] > since]
        n = len(rows)
        names: dict[str, dict[str, list[Any]]] = {}
        gpus: dict[str, dict[str, Any]] = {}
        rss, cpu = [], []
        for i, (_, elapsed, per_name, rss_bytes, cpu_percent, gpu_rows) in enumerate(rows):
            rss.append(rss_bytes)
            cpu.append(None if cpu_percent is None else round(cpu_percent, 2))
            for name, (calls, errors, mean, p50, p95) in per_name.items():
                series = names.get(name)
                if series is None:
                    series = names[name] = {
                        "calls": [0] * n,
                        "errors": [0] * n,
                        "calls_per_s": [0.0] * n,
                        "mean_ms": [None] * n,
                        "p50_ms": [None] * n,
                        "p95_ms": [None] * n,
                    }
                series["calls"][i] = calls
                series["errors"][i] = errors
                # Rounded for the wire: 1 ns for durations, 1/1000 call per second.
                series["calls_per_s"][i] = round(calls / elapsed, 3) if elapsed > 0 else None
                series["mean_ms"][i] = round(mean, 6)
                series["p50_ms"][i], series["p95_ms"][i] = p50, p95
            for index, gpu_name, uuid, error, values in gpu_rows:
                gpu = gpus.get(index)
                if gpu is None:
                    gpu = gpus[index] = {f: [None] * n for f in _GPU_FIELDS}
                gpu.update(name=gpu_name, uuid=uuid, error=error)  # as of the newest sample
                for field, value in zip(_GPU_FIELDS, values):
                    gpu[field][i] = value
        return {
            "interval_s": self.interval,
            "window_s": self.window,
            "t": [s[0] for s in rows],
            "names": names,
            "process": {"rss_bytes": rss, "cpu_percent": cpu},
            "gpus": gpus,
        }
