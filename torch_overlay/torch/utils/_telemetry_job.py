"""The whole job's telemetry without a collective, and its Prometheus exposition (private).

Used by :mod:`torch.utils.dashboard`, whose server thread cannot run a collective:

* :class:`_Publisher` (every rank but the one serving): a daemon thread that writes this rank's raw
  figures to the default :mod:`torch.distributed` store every ``interval`` seconds, under
  ``torch.utils.telemetry/<rank>``; :meth:`_Publisher.stop` writes them a last time.
* :func:`_job_snapshot` (the serving rank): what every rank published, merged, in the format of
  ``snapshot(all_ranks=True)``, with this rank's own figures read live; plain ``snapshot()`` without
  :mod:`torch.distributed`.
* :func:`_exposition`: the Prometheus text format of the same figures.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from typing import Any, cast
from typing_extensions import Self

from torch.utils import telemetry as _telemetry


_log = logging.getLogger("torch.utils.telemetry")

_KEY = "torch.utils.telemetry/"

# Bucket bounds of the exported histogram: powers of four nanoseconds from 2**10 ns (~1 us) to 2**42 ns
# (~73 min), edges of the log histogram, so each cumulative count is exact; 17 bounds + "+Inf".
_BOUNDS_LOG2 = tuple(range(10, 43, 2))


def _distributed() -> Any:
    """``torch.distributed`` if a default process group is initialized, else ``None``."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _store() -> Any:
    from torch.distributed.distributed_c10d import _get_default_store

    return _get_default_store()


class _Publisher:
    """Writes this rank's figures to the default store every ``interval`` seconds, from a daemon thread.

    ``start()`` returns at once; ``stop()`` (idempotent, also a context manager exit) ends the thread and
    publishes a last time.  An error while publishing is logged and the thread goes on.
    """

    def __init__(self, interval: float = 1.0) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"_Publisher(): interval must be a number of seconds, but got {interval!r}")
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(f"_Publisher(): interval must be finite and > 0 (seconds), but got {interval!r}")
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Self:
        if _distributed() is None:
            raise RuntimeError(
                "_Publisher.start(): torch.distributed is not initialized (torch.distributed.init_process_group)"
            )
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="torch.utils.telemetry publisher", daemon=True)
            self._thread.start()
        return self

    def publish(self) -> None:
        dist = _distributed()
        if dist is None:
            return
        states = _telemetry._local_states()
        _store().set(_KEY + str(dist.get_rank()), json.dumps(states))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish()
            except Exception:
                _log.exception("telemetry: could not publish this rank's figures; trying again")

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
            try:
                self.publish()
            except Exception:
                _log.exception("telemetry: could not publish this rank's last figures")


def _job_states() -> dict[int | None, dict[str, dict[str, Any]]]:
    """Raw figures per rank: this rank's live, the others' as last published; ``{None: ...}`` alone."""
    dist = _distributed()
    if dist is None:
        return {None: _telemetry._local_states()}
    own = dist.get_rank()
    store = _store()
    per_rank: dict[int | None, dict[str, dict[str, Any]]] = {}
    for rank in range(dist.get_world_size()):
        if rank == own:
            per_rank[rank] = _telemetry._local_states()
            continue
        key = _KEY + str(rank)
        try:
            if not store.check([key]):  # never blocks, unlike get()
                continue
            states = json.loads(store.get(key))
        except Exception as e:
            _log.warning("telemetry: cannot read the figures of rank %d (%s: %s)", rank, type(e).__name__, e)
            continue
        for state in states.values():
            state["buckets"] = {int(i): n for i, n in state["buckets"].items()}
        per_rank[rank] = states
    return per_rank


def _job_snapshot() -> dict[str, dict[str, Any]]:
    """``snapshot(all_ranks=True)``'s format from what the ranks published; ``snapshot()`` alone."""
    if _distributed() is None:
        return _telemetry.snapshot()
    # In a distributed job every key is a rank (None only stands for a single process).
    return _telemetry._merged_view(cast("dict[int, dict[str, dict[str, Any]]]", _job_states()))


