r"""
Views of :mod:`torch.utils.telemetry`: a text table, a live terminal view and a live web page.

* :func:`show` prints the figures of :func:`torch.utils.telemetry.snapshot`
  as an aligned table.
* :func:`watch` redraws that table in a terminal every ``refresh`` seconds.
* :func:`live_dashboard` serves, from a background thread and with the
  standard library only, a self-contained page with the live table, the
  charts over time and the host and GPU metrics (``/``), the snapshot as JSON
  (``/api/stats``), the time series it keeps (``/api/history``) and the
  Prometheus text exposition format (``/metrics``).

Nothing runs until one of these is called: importing the module starts no
thread and opens no socket.  The server's threads never die from an error: a
failing request gets a ``500``, and any error is logged on
``logging.getLogger("torch.utils.dashboard")`` (shown with
``TORCH_LOGS="telemetry"``) while the server goes on serving.
"""

from __future__ import annotations

import errno
import html
import ipaddress
import json
import logging
import math
import os
import socket
import socketserver
import sys
import threading
import time
import warnings
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast, Literal, TextIO
from urllib.parse import parse_qs, urlsplit
from typing_extensions import Self

from torch.utils import _dashboard_host, _telemetry_job, _telemetry_workers, telemetry as _telemetry
from torch.utils._dashboard_history import History, MAX_SAMPLES, samples_for
from torch.utils._dashboard_page import CONTENT_SECURITY_POLICY, PAGE
from torch.utils._memory_size import format_memory_size


__all__ = ["LiveDashboard", "live_dashboard", "show", "watch"]

_log = logging.getLogger(__name__)

_COLUMNS = ("name", "device", "calls", "errors", "mean", "p50", "p95", "min", "max", "total", "peak memory")
_NUMERIC = frozenset(_COLUMNS[2:])


def _duration(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms * 1000:.1f} us"


