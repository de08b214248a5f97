# Owner(s): ["module: utils"]
"""torch.utils.timeout in the main thread on Unix: the SIGALRM timer (_timeout_signal)."""

import _signal
import signal
import time
import unittest
from unittest import mock

import torch.utils._timeout_interrupt as interrupt_module
from torch.testing._internal.common_utils import run_tests, TestCase
from torch.utils.timeout import timeout

# The helpers of the main timeout tests (test/ is on sys.path under pytest and when run as a script).
from test_utils_timeout import LONG, spin


HAS_ITIMER = hasattr(signal, "setitimer")

@unittest.skipIf(not HAS_ITIMER, "SIGALRM interval timers are Unix-only")
class TestSignalHandling(TestCase):
    def setUp(self):
        self.addCleanup(signal.signal, signal.SIGALRM, signal.getsignal(signal.SIGALRM))
        self.addCleanup(signal.setitimer, signal.ITIMER_REAL, 0)

    def test_restores_previous_handler_and_timer(self):
        def mine(signum, frame):
            pass

        signal.signal(signal.SIGALRM, mine)
        signal.setitimer(signal.ITIMER_REAL, 100.0, 50.0)
        with timeout(LONG):
            self.assertIsNot(signal.getsignal(signal.SIGALRM), mine)
        self.assertIs(signal.getsignal(signal.SIGALRM), mine)
        remaining, interval = signal.getitimer(signal.ITIMER_REAL)
        self.assertGreater(remaining, 0.0)
        self.assertLessEqual(remaining, 100.0)
        self.assertEqual(interval, 50.0)

    def test_restores_after_expiry(self):
        with self.assertRaises(TimeoutError):
            with timeout(0.01):
                spin()
        self.assertIs(signal.getsignal(signal.SIGALRM), signal.SIG_DFL)
        self.assertEqual(signal.getitimer(signal.ITIMER_REAL), (0.0, 0.0))

    def test_user_timer_firing_during_block_runs_user_handler(self):
        fired = []
        signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        with self.assertRaises(TimeoutError):
            with timeout(0.05):
                spin()
        self.assertEqual(fired, [signal.SIGALRM])
        self.assertEqual(signal.getitimer(signal.ITIMER_REAL), (0.0, 0.0))

    def test_user_timer_due_after_block_still_fires(self):
        fired = []
        signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with timeout(LONG):
            pass
        deadline = time.monotonic() + LONG
        while not fired and time.monotonic() < deadline:
            pass
        self.assertEqual(fired, [signal.SIGALRM])

    def test_user_handler_raising_is_the_users_error(self):
        def mine(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGALRM, mine)
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        with self.assertRaises(KeyboardInterrupt):
            with timeout(LONG) as t:
                spin()
        self.assertFalse(t.expired())
        self.assertIs(signal.getsignal(signal.SIGALRM), mine)

    def test_armed_default_action_timer_falls_back_to_the_watchdog(self):
        # SIG_DFL with a timer armed: its expiry would terminate the process, which a
        # Python handler cannot chain to, so the signal is left alone.
        signal.setitimer(signal.ITIMER_REAL, 100.0)
        with self.assertRaises(TimeoutError):
            with timeout(0.02):
                self.assertIs(signal.getsignal(signal.SIGALRM), signal.SIG_DFL)
                spin()
        self.assertGreater(signal.getitimer(signal.ITIMER_REAL)[0], 0.0)

    def test_failed_entry_leaves_no_handler_and_no_block(self):
        # An entry failing after SIGALRM was taken left the handler and a stale block.
        before = signal.getsignal(signal.SIGALRM)
        real = _signal.setitimer
        calls = []

        def failing(*args):
            calls.append(args)
            if len(calls) == 1:
                raise OverflowError("injected")
            return real(*args)

        with mock.patch.object(_signal, "setitimer", failing):
            with self.assertRaisesRegex(OverflowError, "injected"):
                with timeout(LONG):
                    pass
        self.assertIs(signal.getsignal(signal.SIGALRM), before)
        self.assertEqual(interrupt_module._thread_scopes().stack, [])
        with self.assertRaises(TimeoutError):
            with timeout(0.05):
                time.sleep(LONG)  # only SIGALRM interrupts a sleep

    def test_sigalrm_interrupts_a_sleep(self):
        with self.assertRaises(TimeoutError):
            with timeout(0.05) as t:
                self.assertIsNot(signal.getsignal(signal.SIGALRM), signal.SIG_DFL)
                time.sleep(LONG)
        self.assertTrue(t.expired())


if __name__ == "__main__":
    run_tests()