def _label(value: str) -> str:
    # Prometheus text format: a label value escapes backslash, double quote and line feed.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _seconds(ns: float) -> str:
    return repr(ns / 1e9)


def _exposition(per_rank: dict[int | None, dict[str, dict[str, Any]]] | None = None) -> str:
    """The Prometheus text exposition of the job's (or this process's) figures.

    Per name (and per rank, with a ``rank`` label when :mod:`torch.distributed` is initialized):
    ``torch_telemetry_calls_total``, ``torch_telemetry_errors_total`` (counters),
    ``torch_telemetry_duration_seconds`` (a histogram: 18 ``_bucket`` series with the same ``le`` bounds
    for every name and process, so a Prometheus server can sum them, plus ``_sum`` and ``_count``: 20
    series), ``torch_telemetry_duration_min_seconds``/``_max_seconds`` and
    ``torch_telemetry_peak_memory_bytes`` (gauges; the peak only on an accelerator): at most 25 series per
    name and rank.  The ``le`` bounds are 2**10, 2**12, ..., 2**42 ns written in seconds; a bucket counts
    the durations strictly below its bound (durations are whole nanoseconds, so one exactly on a bound
    falls in the next bucket).  The p50/p95 summary of earlier releases is gone: a Prometheus server
    computes quantiles of the summed buckets with ``histogram_quantile``.
    """
    if per_rank is None:
        per_rank = _job_states()
    families: list[tuple[str, str, str, list[str]]] = [
        ("torch_telemetry_calls_total", "counter", "Timed calls, failed ones included.", []),
        ("torch_telemetry_errors_total", "counter", "Timed calls that raised.", []),
        ("torch_telemetry_duration_seconds", "histogram", "Duration of timed calls.", []),
        ("torch_telemetry_duration_min_seconds", "gauge", "Shortest timed call.", []),
        ("torch_telemetry_duration_max_seconds", "gauge", "Longest timed call.", []),
        ("torch_telemetry_peak_memory_bytes", "gauge", "Peak device memory allocated (sampled at snapshot).", []),
    ]
    calls, errors, duration, low, high, peak = (lines for *_, lines in families)
    for rank in sorted(per_rank, key=lambda r: -1 if r is None else r):
        rank_label = "" if rank is None else f',rank="{rank}"'
        for name, s in sorted(per_rank[rank].items()):
            labels = f'name="{_label(name)}",device="{_label(s["device"])}"{rank_label}'
            calls.append(f"torch_telemetry_calls_total{{{labels}}} {s['count']}")
            errors.append(f"torch_telemetry_errors_total{{{labels}}} {s['errors']}")
            cumulative = sorted(s["buckets"].items())
            seen, i = 0, 0
            for log2 in _BOUNDS_LOG2:
                # Buckets below index (log2 - 3) << 4 hold exactly the durations below 2**log2 ns.
                limit = (log2 - 3) << 4
                while i < len(cumulative) and cumulative[i][0] < limit:
                    seen += cumulative[i][1]
                    i += 1
                duration.append(f'torch_telemetry_duration_seconds_bucket{{{labels},le="{_seconds(2**log2)}"}} {seen}')
            duration.append(f'torch_telemetry_duration_seconds_bucket{{{labels},le="+Inf"}} {s["count"]}')
            duration.append(f"torch_telemetry_duration_seconds_sum{{{labels}}} {_seconds(s['total_ns'])}")
            duration.append(f"torch_telemetry_duration_seconds_count{{{labels}}} {s['count']}")
            timed = s["count"] > 0
            low.append(f"torch_telemetry_duration_min_seconds{{{labels}}} {_seconds(s['min_ns'] if timed else 0)}")
            high.append(f"torch_telemetry_duration_max_seconds{{{labels}}} {_seconds(s['max_ns'])}")
            if s["peak"] is not None:
                peak.append(f"torch_telemetry_peak_memory_bytes{{{labels}}} {s['peak']}")
    out = []
    for family, kind, help_text, lines in families:
        out.append(f"# HELP {family} {help_text}")
        out.append(f"# TYPE {family} {kind}")
        out.extend(lines)
    return "\n".join(out) + "\n"