def _rows(stats: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    ordered = sorted(stats.items(), key=lambda item: (-item[1]["total_ms"], item[0]))
    return [
        (
            name,
            s["device"],
            str(s["count"]),
            str(s["errors"]),
            _duration(s["mean_ms"]),
            _duration(s["p50_ms"]),
            _duration(s["p95_ms"]),
            _duration(s["min_ms"]),
            _duration(s["max_ms"]),
            _duration(s["total_ms"]),
            "-" if s["peak_memory_bytes"] is None else format_memory_size(s["peak_memory_bytes"]),
        )
        for name, s in ordered
    ]


def _table(stats: dict[str, dict[str, Any]]) -> str:
    if not stats:
        return "no timed calls recorded (decorate a function with @torch.utils.telemetry.telemetry)\n"
    # Names are user data: show control characters escaped so they cannot move the cursor.
    rows = [(name.encode("unicode_escape").decode("ascii"), *rest) for name, *rest in _rows(stats)]
    widths = [max(len(col), *(len(row[i]) for row in rows)) for i, col in enumerate(_COLUMNS)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if col in _NUMERIC else cell.ljust(width)
            for cell, width, col in zip(cells, widths, _COLUMNS)
        ).rstrip()

    out = [line(_COLUMNS), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    return "\n".join(out) + "\n"


def show(file: TextIO | None = None) -> None:
    r"""Print the figures recorded by :mod:`torch.utils.telemetry` as an aligned table.

    One row per name, slowest total first: device, calls, errors, mean, p50,
    p95, min, max and total duration, and peak device memory (``-`` on CPU).

    Args:
        file: where to write: a text file object, anything with a ``write``
            method (default: :data:`sys.stdout`).

    Raises:
        TypeError: ``file`` has no ``write`` method (e.g. a path was given).

    Example::

        >>> from torch.utils.dashboard import show
        >>> from torch.utils.telemetry import reset, telemetry
        >>> reset()
        >>> with telemetry("load"):
        ...     pass
        >>> show()  # doctest: +SKIP
        name  device  calls  errors     mean      p50      p95      min      max    total  peak memory
        ----  ------  -----  ------  -------  -------  -------  -------  -------  -------  -----------
        load  cpu         1       0   2.1 us   2.1 us   2.1 us   2.1 us   2.1 us   2.1 us            -
    """
    _check_file(file, "show").write(_table(_telemetry.snapshot()))


def _check_file(file: object, caller: str) -> Any:
    if file is None:
        return sys.stdout
    if not callable(getattr(file, "write", None)):
        raise TypeError(
            f"{caller}(): file must be a file object with a write() method (e.g. sys.stdout, or "
            f"open(path, 'w') for a path), but got {file!r}"
        )
    return file


# The longest refresh interval accepted: one day (the page's timer takes milliseconds as an int,
# and a longer interval is a typo for "never").
_MAX_REFRESH = 86400.0


def _check_refresh(refresh: object, caller: str, *, positive: bool) -> float:
    bound = "> 0" if positive else ">= 0"
    if isinstance(refresh, bool) or not isinstance(refresh, (int, float)):
        raise TypeError(f"{caller}(): refresh must be a number of seconds {bound} (int or float), but got {refresh!r}")
    # Compared before any float conversion: an int such as 10**400 has none.
    if refresh != refresh or refresh < 0 or (positive and refresh == 0) or refresh > _MAX_REFRESH:
        big = isinstance(refresh, int) and refresh.bit_length() > 64
        shown = f"an integer of {int(refresh).bit_length()} bits" if big else repr(refresh)
        raise ValueError(
            f"{caller}(): refresh must be a finite number of seconds {bound} and at most {_MAX_REFRESH:g} "
            f"(one day), but got {shown}"
        )
    return float(refresh)


def watch(refresh: float = 1.0, *, iterations: int | None = None, file: TextIO | None = None) -> None:
    r"""Redraw the telemetry table in a terminal every ``refresh`` seconds.

    Clears the screen with ANSI escape codes and draws :func:`show`'s table
    with a timestamp, until ``iterations`` redraws are done or Ctrl-C.

    Args:
        refresh: seconds between redraws.
        iterations: stop after this many redraws (default: until interrupted).
        file: the terminal to draw on (default: :data:`sys.stdout`).

    Raises:
        TypeError: ``refresh`` is not a number, ``iterations`` not an int
            or ``file`` has no ``write`` method.
        ValueError: ``refresh`` is negative, not finite or above 86400 (one
            day), or ``iterations`` is less than 1.

    Example::

        >>> import io
        >>> from torch.utils.dashboard import watch
        >>> out = io.StringIO()
        >>> watch(refresh=0, iterations=2, file=out)
        >>> out.getvalue().count("\x1b[2J")
        2
    """
    refresh = _check_refresh(refresh, "watch", positive=False)
    if iterations is not None:
        if isinstance(iterations, bool) or not isinstance(iterations, int):
            raise TypeError(f"watch(): iterations must be an int >= 1 or None, but got {iterations!r}")
        if iterations < 1:
            raise ValueError(f"watch(): iterations must be >= 1 or None (until Ctrl-C), but got {iterations!r}")
    out = _check_file(file, "watch")
    drawn = 0
    try:
        while iterations is None or drawn < iterations:
            if drawn:
                time.sleep(refresh)
            stamp = time.strftime("%H:%M:%S")
            out.write(f"\x1b[H\x1b[2Jtorch.utils.telemetry  {stamp}  (Ctrl-C to stop)\n\n{_table(_telemetry.snapshot())}")
            flush = getattr(out, "flush", None)
            if flush is not None:
                flush()
            drawn += 1
    except KeyboardInterrupt:
        out.write("\n")


def _stats() -> dict[str, dict[str, Any]]:
    """The figures per name shown by ``/api/stats``, the page and the history."""
    return _telemetry_job._job_snapshot()


def _metrics() -> str:
    """The telemetry part of ``/metrics``, in the Prometheus text format."""
    return _telemetry_job._exposition()


def _job_size() -> int:
    """The number of ranks of the default group, 1 without :mod:`torch.distributed`."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _host_prometheus() -> str:
    labels = {}
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        labels["rank"] = str(dist.get_rank())
    return _dashboard_host.prometheus(_dashboard_host.process_metrics(), _dashboard_host.gpu_metrics(), labels)


def _json(stats: dict[str, Any]) -> str:
    # Valid JSON either way; escaping <, > and & keeps a name inert even if a
    # client ignores the Content-Type and sniffs the body as HTML.
    text = json.dumps(stats, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The page's columns after the name, as _rows gives them, with calls/s (from the history) after calls;
# "opt" columns are hidden on narrow screens.
_PAGE_CELLS = ((0, "opt"), (1, ""), (None, ""), (2, ""), (3, ""), (4, ""), (5, ""), (6, "opt"), (7, "opt"), (8, "opt"),
               (9, ""))


def _first_paint_rows(stats: dict[str, dict[str, Any]]) -> str:
    def cell(text: str, cls: str) -> str:
        return f'<td class="{cls}">{html.escape(text)}</td>' if cls else f"<td>{html.escape(text)}</td>"

    return "".join(
        f'<tr><td class="name">{html.escape(name)}</td>'
        + "".join(cell("\u2013" if i is None else rest[i], cls) for i, cls in _PAGE_CELLS)
        + "</tr>"
        for name, *rest in _rows(stats)
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "torch-telemetry"
    sys_version = ""
    # One request per connection (HTTP/1.0) and a read timeout: stop() joins the
    # handler threads, and a client that connects and sends nothing must not hold it.
    timeout = 5.0

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s - " + format, self.address_string(), *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, extra: dict[str, str] | None = None) -> None:
        self._send(status, f"{status.value} {status.phrase}\n".encode(), "text/plain; charset=utf-8", extra)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path == "/":
                refresh = self.server.refresh
                page = PAGE.substitute(
                    refresh=f"{refresh:g}",
                    refresh_ms=str(max(50, int(refresh * 1000))),
                    rows=_first_paint_rows(_stats()),
                )
                self._send(
                    HTTPStatus.OK,
                    page.encode(),
                    "text/html; charset=utf-8",
                    {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"},
                )
            elif path == "/api/stats":
                self._send(HTTPStatus.OK, _json(_stats()).encode(), "application/json")
            elif path == "/api/history":
                since = self._since()
                if since is None:
                    return
                self._send(HTTPStatus.OK, _json(self.server.history_json(since)).encode(), "application/json")
            elif path == "/metrics":
                body = (_metrics() + _host_prometheus()).encode()
                self._send(HTTPStatus.OK, body, "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._error(HTTPStatus.NOT_FOUND)
        except Exception:
            _log.exception("live_dashboard: failed to serve %s", path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR)

    do_HEAD = do_GET

    def _since(self) -> float | Literal[False] | None:
        """``?since=`` (unix seconds) as a float, ``False`` when absent; ``None`` after answering ``400``."""
        values = parse_qs(urlsplit(self.path).query).get("since")
        if not values:
            return False
        try:
            since = float(values[-1])
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            body = f"since must be a finite number of seconds since the epoch, but got {values[-1]!r}\n"
            self._send(HTTPStatus.BAD_REQUEST, body.encode(), "text/plain; charset=utf-8")
            return None
        return since

    def _read_only(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _read_only


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    refresh: float
    history: History
    history_lock: threading.Lock

    def history_json(self, since: float | Literal[False]) -> dict[str, Any]:
        with self.history_lock:
            return self.history.to_json(None if since is False else since)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints the traceback to stderr; report it on our logger and keep serving.
        _log.exception("live_dashboard: error while handling a request from %s; still serving", client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS query we do not need.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = cast(str, host)  # an AF_INET or AF_INET6 address: the host is a str


class _ServerV6(_Server):
    address_family = socket.AF_INET6


class LiveDashboard:
    r"""A running :func:`live_dashboard` server: its address, and how to stop it.

    Created by :func:`live_dashboard`, not directly.  ``stop()`` (or leaving
    the ``with`` block) shuts the server down, closes its socket, so the port
    can be bound again at once, and joins its thread.  Dropping the last
    reference does not stop it: the server and history threads (daemon
    threads) keep serving until ``stop()`` or the end of the process, so
    use it in a ``with`` block or call ``stop()``.

    Attributes:
        url (str): the page's address, e.g. ``"http://127.0.0.1:8000/"``;
            ``url + "api/stats"``, ``url + "api/history"`` and ``url + "metrics"``
            are the other endpoints.
        host (str): the address bound.
        port (int): the port bound (the one picked by the OS for ``port=0``).

    Example::

        >>> from torch.utils.dashboard import live_dashboard
        >>> with live_dashboard() as board:
        ...     board.url.startswith("http://127.0.0.1:")
        True
        >>> board.running
        False
    """

    def __init__(self, server: _Server, host: str) -> None:
        self._server = server
        self._pid = os.getpid()
        self.host = host
        self.port: int = server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"torch.utils.dashboard:{self.port}", daemon=True)
        self._sampler = threading.Thread(
            target=self._sample_loop, name=f"torch.utils.dashboard:{self.port}:history", daemon=True
        )
        # Under torch.distributed, every rank's board publishes its figures to the job's store,
        # so that any board (open rank 0's) shows the whole job.
        self._publisher = _telemetry_job._Publisher(server.refresh) if _job_size() > 1 else None
        # The threads read DataLoader workers' spool directory, which asks tempfile.gettempdir(): its
        # first call holds tempfile's lock while it probes the directory, and a fork in that window would
        # leave the child's copy of the lock held forever.  Ask it here, before any thread runs.
        _telemetry_workers.spool_dir(os.getpid())
        try:
            self._thread.start()
            self._sampler.start()
            if self._publisher is not None:
                self._publisher.start()
        except BaseException:
            self._stopped = True
            self._wake.set()
            if self._publisher is not None:
                self._publisher.stop()
            if self._thread.is_alive():
                server.shutdown()
                self._thread.join()
            server.server_close()
            raise

    def _sample(self) -> None:
        stats = _stats()
        process = _dashboard_host.process_metrics()
        gpus = _dashboard_host.gpu_metrics()
        with self._server.history_lock:
            self._server.history.sample(stats, process, gpus)

    def _sample_loop(self) -> None:
        # Its own thread, not the server loop's: a snapshot waits for pending device timings,
        # and accepting connections must not wait for them.  Never dies from an error: it
        # reports the first of a run of failures and samples again at the next refresh.
        failing = False
        while not self._stopped:
            try:
                self._sample()
            except Exception:
                if not failing:
                    _log.warning("live_dashboard: could not sample the history; trying again every refresh",
                                 exc_info=True)
                failing = True
            else:
                if failing:
                    _log.warning("live_dashboard: sampling the history works again")
                failing = False
            self._wake.wait(self._server.refresh)

    def _serve(self) -> None:
        # The thread must not die from an error while the board is running: report it, go on serving.
        while not self._stopped:
            try:
                self._server.serve_forever(poll_interval=0.1)
                return
            except Exception:
                _log.exception("live_dashboard: the server loop of %s failed; still serving", self.url)
                time.sleep(0.1)

    def __repr__(self) -> str:
        return f"LiveDashboard(url={self.url!r}, running={self.running})"

    @property
    def running(self) -> bool:
        """Whether the server thread is serving requests."""
        return (
            not self._stopped and os.getpid() == self._pid and self._thread.is_alive() and self._sampler.is_alive()
        )

    def stop(self) -> None:
        r"""Stop serving, free the port and join the server thread; idempotent.

        The history sampling thread is stopped and joined too (after the sample
        it may be taking).  Requests in progress are finished first; a client that connected but
        sends nothing is dropped after a 5 s read timeout.  In a forked child
        (which inherits the socket but not the thread) it only closes the
        child's copy of the socket.

        Example::

            >>> from torch.utils.dashboard import live_dashboard
            >>> board = live_dashboard()
            >>> board.stop()
            >>> board.stop()  # a second call does nothing
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self._wake.set()
        if os.getpid() == self._pid:
            if self._publisher is not None:
                self._publisher.stop()
            self._server.shutdown()
            self._thread.join()
            self._sampler.join()
        self._server.server_close()
        _log.debug("live_dashboard: stopped %s", self.url)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _check_host(host: object) -> str:
    if not isinstance(host, str):
        raise TypeError(f"live_dashboard(): host must be a str (a host name or IP address), but got {host!r}")
    expected = "a host name or IP address such as '127.0.0.1', '::1', 'localhost' or '0.0.0.0'"
    if not host or host != host.strip() or any(c.isspace() or c in "/[]@?#" for c in host):
        raise ValueError(f"live_dashboard(): host must be {expected} (not a URL, no brackets), but got {host!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"live_dashboard(): host must be {expected}, but got {host!r}; pass a port as port=, not in host"
            ) from None
    return host


def _check_history(history: object, refresh: float) -> float:
    if isinstance(history, bool) or not isinstance(history, (int, float)):
        raise TypeError(f"live_dashboard(): history must be a number of seconds > 0 (int or float), but got {history!r}")
    # Compared before any float conversion: an int such as 10**400 has none.
    if not (history > 0 and (isinstance(history, int) or math.isfinite(history))):
        raise ValueError(f"live_dashboard(): history must be a finite number of seconds > 0, but got {history!r}")
    if history > (MAX_SAMPLES - 1) * refresh or samples_for(history, refresh) > MAX_SAMPLES:
        big = isinstance(history, int) and history.bit_length() > 64
        shown = f"an integer of {int(history).bit_length()} bits" if big else f"{history!r} seconds"
        raise ValueError(
            f"live_dashboard(): history ({shown}) at refresh={refresh!r} would keep more than "
            f"{MAX_SAMPLES} samples; shorten history or lengthen refresh"
        )
    return float(history)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def live_dashboard(
    host: str = "127.0.0.1", port: int = 0, refresh: float = 1.0, *, history: float = 3600.0
) -> LiveDashboard:
    r"""Serve a live web view of :mod:`torch.utils.telemetry` from a background thread.

    Endpoints (all read-only: other methods get ``405``, other paths ``404``,
    no file is ever served):

    * ``/``: a self-contained page (no external assets), refreshed every
      ``refresh`` seconds: the table with calls per second, charts over time
      (mean duration and calls per second per name, drawn from
      ``/api/history`` so a reload keeps the past, with a time axis, gaps where
      a name had no calls, a toggle per name and a log scale), p50/p95 and
      peak memory per name, the process's memory and CPU and each GPU's
      utilisation, memory, power and temperature.  Colours are stable per name.
      The view is kept in the browser and can be linked to: ``#log`` (log
      scale), ``span=300`` (the last 300 s) and ``hide=NAME`` (repeatable),
      e.g. ``board.url + "#log&span=900&hide=data.load"``.
      When the figures carry ``"ranks"`` and ``"slowest_rank"`` (a job's merged
      figures), the slowest rank of each name is highlighted.
    * ``/api/stats``: :func:`torch.utils.telemetry.snapshot` as JSON (under
      :mod:`torch.distributed`, the job's figures merged over the ranks, as
      ``snapshot(all_ranks=True)`` gives them, without a collective);
    * ``/api/history``: the time series the server keeps (below) as JSON;
      ``?since=T`` returns only the samples after ``T`` (unix seconds);
    * ``/metrics``: the same figures in the Prometheus text exposition format
      (``torch_telemetry_calls_total``, ``torch_telemetry_errors_total``,
      ``torch_telemetry_duration_seconds`` histogram (``_bucket``/``_sum``/
      ``_count``, see :mod:`torch.utils.telemetry`),
      ``torch_telemetry_duration_min_seconds`` / ``_max_seconds``,
      ``torch_telemetry_peak_memory_bytes``, labelled by ``name`` and
      ``device``), then the process's ``process_resident_memory_bytes`` and
      ``process_cpu_seconds_total`` and, through NVML, each GPU's
      ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_FB_USED`` (MiB),
      ``DCGM_FI_DEV_POWER_USAGE`` (W) and ``DCGM_FI_DEV_GPU_TEMP`` (C),
      labelled ``gpu`` (NVML's index), ``UUID`` and ``modelName`` as
      dcgm-exporter does (and ``rank`` under :mod:`torch.distributed`).

    Ranks: under :mod:`torch.distributed` (more than one rank), call it on
    every rank (``port=0``, or one port per rank on a shared host): each board
    publishes its rank's figures to the default store every ``refresh``
    seconds, and every board, rank 0's included, shows the whole job with the
    slowest rank per name highlighted and a ``rank`` label on ``/metrics``.
    A rank that never started a board is missing from the job's figures.

    History: a second thread samples the figures every ``refresh`` seconds
    into a ring buffer covering the last ``history`` seconds (at most
    ``1_000_000`` samples).  A sample holds its unix timestamp and, per name
    with calls in that interval, the calls, errors, calls per second and mean
    duration of that interval and the cumulative p50/p95 at its end; a name
    without calls in an interval has ``calls`` 0 and ``null`` durations there
    (a gap).  It also holds the process's RSS and CPU use and the GPU metrics.
    Memory: about 120 bytes per sample, 200 per busy name per sample and 150
    per GPU per sample, e.g. under 10 MB for an hour at one sample per second
    with ten busy names.  Nothing bounds the number of names: the history,
    ``/api/stats`` and ``/metrics`` grow with the names that have calls (a
    few kilobytes each in ``/metrics``), so time a bounded set of names (not
    one per request or per file).  GPU metrics come from NVML only: no CUDA context is
    created, and a GPU (or a metric) NVML cannot read is shown as such while
    the others are read.

    Args:
        host: the address to bind.  Loopback by default; any other address
            makes the figures (and your function names) reachable from other
            machines, so it warns.
        port: the TCP port; ``0`` lets the OS pick a free one (see ``.url``).
        refresh: seconds between the page's updates and between the
            history's samples, at most 86400 (one day).
        history: how many seconds of history the server keeps (default one
            hour); the latest two samples are kept however short it is.

    Returns:
        LiveDashboard: a handle with ``.url`` and ``.stop()``, also a context
        manager that stops the server on exit.  The server runs until
        ``stop()`` (or the end of the process), even if the handle is
        dropped.

    Raises:
        TypeError: ``host`` is not a str, ``port`` not an int, or ``refresh``
            or ``history`` not a number.
        ValueError: ``host`` is empty or not a host name or address (a URL,
            ``host:port``), ``port`` is outside 0..65535, ``refresh`` is not
            a finite number > 0 and at most 86400, ``history`` is not a
            finite number > 0 or
            would need more than ``1_000_000`` samples at ``refresh``.
        OSError: the address cannot be bound; ``errno.EADDRINUSE`` when the
            port is already in use, with a message saying so.

    .. note::
        Every name is user data and is escaped wherever it is shown: as HTML
        text in the page (and never inserted as markup by its script), as JSON
        strings, and as Prometheus label values.  The server exposes figures
        only, but it has no authentication: keep it on loopback and reach it
        through an SSH tunnel, or bind elsewhere deliberately.

    Example::

        >>> import json, urllib.request
        >>> from torch.utils.dashboard import live_dashboard
        >>> from torch.utils.telemetry import telemetry
        >>> with telemetry("step"):
        ...     pass
        >>> with live_dashboard(port=0) as board:
        ...     stats = json.load(urllib.request.urlopen(board.url + "api/stats"))
        >>> stats["step"]["count"] >= 1
        True
    """
    host = _check_host(host)
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"live_dashboard(): port must be an int, but got {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"live_dashboard(): port must be in 0..65535 (0 picks a free port), but got {port}")
    refresh = _check_refresh(refresh, "live_dashboard", positive=True)
    window = _check_history(history, refresh)

    server_class = _ServerV6 if ":" in host else _Server
    try:
        server = server_class((host, port), _Handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise OSError(
                errno.EADDRINUSE,
                f"live_dashboard(): port {port} on {host} is already in use; stop what holds it, "
                "or pass port=0 to let the OS pick a free port",
            ) from e
        raise OSError(e.errno, f"live_dashboard(): cannot serve on {host}:{port}: {e.strerror or e}") from e
    server.refresh = refresh
    server.history = History(window, refresh)
    server.history_lock = threading.Lock()
    if not _is_loopback(host):
        # Only once the address is bound: a host that fails gets its error, not a warning first.
        warnings.warn(
            f"live_dashboard(): serving telemetry on {host!r}, which is not a loopback address: "
            "anyone who can reach this machine can read the figures and function names",
            UserWarning,
            stacklevel=2,
        )
    board = LiveDashboard(server, host)
    _log.info("live_dashboard: serving telemetry at %s", board.url)
    return board
