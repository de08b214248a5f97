# Owner(s): ["module: tests"]

import datetime
import errno
import html
import http.client
import io
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import warnings
from unittest import mock

from hypothesis import example, given, settings, strategies as st

import torch.utils.dashboard as dashboard
import torch.utils.telemetry as tm
import torch.utils._telemetry_job as _telemetry_job
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    IS_WINDOWS,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils.dashboard import live_dashboard, LiveDashboard, show, watch
from torch.utils.telemetry import reset, telemetry


# Names a user could pick that break naive HTML, JSON or Prometheus output.
NASTY = [
    '<img src=x onerror="alert(1)">',
    "</script><script>alert(2)</script>",
    'quote " backslash \\ end',
    "line\nbreak",
    "ünïcødé ✓ & ampersand",
]


def record(name, durations_ns):
    """Record calls of ``name`` taking exactly ``durations_ns`` (through an injected clock)."""
    reads = []
    for d in durations_ns:
        reads += [0, d]
    state = {"now": 0}

    def clock():
        state["now"] += reads.pop(0)
        return state["now"]

    with mock.patch.object(tm, "_perf_counter_ns", clock):
        for _ in durations_ns:
            with telemetry(name):
                pass


def get(url, method="GET"):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class DashboardTestCase(TestCase):
    def setUp(self):
        super().setUp()
        reset()
        self.addCleanup(reset)
        patcher = mock.patch.object(tm, "_device_module", False)  # host clock: exact, injectable
        patcher.start()
        self.addCleanup(patcher.stop)

    def start(self, **kwargs):
        board = live_dashboard(**kwargs)
        self.addCleanup(board.stop)
        return board


class TestShow(DashboardTestCase):
    def test_table(self):
        record("forward", [2_000_000, 4_000_000])
        record("data.load", [1_500])
        out = io.StringIO()
        show(file=out)
        self.assertExpectedInline(
            out.getvalue(),
            """\
name       device  calls  errors     mean      p50      p95      min      max    total  peak memory
---------  ------  -----  ------  -------  -------  -------  -------  -------  -------  -----------
forward    cpu         2       0  3.00 ms  2.00 ms  4.00 ms  2.00 ms  4.00 ms  6.00 ms            -
data.load  cpu         1       0   1.5 us   1.5 us   1.5 us   1.5 us   1.5 us   1.5 us            -
""",
        )

    def test_empty_and_stdout(self):
        with mock.patch("sys.stdout", new_callable=io.StringIO) as out:
            show()
        self.assertIn("no timed calls recorded", out.getvalue())

    def test_file_must_be_a_file_object(self):
        with self.assertRaises(TypeError) as cm:
            show(file="out.txt")
        self.assertExpectedInline(
            str(cm.exception),
            """show(): file must be a file object with a write() method (e.g. sys.stdout, or open(path, 'w') for a path), but got 'out.txt'""",  # noqa: B950
        )

    def test_control_characters_cannot_move_the_cursor(self):
        record("evil\x1b[2J\nname", [1000])
        out = io.StringIO()
        show(file=out)
        self.assertNotIn("\x1b", out.getvalue())
        self.assertIn("evil\\x1b[2J\\nname", out.getvalue())


