# Owner(s): ["module: utils"]
"""torch.utils.timeout in threads other than the main one: the shared watchdog thread (_timeout_watchdog)."""

import threading
from unittest import mock

import torch.utils._timeout_watchdog as watchdog_module
from torch.testing._internal.common_utils import run_tests, TestCase
from torch.utils.timeout import timeout

# The helpers of the main timeout tests (test/ is on sys.path under pytest and when run as a script).
from test_utils_timeout import _expires, in_thread, LONG, spin


class TestWatchdog(TestCase):
    def test_target_thread_gone(self):
        # PyThreadState_SetAsyncExc returns 0 for a thread that has exited meanwhile.
        def body():
            with timeout(0.05) as t:
                with mock.patch.object(watchdog_module, "_set_async_exc", return_value=0):
                    spin(0.15)
            return t.expired()

        self.assertFalse(in_thread(body))

    def test_watchdog_survives_an_error_and_reports_it(self):
        real = watchdog_module._fire_in_thread
        reported = []

        def failing(*args):
            if not reported:
                raise RuntimeError("injected")
            return real(*args)

        with mock.patch.object(watchdog_module, "_fire_in_thread", failing), mock.patch.object(
            threading, "excepthook", reported.append
        ):
            self.assertTrue(in_thread(lambda: _expires(timeout(0.05))))
            self.assertTrue(in_thread(lambda: _expires(timeout(0.05))))
        self.assertEqual(len(reported), 1)
        self.assertIsInstance(reported[0].exc_value, RuntimeError)
        self.assertEqual(reported[0].thread.name, "torch.utils.timeout watchdog")

    def test_stale_entries_are_compacted(self):
        def body():
            for _ in range(500):
                with timeout(LONG):
                    pass
            with watchdog_module._watchdog._lock:
                return len(watchdog_module._watchdog._heap)

        self.assertLess(in_thread(body), 200)

    def test_one_thread_serves_every_thread(self):
        def body():
            return _expires(timeout(0.05)), watchdog_module._watchdog._thread

        (a, first), (b, second) = in_thread(body), in_thread(body)
        self.assertTrue(a and b)
        self.assertIs(first, second)
        self.assertEqual(first.name, "torch.utils.timeout watchdog")
        self.assertTrue(first.daemon)


if __name__ == "__main__":
    run_tests()