class TestWatch(DashboardTestCase):
    def test_redraws_finite_iterations(self):
        record("step", [1000])
        out = io.StringIO()
        with mock.patch("time.sleep") as sleep:
            watch(refresh=0.5, iterations=3, file=out)
        self.assertEqual(out.getvalue().count("\x1b[H\x1b[2J"), 3)
        self.assertEqual(out.getvalue().count("step"), 3)
        self.assertEqual([c.args for c in sleep.call_args_list], [(0.5,), (0.5,)])

    def test_ctrl_c_stops_cleanly(self):
        out = io.StringIO()
        with mock.patch("time.sleep", side_effect=KeyboardInterrupt):
            watch(file=out)
        self.assertEqual(out.getvalue().count("\x1b[2J"), 1)

    def test_bad_arguments(self):
        for kwargs, error in (
            ({"refresh": -1}, ValueError),
            ({"refresh": float("nan")}, ValueError),
            ({"refresh": "1"}, TypeError),
            ({"refresh": True}, TypeError),
            ({"iterations": 0}, ValueError),
            ({"iterations": 1.5}, TypeError),
            ({"iterations": "2"}, TypeError),
        ):
            with self.assertRaises(error, msg=kwargs):
                watch(file=io.StringIO(), **kwargs)
        with self.assertRaises(TypeError) as cm:
            watch(refresh="1", file=io.StringIO())
        self.assertExpectedInline(str(cm.exception), """watch(): refresh must be a number of seconds >= 0 (int or float), but got '1'""")  # noqa: B950
        with self.assertRaises(TypeError) as cm:
            watch(iterations=1.5, file=io.StringIO())
        self.assertExpectedInline(str(cm.exception), """watch(): iterations must be an int >= 1 or None, but got 1.5""")
        with self.assertRaises(TypeError) as cm:
            watch(iterations=1, file="out.txt")
        self.assertIn("watch(): file must be a file object with a write() method", str(cm.exception))

    def test_file_without_flush(self):
        class Sink:
            def __init__(self):
                self.parts = []

            def write(self, text):
                self.parts.append(text)

        sink = Sink()
        watch(refresh=0, iterations=1, file=sink)
        self.assertIn("torch.utils.telemetry", "".join(sink.parts))


class TestEndpoints(DashboardTestCase):
    def test_url_and_context_manager(self):
        with live_dashboard() as board:
            self.assertIsInstance(board, LiveDashboard)
            self.assertRegex(board.url, r"^http://127\.0\.0\.1:\d+/$")
            self.assertEqual(board.url, f"http://127.0.0.1:{board.port}/")
            self.assertTrue(board.running)
        self.assertFalse(board.running)
        self.assertFalse(board._thread.is_alive())

    def test_api_stats_is_the_snapshot(self):
        record("forward", [2_000_000, 4_000_000])
        board = self.start()
        status, headers, body = get(board.url + "api/stats")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(json.loads(body), tm.snapshot())
        status, _, body = get(board.url + "api/stats?cache=0")
        self.assertEqual((status, json.loads(body)["forward"]["count"]), (200, 2))

    def test_page_is_self_contained(self):
        record("forward", [1000])
        board = self.start(refresh=0.5)
        status, headers, body = get(board.url)
        page = body.decode()
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
        self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
        self.assertIn("<td>1</td>", page)
        self.assertIn('<td class="name">forward</td>', page)
        self.assertIn("const REFRESH_MS = 500;", page)
        for external in ("src=", "href=", "@import", "url(", "http://", "https://"):
            self.assertNotIn(external, page.replace("http://www.w3.org/2000/svg", ""))

    def test_head(self):
        board = self.start()
        status, headers, body = get(board.url + "metrics", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertGreater(int(headers["Content-Length"]), 0)

    def test_prometheus_format_parses(self):
        from prometheus_client.parser import text_string_to_metric_families

        record("forward", [2_000_000, 4_000_000])
        with self.assertRaises(ZeroDivisionError):
            with telemetry("forward"):
                1 / 0
        board = self.start()
        status, headers, body = get(board.url + "metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        self.assertIn("process_cpu_seconds", families)  # host metrics follow (test_utils_dashboard_history.py)
        families = {name: f for name, f in families.items() if name.startswith("torch_telemetry")}
        self.assertEqual(
            sorted(families),
            [
                "torch_telemetry_calls",
                "torch_telemetry_duration_max_seconds",
                "torch_telemetry_duration_min_seconds",
                "torch_telemetry_duration_seconds",
                "torch_telemetry_errors",
                "torch_telemetry_peak_memory_bytes",
            ],
        )
        self.assertEqual(families["torch_telemetry_calls"].type, "counter")
        self.assertEqual(families["torch_telemetry_duration_seconds"].type, "histogram")
        samples = {(s.name, s.labels.get("le")): s for s in families["torch_telemetry_duration_seconds"].samples}
        self.assertEqual(samples[("torch_telemetry_duration_seconds_count", None)].value, 3)
        self.assertEqual(samples[("torch_telemetry_duration_seconds_bucket", "+Inf")].value, 3)
        self.assertEqual(samples[("torch_telemetry_duration_seconds_bucket", "+Inf")].labels["name"], "forward")
        self.assertEqual(families["torch_telemetry_errors"].samples[0].value, 1)
        self.assertEqual(families["torch_telemetry_duration_max_seconds"].samples[0].value, 0.004)

    def test_unknown_paths_and_traversal_404(self):
        board = self.start()
        here = os.path.abspath(__file__)
        for path in ("/nope", "/api", "/api/stats/", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd",
                     "/api/../../etc/passwd", "/" + here, "/index.html", "/favicon.ico", "/metrics/../etc/passwd"):
            parts = urllib.parse.urlsplit(board.url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            self.assertEqual(response.status, 404, path)
            self.assertNotIn(b"root:", body)

    @parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    def test_read_only(self, method):
        board = self.start()
        for path in ("", "api/stats", "metrics", "anything"):
            status, headers, _ = get(board.url + path, method=method)
            self.assertEqual(status, 405, (method, path))
            self.assertEqual(headers["Allow"], "GET, HEAD")


class TestEscaping(DashboardTestCase):
    def setUp(self):
        super().setUp()
        for i, name in enumerate(NASTY):
            record(name, [1000 * (i + 1)])
        self.board = self.start()

    def test_html_escaped(self):
        page = get(self.board.url)[2].decode()
        for name in NASTY:
            if any(c in name for c in '<>&"'):
                self.assertNotIn(name, page)
        self.assertIn("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;", page)
        self.assertIn("&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;", page)
        self.assertEqual(page.count("<script>"), 1)  # only the page's own

    def test_json_escaped(self):
        body = get(self.board.url + "api/stats")[2]
        self.assertNotIn(b"<", body)
        self.assertEqual(sorted(json.loads(body)), sorted(NASTY))

    def test_prometheus_labels_escaped(self):
        from prometheus_client.parser import text_string_to_metric_families

        text = get(self.board.url + "metrics")[2].decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        self.assertEqual(sorted(s.labels["name"] for s in families["torch_telemetry_calls"].samples), sorted(NASTY))
        self.assertIn('name="line\\nbreak"', text)
        self.assertIn('name="quote \\" backslash \\\\ end"', text)


class TestEscapingFuzz(TestCase):
    @settings(max_examples=100, deadline=None)
    @given(st.text(min_size=1, max_size=24))
    @example("a\rb\n")
    @example("line\u2028separator\x85")
    @example('{name="x"} 1\n# TYPE')
    def test_any_name_round_trips(self, name):
        from prometheus_client.parser import text_string_to_metric_families

        stats = {name: tm._Stat("cpu").summary()}
        text = _telemetry_job._exposition({None: {name: tm._Stat("cpu").state()}})
        families = {f.name: f for f in text_string_to_metric_families(text)}
        self.assertEqual([s.labels["name"] for s in families["torch_telemetry_calls"].samples], [name])
        self.assertEqual(list(json.loads(dashboard._json(stats))), [name])
        rows = dashboard._first_paint_rows(stats)
        for tag in ("<tr>", "</tr>", "<td>", "</td>", '<td class="name">', '<td class="opt">'):
            rows = rows.replace(tag, "")
        self.assertNotIn("<", rows)


class TestServerLifecycle(DashboardTestCase):
    def test_stop_frees_port_and_ends_thread(self):
        board = live_dashboard()
        port, thread = board.port, board._thread
        board.stop()
        board.stop()  # idempotent
        self.assertFalse(thread.is_alive())
        with self.assertRaises(urllib.error.URLError):
            urllib.request.urlopen(board.url, timeout=5)
        again = self.start(port=port)
        self.assertEqual(again.port, port)
        self.assertEqual(get(again.url + "api/stats")[0], 200)

    def test_port_in_use(self):
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            with self.assertRaises(OSError) as cm:
                live_dashboard(port=port)
        self.assertEqual(cm.exception.errno, errno.EADDRINUSE)
        self.assertIn(f"port {port} on 127.0.0.1 is already in use", str(cm.exception))
        self.assertIn("port=0", str(cm.exception))

    def test_concurrent_clients(self):
        record("forward", [1000])
        board = self.start()
        results = []

        def client(path):
            results.append(get(board.url + path)[0])

        threads = [threading.Thread(target=client, args=(p,)) for p in ["", "api/stats", "metrics"] * 8]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(results, [200] * 24)

    def test_idle_connection_does_not_block_others_or_stop(self):
        with mock.patch.object(dashboard._Handler, "timeout", 0.5):
            board = live_dashboard()
            with socket.create_connection(("127.0.0.1", board.port)):  # connects, never sends
                self.assertEqual(get(board.url + "api/stats")[0], 200)
                board.stop()  # joins the idle handler, which gives up after its read timeout
        self.assertFalse(board.running)

    def test_loopback_is_quiet_and_other_hosts_warn(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.start()
            self.start(host="localhost")
        self.assertEqual(caught, [])
        with self.assertWarnsRegex(UserWarning, "not a loopback address"):
            board = self.start(host="0.0.0.0")
        self.assertEqual(board.url, f"http://0.0.0.0:{board.port}/")

    @unittest.skipIf(not socket.has_ipv6, "no IPv6")
    def test_ipv6_loopback(self):
        try:
            board = self.start(host="::1")
        except OSError as e:
            self.skipTest(f"IPv6 loopback unavailable: {e}")
        self.assertEqual(board.url, f"http://[::1]:{board.port}/")
        self.assertEqual(get(board.url + "api/stats")[0], 200)

    def test_bad_arguments(self):
        for kwargs, error in (
            ({"port": -1}, ValueError),
            ({"port": 70000}, ValueError),
            ({"port": "80"}, TypeError),
            ({"port": True}, TypeError),
            ({"host": None}, TypeError),
            ({"host": 127001}, TypeError),
            ({"host": ""}, ValueError),
            ({"host": " 127.0.0.1"}, ValueError),
            ({"host": "http://127.0.0.1"}, ValueError),
            ({"host": "127.0.0.1:8000"}, ValueError),
            ({"host": "[::1]"}, ValueError),
            ({"refresh": 0}, ValueError),
            ({"refresh": float("inf")}, ValueError),
            ({"refresh": 1e308}, ValueError),
            ({"refresh": 10**400}, ValueError),
            ({"refresh": "1"}, TypeError),
        ):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with self.assertRaises(error, msg=kwargs):
                    live_dashboard(**kwargs)
            self.assertEqual(caught, [], kwargs)  # no "not a loopback address" warning before the error
        with self.assertRaises(ValueError) as cm:
            live_dashboard(host="http://127.0.0.1")
        self.assertExpectedInline(str(cm.exception), """live_dashboard(): host must be a host name or IP address such as '127.0.0.1', '::1', 'localhost' or '0.0.0.0' (not a URL, no brackets), but got 'http://127.0.0.1'""")  # noqa: B950
        with self.assertRaises(TypeError) as cm:
            live_dashboard(refresh="1")
        self.assertExpectedInline(str(cm.exception), """live_dashboard(): refresh must be a number of seconds > 0 (int or float), but got '1'""")  # noqa: B950
        with self.assertRaises(ValueError) as cm:
            live_dashboard(refresh=10**400)
        self.assertExpectedInline(str(cm.exception), """live_dashboard(): refresh must be a finite number of seconds > 0 and at most 86400 (one day), but got an integer of 1329 bits""")  # noqa: B950
        with self.assertRaises(ValueError) as cm:
            live_dashboard(refresh=0)
        self.assertExpectedInline(str(cm.exception), """live_dashboard(): refresh must be a finite number of seconds > 0 and at most 86400 (one day), but got 0""")  # noqa: B950
        with self.assertRaises(ValueError) as cm:
            watch(refresh=-1, iterations=1, file=io.StringIO())
        self.assertExpectedInline(str(cm.exception), """watch(): refresh must be a finite number of seconds >= 0 and at most 86400 (one day), but got -1""")  # noqa: B950
        with self.assertRaises(ValueError):
            watch(refresh=1e308, iterations=1, file=io.StringIO())
        with self.assertRaises(ValueError) as cm:
            live_dashboard(port=70000)
        self.assertExpectedInline(str(cm.exception), """live_dashboard(): port must be in 0..65535 (0 picks a free port), but got 70000""")  # noqa: B950

    def test_no_warning_before_a_bind_that_fails(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.assertRaises(OSError):
                live_dashboard(host="192.0.2.1")  # TEST-NET-1: never an address of this machine
        self.assertEqual(caught, [])

    def test_request_errors_are_logged_and_serving_goes_on(self):
        board = self.start()
        with mock.patch.object(tm, "snapshot", side_effect=RuntimeError("injected")):
            with self.assertLogs("torch.utils.dashboard", "ERROR") as logs:
                self.assertEqual(get(board.url + "api/stats")[0], 500)
        self.assertIn("failed to serve /api/stats", logs.output[0])
        # An error outside the endpoint code (socketserver's handle_error path): logged, not printed.
        with mock.patch.object(dashboard._Handler, "parse_request", side_effect=RuntimeError("injected")):
            stderr = mock.patch("sys.stderr", new_callable=io.StringIO)
            with self.assertLogs("torch.utils.dashboard", "ERROR") as logs, stderr as err:
                try:
                    get(board.url + "metrics")
                except (http.client.HTTPException, OSError):
                    pass  # the connection is dropped
                for _ in range(100):
                    if logs.output:
                        break
                    threading.Event().wait(0.05)
        self.assertIn("still serving", logs.output[0])
        self.assertEqual(err.getvalue(), "")
        self.assertEqual(get(board.url + "api/stats")[0], 200)
        self.assertTrue(board.running)

    def test_server_loop_error_does_not_kill_the_thread(self):
        calls = []
        real = dashboard._Server.service_actions

        def failing_once(server):
            if not calls:
                calls.append(1)
                raise RuntimeError("injected")
            real(server)

        with mock.patch.object(dashboard._Server, "service_actions", failing_once):
            with self.assertLogs("torch.utils.dashboard", "ERROR") as logs:
                board = self.start()
                for _ in range(200):
                    if calls:
                        break
                    threading.Event().wait(0.05)
                self.assertEqual(get(board.url + "api/stats")[0], 200)
        self.assertIn("server loop", logs.output[0])
        self.assertTrue(board.running)
        board.stop()
        self.assertFalse(board._thread.is_alive())

    def test_stop_on_exception_in_with_block(self):
        with self.assertRaises(KeyError):
            with live_dashboard() as board:
                raise KeyError("user code")
        self.assertFalse(board.running)
        self.assertFalse(board._thread.is_alive())

    def test_import_starts_no_thread_and_opens_no_socket(self):
        code = (
            "import os, threading, torch, torch.utils.dashboard, torch.utils.telemetry\n"
            "fds = []\n"
            "for fd in os.listdir('/proc/self/fd'):\n"
            "    try:\n"
            "        fds.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
            "    except OSError:\n"
            "        pass  # the descriptor listdir itself used\n"
            "print(threading.active_count(), sum(f.startswith('socket:') for f in fds))\n"
        )
        if not os.path.isdir("/proc/self/fd"):
            self.skipTest("needs /proc")
        out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        self.assertEqual(out.stdout.split(), ["1", "0"])

    @unittest.skipIf(IS_WINDOWS, "fork is POSIX-only")
    def test_fork_child_can_stop_without_deadlock(self):
        board = self.start()
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=board.stop)
        child.start()
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
            self.fail("stop() in a forked child hung")
        self.assertEqual(child.exitcode, 0)
        self.assertTrue(board.running)
        self.assertEqual(get(board.url + "api/stats")[0], 200)

    def test_temp_dir_is_resolved_before_the_threads_start(self):
        # The board's threads read DataLoader workers' spool directory, from tempfile.gettempdir(), whose
        # first call holds tempfile's lock while it probes the directory: a fork in that window left the
        # child's lock held, and its snapshot() hung.  The first call must come from live_dashboard()'s
        # caller, before any thread runs.  In a fresh process: tempfile has not resolved it yet.
        code = (
            "import tempfile, threading, time\n"
            "from torch.utils.dashboard import live_dashboard\n"
            "callers = []\n"
            "real = tempfile.gettempdir\n"
            "def spy():\n"
            "    callers.append(threading.current_thread().name)\n"
            "    return real()\n"
            "tempfile.gettempdir = spy\n"
            "board = live_dashboard(port=0, refresh=0.05)\n"
            "time.sleep(0.3)\n"
            "board.stop()\n"
            "print(callers[0] if callers else None)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "MainThread")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@unittest.skipIf(CHROMIUM is None, "needs chromium (apt-get install chromium)")
class TestBrowser(DashboardTestCase):
    """Renders the page in headless Chromium and checks what a person would see."""

    def render(self, url):
        with tempfile.TemporaryDirectory() as profile:
            out = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                 "--virtual-time-budget=3000", "--dump-dom", url],
                capture_output=True, text=True, timeout=120,
            )
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        return out.stdout

    def test_rows_charts_and_escaped_names(self):
        record("forward", [3_000_000, 5_000_000])
        record('<img src=x onerror="document.title=1">', [1_000_000])
        board = self.start(refresh=0.2)
        dom = self.render(board.url)
        self.assertIn("2 names", dom)  # the script ran and fetched /api/stats
        self.assertIn('title="forward"', dom)
        self.assertIn("4.00 ms", dom)  # mean of forward
        self.assertIn('&lt;img src=x onerror="document.title=1"&gt;', dom)  # shown as text
        self.assertNotIn("<img", dom)  # never as an element
        self.assertIn("<title>torch telemetry</title>", dom)
        self.assertRegex(dom, r"<rect [^>]*fill=\"" + re.escape(color("forward")) + '"')  # quantile bars drawn
        self.assertIn("no device memory recorded", dom)
        self.assertIn("process memory (RSS)", dom)  # the host cards

    def inject_history(self, board, per_name, start):
        """Give the board's history one sample per second from ``start`` (unix s): per name, calls per interval."""
        history = board._server.history
        for _ in range(600):
            with board._server.history_lock:
                if history._previous is not None:  # the sampling thread took its baseline
                    break
            threading.Event().wait(0.05)
        totals = dict.fromkeys(per_name, 0)
        length = len(next(iter(per_name.values())))
        with board._server.history_lock:
            history._previous, history._previous_at = {}, 1e6 - 1
            for i in range(length):
                for name, calls in per_name.items():
                    totals[name] += calls[i]
                stats = {name: {"count": n, "errors": 0, "total_ms": 2.0 * n, "p50_ms": 2.0, "p95_ms": 3.0}
                         for name, n in totals.items() if n}
                history.sample(stats, {"rss_bytes": 1 << 30, "cpu_seconds": float(i)}, None,
                               now=start + i, monotonic=1e6 + i)

    def latency_groups(self, dom):
        chart = re.search(r'<svg id="latency".*?</svg>', dom, re.DOTALL).group(0)
        return {html.unescape(name): body for name, body in re.findall(r'<g data-name="([^"]*)">(.*?)</g>', chart, re.DOTALL)}

    def test_history_survives_a_reload_with_gaps_and_stable_colours(self):
        record("forward", [2_000_000])
        board = self.start(refresh=3600, history=360000)  # one baseline sample: the test injects the rest
        now = time.time()
        self.inject_history(board, {"forward": [1, 2, 3, 0, 0, 2, 2, 2], "idle": [1] + [0] * 7}, now - 8)
        for load in ("first load", "reload"):
            dom = self.render(board.url)
            groups = self.latency_groups(dom)
            self.assertEqual(sorted(groups), ["forward", "idle"], load)
            # forward: two runs of calls around a gap; idle: a single point, drawn as a dot
            self.assertEqual(len(re.findall(r"<path ", groups["forward"])), 2, load)
            self.assertEqual(re.findall(r"<path |<circle ", groups["idle"]), ["<circle "], load)
            self.assertIn(f'stroke="{color("forward")}"', groups["forward"])
            self.assertRegex(dom, r"\b8 samples over 0\.1 min")
            clock = datetime.datetime.fromtimestamp(now - 8).strftime("%H:%M:%S")
            self.assertIn(f'class="tick">{clock}</text>', dom)  # the time axis starts at the first sample
            self.assertEqual(dom.count('type="checkbox" aria-label="show '), 1)  # a toggle per row of /api/stats

    def test_view_in_the_address_log_scale_and_hidden_names(self):
        board = self.start(refresh=3600, history=360000)
        self.inject_history(board, {"a": [1, 1, 1], "b": [2, 2, 2]}, time.time() - 3)
        dom = self.render(board.url)
        linear = re.findall(r'text-anchor="end">([^<]*)</text>', re.search(r'<svg id="rate".*?</svg>', dom, re.DOTALL).group(0))
        self.assertEqual(linear[0], "0")  # a linear axis starts at zero
        dom = self.render(board.url + "#log&hide=b")
        self.assertEqual(sorted(self.latency_groups(dom)), ["a"])
        ticks = re.findall(r'text-anchor="end">([^<]*)</text>', re.search(r'<svg id="rate".*?</svg>', dom, re.DOTALL).group(0))
        self.assertEqual(ticks, ["1.0", "10.0"])  # powers of ten: a log axis

    def test_slowest_rank_highlighted(self):
        rank = {"count": 3, "errors": 0, "total_ms": 3.0, "mean_ms": 1.0, "min_ms": 1.0, "max_ms": 1.0, "p50_ms": 1.0,
                "p95_ms": 1.0, "device": "cpu", "peak_memory_bytes": None}
        slow = dict(rank, total_ms=30.0, mean_ms=10.0, p95_ms=12.0)
        job = {"step": dict(rank, count=6, total_ms=33.0, ranks={0: rank, 1: slow}, slowest_rank=1),
               "load": dict(rank)}
        with mock.patch.object(dashboard, "_stats", return_value=job):
            board = self.start(refresh=3600, history=360000)
            dom = self.render(board.url)
        self.assertIn('title="slowest rank of 2: mean 10.00 ms, p95 12.00 ms">slowest: rank 1</span>', dom)
        self.assertEqual(dom.count(">slowest: rank"), 1)  # only names with per-rank figures


def color(name):
    """The page's colour of ``name``: FNV-1a over its UTF-16 code units, as a hue."""
    h = 0x811C9DC5
    units = name.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h = ((h ^ int.from_bytes(units[i:i + 2], "little")) * 0x01000193) & 0xFFFFFFFF
    return f"hsl({h % 360}, 70%, 62%)"


instantiate_parametrized_tests(TestEndpoints)

if __name__ == "__main__":
    run_tests()
