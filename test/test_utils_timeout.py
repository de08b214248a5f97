# Owner(s): ["module: tests"]

import contextlib
import decimal
import fractions
import gc
import importlib
import math
import multiprocessing
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import unittest
from unittest import mock

import torch
import torch.utils.error_callback as ec
import torch.utils._timeout_interrupt as interrupt_module
import torch.utils.timeout as timeout_module
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    IS_WINDOWS,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils.timeout import timeout, timeout_at


HAS_ITIMER = hasattr(signal, "setitimer")
# Far enough that a healthy test never sees it, near enough that a broken one fails fast.
LONG = 30.0


def spin(seconds=LONG):
    # Pure bytecode: interruptible anywhere in any thread.
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def busy(n):
    total = 0
    for i in range(n):
        total += i
    return total


def in_thread(fn):
    """Run ``fn()`` in a new thread and return its result (or raise its exception)."""
    out = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: B036 - handed back to the test thread
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join(LONG)
    if t.is_alive():
        raise AssertionError("thread still running")
    if "error" in out:
        raise out["error"]
    return out["result"]


def run_in(where, fn):
    return fn() if where == "main" else in_thread(fn)


@contextlib.contextmanager
def module_on_path(name, source):
    """Make a module ``name`` with ``source`` importable (not imported yet); yield its file's path."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        sys.path.insert(0, tmp)
        try:
            yield path
        finally:
            sys.path.remove(tmp)
            sys.modules.pop(name, None)


@timeout(LONG)
def add_one(x):
    return x + 1


def _enter_and_leave(t):
    with t:
        busy(10)
    return t.expired()


def _expires(t):
    try:
        with t:
            spin()
    except TimeoutError:
        return t.expired()
    return False


class TestTimeout(TestCase):
    def test_expires(self):
        with self.assertRaises(TimeoutError) as cm:
            with timeout(0.02) as t:
                spin()
        self.assertTrue(t.expired())
        self.assertExpectedInline(str(cm.exception), """the block exceeded its time limit of 0.02 s and was interrupted""")
        self.assertIsNone(cm.exception.__cause__)
        self.assertTrue(cm.exception.__suppress_context__)

    def test_traceback_shows_where_the_body_was(self):
        try:
            with timeout(0.02):
                spin()
        except TimeoutError as e:
            frames = [f.name for f in traceback.extract_tb(e.__traceback__)]
        self.assertIn("spin", frames)

    def test_completes_in_time(self):
        with timeout(LONG) as t:
            self.assertEqual(busy(100), 4950)
            self.assertGreater(t.remaining(), 0.0)
            self.assertLessEqual(t.remaining(), LONG)
        self.assertFalse(t.expired())

    def test_none_means_no_limit(self):
        with timeout(None) as t:
            busy(10)
        self.assertIsNone(t.when())
        self.assertIsNone(t.remaining())
        self.assertFalse(t.expired())
        with timeout_at(None) as t:
            pass
        self.assertIsNone(t.when())

    def test_zero_and_past_deadline_interrupt_at_once(self):
        for cm in (timeout(0), timeout_at(time.monotonic() - 1.0)):
            with self.assertRaises(TimeoutError):
                with cm:
                    spin()
            self.assertEqual(cm.remaining(), 0.0)

    def test_when_is_absolute(self):
        deadline = time.monotonic() + 5.0
        self.assertEqual(timeout_at(deadline).when(), deadline)

    @parametrize("where", ["main", "worker"])
    def test_deadline_counts_from_entering_the_block(self, where):
        # Hostile trial: ``t = timeout(0.3); time.sleep(0.5); with t: ...`` raised at once.
        t = timeout(10.0)
        self.assertIsNone(t.when())
        self.assertEqual(t.remaining(), 10.0)
        time.sleep(0.05)
        before = time.monotonic()

        def body():
            with t:
                return t.when()

        self.assertGreaterEqual(run_in(where, body), before + 10.0)

    @parametrize("where", ["main", "worker"])
    def test_deadline_passed_on_entry_reports_expired(self, where):
        # Hostile trial: ``with timeout(0): pass`` exited with expired() == False.
        def body():
            out = []
            for cm in (timeout(0), timeout_at(0), timeout_at(-1), timeout_at(time.monotonic() - 1.0)):
                try:
                    with cm:
                        pass
                except TimeoutError:
                    pass  # the interrupt may also land on ``pass``: either way the block expired
                out.append(cm.expired())
            return out

        self.assertEqual(run_in(where, body), [True] * 4)

    def test_except_exception_inside_does_not_swallow_it(self):
        def body():
            while True:
                try:
                    busy(100)
                except Exception:
                    pass

        with self.assertRaises(TimeoutError):
            with timeout(0.02):
                body()

    def test_block_that_swallows_the_interrupt_ends_normally(self):
        with timeout(0.02) as t:
            try:
                spin()
            except BaseException:  # noqa: B036 - what a careless block might do
                pass
        self.assertTrue(t.expired())

    def test_interrupt_landing_in_a_finalizer_is_dropped(self):
        # The documented caveat: the interpreter swallows exceptions raised in __del__.
        class Slow:
            def __del__(self):
                spin(0.2)

        dropped = []
        with mock.patch.object(sys, "unraisablehook", lambda u: dropped.append(u.exc_type)):
            with timeout(0.02) as t:
                Slow()
        self.assertTrue(t.expired())
        self.assertEqual(dropped, [interrupt_module._Interrupt])

    @parametrize("where", ["main", "worker"])
    def test_swallowed_interrupt_is_raised_again(self, where):
        # Like a trio cancel scope: the deadline holds until the block is left.
        def body():
            swallowed = []
            with self.assertRaises(TimeoutError):
                with timeout(0.02) as t:
                    try:
                        spin()
                    except BaseException as e:  # noqa: B036 - what a careless block might do
                        swallowed.append(type(e))
                    spin()  # goes on working past its deadline: interrupted again
            return swallowed, t.expired()

        self.assertEqual(run_in(where, body), ([interrupt_module._Interrupt], True))

    @parametrize("where", ["main", "worker"])
    def test_interrupt_dropped_in_a_finalizer_is_raised_again_in_the_body(self, where):
        # The interpreter drops the interrupt raised in __del__; the block still times out.
        class Slow:
            def __del__(self):
                spin(0.2)

        dropped = []

        def body():
            with self.assertRaises(TimeoutError):
                with timeout(0.02) as t:
                    Slow()
                    spin()
            return t.expired()

        with mock.patch.object(sys, "unraisablehook", lambda u: dropped.append(u.exc_type)):
            self.assertTrue(run_in(where, body))
        self.assertIn(interrupt_module._Interrupt, dropped)

    def test_outer_interrupt_dropped_while_handling_inner_timeout_is_raised_again(self):
        # Handling an inner block's TimeoutError is the outer body's own code, not an
        # interrupt on its way out: a dropped outer interrupt is raised again there.
        class Slow:
            def __del__(self):
                spin(0.2)

        with mock.patch.object(sys, "unraisablehook", lambda u: None):
            with self.assertRaises(TimeoutError):
                with timeout(0.05) as outer:
                    try:
                        with timeout(0.01):
                            spin()
                    except TimeoutError:
                        Slow()  # the outer deadline passes in here and its interrupt is dropped
                        spin()
        self.assertTrue(outer.expired())

    def test_cleanup_after_the_interrupt_is_not_interrupted_again(self):
        cleaned = []
        with self.assertRaises(TimeoutError):
            with timeout(0.02):
                try:
                    spin()
                finally:
                    spin(0.2)  # many redelivery checks pass while the interrupt is on its way out
                    cleaned.append(True)
        self.assertEqual(cleaned, [True])

    @parametrize("where", ["main", "worker"])
    def test_import_inside_the_block_is_never_cut_short(self, where):
        # A half-run import leaves a broken module behind; the interrupt waits for its end.
        name = f"_timeout_slow_import_{where}"
        source = """
            import time
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                pass
            DONE = True
            """

        def body():
            with self.assertRaises(TimeoutError):
                with timeout(0.02):
                    importlib.import_module(name)
                    spin()
            return sys.modules[name].DONE

        with module_on_path(name, source):
            self.assertTrue(run_in(where, body))

    def test_compile_started_inside_the_block_is_never_cut_short(self):
        # Dynamo's convert_frame stands in for a module whose functions must run to their end.
        name = "_timeout_fake_convert_frame"
        source = """
            import time
            def compile_frame():
                end = time.monotonic() + 0.2
                while time.monotonic() < end:
                    pass
                return "compiled"
            """
        with module_on_path(name, source) as path:
            module = importlib.import_module(name)
            done = []
            with mock.patch.object(interrupt_module, "_DYNAMO_CONVERT_FRAME", path):
                with self.assertRaises(TimeoutError):
                    with timeout(0.02):
                        done.append(module.compile_frame())
                        spin()
            self.assertEqual(done, ["compiled"])

    def test_interrupt_wrapped_in_a_system_error_is_a_timeout(self):
        # What C code calling back into Python (Dynamo's frame hook) makes of an interrupt.
        with self.assertRaises(TimeoutError) as cm:
            with timeout(0.02):
                try:
                    spin()
                except BaseException as e:  # noqa: B036 - standing in for the C caller
                    raise SystemError("<function f> returned a result with an exception set") from e
        self.assertIsInstance(cm.exception.__cause__, SystemError)

    def test_block_run_by_an_import_is_interrupted(self):
        # Only imports started inside the block wait: a module whose top level runs a block is not one.
        name = "_timeout_block_at_import"
        source = """
            import time
            from torch.utils.timeout import timeout

            try:
                with timeout(0.02):
                    end = time.monotonic() + 30
                    while time.monotonic() < end:
                        pass
                RESULT = "not interrupted"
            except TimeoutError:
                RESULT = "interrupted"
            """
        with module_on_path(name, source):
            self.assertEqual(importlib.import_module(name).RESULT, "interrupted")

    def test_other_exception_after_expiry_propagates(self):
        with self.assertRaises(KeyError):
            with timeout(0.02) as t:
                try:
                    spin()
                finally:
                    raise KeyError("cleanup failed")
        self.assertTrue(t.expired())

    def test_body_exception_propagates_unchanged(self):
        with self.assertRaisesRegex(ValueError, "mine"):
            with timeout(LONG) as t:
                raise ValueError("mine")
        self.assertFalse(t.expired())

    def test_reported_to_error_callback(self):
        seen = []
        with ec.error_callback(lambda exc, info: seen.append((type(exc), info["source"], info["timeout"]))):
            with self.assertRaises(TimeoutError):
                with timeout(0.02) as t:
                    spin()
        self.assertEqual(seen, [(TimeoutError, "torch.utils.timeout", t)])

    def test_repr(self):
        self.assertExpectedInline(repr(timeout(1.5)), """<Timeout [created] its time limit of 1.5 s>""")
        self.assertExpectedInline(repr(timeout(None)), """<Timeout [created] no limit>""")
        self.assertExpectedInline(repr(timeout_at(12.0)), """<Timeout [created] its deadline (time.monotonic() = 12.000)>""")

    def test_public_api(self):
        self.assertEqual(sorted(timeout_module.__all__), ["Timeout", "move_on", "move_on_at", "timeout", "timeout_at"])
        for name in timeout_module.__all__:
            self.assertEqual(getattr(timeout_module, name).__module__, "torch.utils.timeout")


class TestStates(TestCase):
    def test_enter_once(self):
        t = timeout(LONG)
        with t:
            pass
        with self.assertRaisesRegex(RuntimeError, "can be entered once; this one is finished"):
            with t:
                pass

    def test_reschedule_needs_active_block(self):
        t = timeout(LONG)
        with self.assertRaisesRegex(RuntimeError, "Timeout\\.reschedule\\(\\): cannot reschedule a timeout that is created"):
            t.reschedule(None)
        with t:
            pass
        with self.assertRaisesRegex(RuntimeError, "Timeout\\.reschedule\\(\\): cannot reschedule a timeout that is finished"):
            t.reschedule(None)

    @parametrize("where", ["main", "worker"])
    def test_message_after_reschedule_names_the_new_deadline(self, where):
        # Hostile trial: the message still said "its time limit of 30 s" after a reschedule.
        def body():
            try:
                with timeout(LONG) as t:
                    t.reschedule(time.monotonic() + 0.02)
                    spin()
            except TimeoutError as e:
                return str(e)

        msg = run_in(where, body)
        self.assertRegex(msg, r"^the block exceeded its rescheduled deadline \(time\.monotonic\(\) = [0-9.]+\)")
        self.assertNotIn("time limit", msg)

    @parametrize("where", ["main", "worker"])
    def test_reschedule_earlier_fires(self, where):
        def body():
            with self.assertRaises(TimeoutError):
                with timeout(None) as t:
                    t.reschedule(time.monotonic() + 0.02)
                    spin()
            return t.expired()

        self.assertTrue(run_in(where, body))

    @parametrize("where", ["main", "worker"])
    def test_reschedule_later_and_remove(self, where):
        def body():
            with timeout(0.05) as t:
                t.reschedule(None)
                spin(0.1)
            with timeout(0.02) as u:
                u.reschedule(time.monotonic() + LONG)
                spin(0.05)
            return t.expired(), u.expired()

        self.assertEqual(run_in(where, body), (False, False))

    def test_reschedule_rejects_nan(self):
        with timeout(LONG) as t:
            with self.assertRaisesRegex(ValueError, "when must be a monotonic time or None, but got nan"):
                t.reschedule(math.nan)

    def test_decorate_only_callables_and_fresh_timeouts(self):
        with self.assertRaisesRegex(TypeError, "decorates a callable, but got 3"):
            timeout(1.0)(3)
        t = timeout(1.0)
        with t:
            with self.assertRaisesRegex(RuntimeError, "Cannot decorate with a timeout that is active"):
                t(print)


class TestArguments(TestCase):
    @parametrize("bad", [-1, -0.5, math.nan, -math.inf], name_fn=lambda b: str(b).replace("-", "neg").replace(".", "_"))
    def test_bad_seconds_value(self, bad):
        with self.assertRaisesRegex(ValueError, "timeout\\(\\): seconds must be a non-negative number of seconds or None"):
            timeout(bad)

    @parametrize("bad", ["1", True, [1.0]], name_fn=lambda b: type(b).__name__)
    def test_bad_seconds_type(self, bad):
        with self.assertRaisesRegex(TypeError, "timeout\\(\\): seconds must be a non-negative number of seconds or None"):
            timeout(bad)

    def test_messages(self):
        with self.assertRaises(ValueError) as cm:
            timeout(-1)
        self.assertExpectedInline(str(cm.exception), """timeout(): seconds must be a non-negative number of seconds or None, but got -1.0""")  # noqa: B950
        with self.assertRaises(ValueError) as cm:
            timeout_at(math.nan)
        self.assertExpectedInline(str(cm.exception), """timeout_at(): deadline must be a monotonic time or None, but got nan""")
        with self.assertRaises(TypeError) as cm:
            timeout_at("soon")
        self.assertExpectedInline(str(cm.exception), """timeout_at(): deadline must be a monotonic time or None, but got 'soon' of type str, not a real number (int or float)""")  # noqa: B950

    @parametrize(
        "bad",
        [2**63, sys.maxsize, 9.3e9, 1e308, 10**400],
        name_fn=lambda b: f"bits{int(b).bit_length()}" if isinstance(b, int) else f"{b:.0e}".replace("+", ""),
    )
    def test_beyond_the_platform_limit_is_refused(self, bad):
        # These passed validation, then killed the watchdog or failed at entry.
        with self.assertRaisesRegex(ValueError, "timeout\\(\\): seconds must be .*threading.TIMEOUT_MAX"):
            timeout(bad)
        with self.assertRaisesRegex(ValueError, "timeout_at\\(\\): deadline must be .*threading.TIMEOUT_MAX"):
            timeout_at(time.monotonic() + bad if bad < 1e300 else bad)
        with timeout(LONG) as t:
            with self.assertRaisesRegex(ValueError, "reschedule\\(\\): when must be .*threading.TIMEOUT_MAX"):
                t.reschedule(bad)
        self.assertFalse(t.expired())

    def test_limit_itself_is_accepted_and_never_fires(self):
        for where in ("main", "worker"):
            with self.subTest(where=where):
                self.assertFalse(run_in(where, lambda: _enter_and_leave(timeout(threading.TIMEOUT_MAX))))
        # The watchdog still serves other threads.
        self.assertTrue(run_in("worker", lambda: _expires(timeout(0.05))))

    def test_any_real_number_is_accepted(self):
        # Hostile trial: Fraction was refused as "not a number" while np.float64 was accepted.
        self.assertEqual(timeout(fractions.Fraction(1, 2)).remaining(), 0.5)
        deadline = fractions.Fraction(int(time.monotonic()) + 60)
        self.assertEqual(timeout_at(deadline).when(), float(deadline))
        with timeout(fractions.Fraction(60)) as t:
            busy(10)
        self.assertFalse(t.expired())
        with self.assertRaisesRegex(ValueError, "timeout\\(\\): seconds must be .*threading.TIMEOUT_MAX"):
            timeout(fractions.Fraction(10**400))

    def test_decimal_is_a_type_error_naming_real_numbers(self):
        with self.assertRaises(TypeError) as cm:
            timeout(decimal.Decimal("0.5"))
        self.assertExpectedInline(str(cm.exception), """timeout(): seconds must be a non-negative number of seconds or None, but got Decimal('0.5') of type Decimal, not a real number (int or float)""")  # noqa: B950

    def test_constructor_checks_its_arguments(self):
        with self.assertRaisesRegex(TypeError, "Timeout\\(\\): when must be a monotonic time or None, but got 'x'"):
            timeout_module.Timeout("x")
        with self.assertRaisesRegex(ValueError, "Timeout\\(\\): when must be a monotonic time or None, but got nan"):
            timeout_module.Timeout(math.nan)
        with self.assertRaisesRegex(TypeError, "Timeout\\(\\): seconds must be a non-negative number"):
            timeout_module.Timeout(None, seconds="1")
        self.assertEqual(timeout_module.Timeout(5).when(), 5.0)

    def test_reschedule_wrong_type(self):
        # A wrong type is a TypeError naming the function.
        with timeout(LONG) as t:
            with self.assertRaisesRegex(TypeError, "reschedule\\(\\): when must be a monotonic time or None, but got 'x'"):
                t.reschedule("x")
            with self.assertRaisesRegex(TypeError, "reschedule\\(\\): when must be a monotonic time or None, but got True"):
                t.reschedule(True)
        with self.assertRaisesRegex(TypeError, "reschedule\\(\\)"):
            t.reschedule("x")  # the argument is checked before the state

    def test_inf_is_no_deadline_in_practice(self):
        with timeout(math.inf) as t:
            busy(10)
        self.assertFalse(t.expired())


class TestDecorator(TestCase):
    def test_each_call_gets_its_own_deadline(self):
        calls = []

        @timeout(0.05)
        def step(seconds):
            calls.append(seconds)
            spin(seconds)
            return seconds

        self.assertEqual(step(0.0), 0.0)
        with self.assertRaises(TimeoutError):
            step(LONG)
        self.assertEqual(step(0.0), 0.0)  # not poisoned by the previous call
        self.assertEqual(calls, [0.0, LONG, 0.0])

    def test_wraps(self):
        self.assertEqual(add_one.__name__, "add_one")
        self.assertEqual(add_one(1), 2)

    def test_timeout_at_decorator_shares_the_deadline(self):
        @timeout_at(time.monotonic() - 1.0)
        def late():
            spin()

        with self.assertRaises(TimeoutError):
            late()

    def test_module_level_function_pickles(self):
        self.assertIs(pickle.loads(pickle.dumps(add_one)), add_one)


class TestNesting(TestCase):
    @parametrize("where", ["main", "worker"])
    def test_inner_fires_outer_untouched(self, where):
        def body():
            with timeout(LONG) as outer:
                with self.assertRaises(TimeoutError):
                    with timeout(0.02) as inner:
                        spin()
                busy(1000)  # the outer block goes on
            return inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (True, False))

    @parametrize("where", ["main", "worker"])
    def test_outer_fires_through_inner(self, where):
        def body():
            with self.assertRaises(TimeoutError):
                with timeout(0.03) as outer:
                    with timeout(LONG) as inner:
                        spin()
            return inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (False, True))

    @parametrize("where", ["main", "worker"])
    def test_earliest_deadline_fires_whatever_the_order(self, where):
        def body():
            with self.assertRaises(TimeoutError):
                with timeout(LONG) as a:
                    with timeout(0.02) as b:
                        with timeout(LONG) as c:
                            spin()
            return a.expired(), b.expired(), c.expired()

        # b raises TimeoutError, which then propagates out of a as an ordinary exception.
        self.assertEqual(run_in(where, body), (False, True, False))

    @parametrize("where", ["main", "worker"])
    def test_same_deadline_outer_owns_it(self, where):
        def body():
            deadline = time.monotonic() + 0.02
            with self.assertRaises(TimeoutError):
                with timeout_at(deadline) as outer:
                    with timeout_at(deadline) as inner:
                        spin()
            return inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (False, True))

    @parametrize("where", ["main", "worker"])
    def test_caught_inner_then_outer_fires(self, where):
        def body():
            with self.assertRaises(TimeoutError):
                with timeout(0.1) as outer:
                    for _ in range(3):
                        try:
                            with timeout(0.01):
                                spin()
                        except TimeoutError:
                            pass
                    spin()
            return outer.expired()

        self.assertTrue(run_in(where, body))

    @parametrize("where", ["main", "worker"])
    def test_inner_exits_just_before_outer_fires(self, where):
        def body():
            # The timer was armed for the inner deadline: it fires after the inner block
            # has gone, and must still bring the outer deadline.
            with self.assertRaises(TimeoutError):
                with timeout(0.05) as outer:
                    with timeout(0.04) as inner:
                        busy(10)
                    spin()
            return outer.expired() and not inner.expired()

        self.assertTrue(run_in(where, body))


class TestThreads(TestCase):
    def test_worker_thread_interrupted(self):
        def body():
            with self.assertRaises(TimeoutError):
                with timeout(0.02) as t:
                    spin()
            return t.expired()

        self.assertTrue(in_thread(body))

    def test_many_threads_each_see_their_own(self):
        def body(seconds):
            try:
                with timeout(seconds):
                    spin(0.2)
            except TimeoutError:
                return "expired"
            return "done"

        results = {}
        threads = [
            threading.Thread(target=lambda s=s: results.__setitem__(s, body(s))) for s in (0.01, 0.03, LONG, None)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LONG)
        self.assertEqual(results, {0.01: "expired", 0.03: "expired", LONG: "done", None: "done"})

    def test_blocking_call_in_worker_is_not_interrupted_but_block_raises_after(self):
        # time.sleep in a non-main thread runs in C: the interrupt lands when it returns.
        def body():
            start = time.monotonic()
            with self.assertRaises(TimeoutError):
                with timeout(0.01):
                    time.sleep(0.1)
                    spin()
            return time.monotonic() - start >= 0.1

        self.assertTrue(in_thread(body))

    @unittest.skipIf(not HAS_ITIMER, "SIGALRM interval timers are Unix-only")
    def test_sleep_in_main_thread_is_interrupted(self):
        with self.assertRaises(TimeoutError):
            with timeout(0.02):
                time.sleep(LONG)

    def test_main_thread_without_interval_timers_uses_the_watchdog(self):
        # What every OS without setitimer (Windows) does.
        with mock.patch.object(timeout_module, "_HAS_ITIMER", False):
            with self.assertRaises(TimeoutError):
                with timeout(0.02) as t:
                    if HAS_ITIMER:
                        self.assertIs(signal.getsignal(signal.SIGALRM), signal.SIG_DFL)
                    spin()
        self.assertTrue(t.expired())


def _blocks(n, seed):
    # Nested blocks whose deadlines fall anywhere from their start to just after their
    # end.  Anything raised after a ``with`` statement is a late exception.
    rng = random.Random(seed)
    fired = late = 0
    for _ in range(n):
        now = time.monotonic()
        outer, inner = now + rng.uniform(0, 6e-4), now + rng.uniform(0, 6e-4)
        try:
            with timeout_at(outer):
                try:
                    with timeout_at(inner):
                        busy(rng.randrange(0, 6000))
                except TimeoutError:
                    fired += 1
                busy(rng.randrange(0, 3000))
        except TimeoutError:
            fired += 1
        try:
            busy(10)
            busy(10)
        except BaseException:  # noqa: B036 - counting what must never happen
            late += 1
    return fired, late


class TestNoLateException(TestCase):
    def setUp(self):
        # An interrupt that lands in a gc callback is swallowed by the interpreter (the
        # documented caveat); other test modules (hypothesis) install one.  Not the
        # subject here: run without them.
        saved = gc.callbacks[:]
        gc.callbacks.clear()
        self.addCleanup(gc.callbacks.extend, saved)
        # Likewise one landing in a weakref callback: recorded, and raised again later in
        # the body (tested above); nothing else may be reported.
        self.dropped = []
        hook = mock.patch.object(sys, "unraisablehook", lambda u: self.dropped.append(u.exc_type))
        hook.start()
        self.addCleanup(hook.stop)
        self.addCleanup(lambda: self.assertEqual(set(self.dropped) - {interrupt_module._Interrupt}, set()))

    def test_main_thread_near_deadline_blocks(self):
        fired, late = _blocks(3000, seed=0)
        self.assertEqual(late, 0)
        self.assertGreater(fired, 0)

    def test_worker_threads_near_deadline_blocks(self):
        # A tiny switch interval makes the watchdog and the workers interleave at every
        # few bytecodes, the worst case for the hand-off at the end of a block.
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        self.addCleanup(sys.setswitchinterval, old)
        results = []
        threads = [threading.Thread(target=lambda s=s: results.append(_blocks(1000, seed=s))) for s in range(3)]
        for t in threads:
            t.start()
        results.append(_blocks(1000, seed=10))
        for t in threads:
            t.join(LONG)
        self.assertEqual(len(results), 4)
        self.assertEqual([late for _, late in results], [0, 0, 0, 0])
        self.assertGreater(sum(fired for fired, _ in results), 0)


class TestProcess(TestCase):
    @unittest.skipIf(IS_WINDOWS, "fork is Unix-only")
    def test_quiet_import_fork_and_exit(self):
        # One interpreter (importing torch is the slow part): nothing runs after import;
        # a forked child uses timeouts after the parent did, including inside a block
        # open across the fork; the daemon watchdog does not hold up the exit.
        script = textwrap.dedent(
            """
            import os, threading
            import torch.utils.timeout as tm
            assert [t.name for t in threading.enumerate()] == ["MainThread"], threading.enumerate()

            def expire():
                try:
                    with tm.timeout(0.01):
                        while True:
                            pass
                except TimeoutError:
                    return "expired"

            def in_thread():
                out = []
                t = threading.Thread(target=lambda: out.append(expire()))
                t.start()
                t.join(60)
                return out[0]

            assert in_thread() == "expired" and expire() == "expired"  # parent: watchdog and signal
            assert any(t.name == "torch.utils.timeout watchdog" and t.daemon for t in threading.enumerate())
            with tm.timeout(60.0):
                pid = os.fork()
                if pid == 0:
                    ok = in_thread() == "expired" and expire() == "expired"
                    os._exit(0 if ok else 1)
                _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
            assert in_thread() == "expired"
            print("ok")
            """
        )
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ok\n")


class TestGenerators(TestCase):
    # A block spanning a ``yield`` interrupted the consumer, or unrelated code
    # while the generator was suspended.  Its deadline now waits until the generator runs.
    @parametrize("where", ["main", "worker"])
    def test_block_spanning_a_yield_never_interrupts_the_consumer(self, where):
        def gen():
            with timeout(0.05) as t:
                yield t
                spin()
                yield "not interrupted"

        def consumer():
            g = gen()
            t = next(g)
            spin(0.3)  # the deadline passes while the generator is suspended
            before = t.expired()
            try:
                next(g)
            except TimeoutError:
                return before, t.expired()
            return "generator not interrupted"

        self.assertEqual(run_in(where, consumer), (False, True))

    @parametrize("where", ["main", "worker"])
    def test_consumer_blocks_fire_while_the_generator_waits(self, where):
        def gen():
            with timeout(0.01):
                yield
                yield

        def consumer():
            g = gen()
            next(g)
            spin(0.1)
            with timeout(LONG):  # entered after the generator's block, inside it on the stack
                try:
                    with timeout(0.05) as own:
                        spin()
                except TimeoutError:
                    pass
            g.close()  # leaves the generator's block without running it again
            spin(0.2)
            return own.expired()

        self.assertTrue(run_in(where, consumer))

    @parametrize("where", ["main", "worker"])
    def test_generator_left_open_by_an_enclosing_block(self, where):
        def gen():
            with timeout(0.05) as t:
                yield t
                yield t

        def consumer():
            with timeout(LONG):
                g = gen()
                t = next(g)
            spin(0.2)  # the generator's block was dropped with the enclosing one
            next(g)
            with self.assertRaises(StopIteration):
                next(g)
            return t.expired()

        self.assertFalse(run_in(where, consumer))
        self.assertEqual(interrupt_module._thread_scopes().stack, [])


class TestLifecycle(TestCase):
    @unittest.skipIf(IS_WINDOWS, "fork is Unix-only")
    @parametrize("where", ["main", "worker"])
    def test_forked_child_inherits_no_deadline(self, where):
        # A child forked inside a block was interrupted at the parent's deadline.
        pids = []

        def body():
            with timeout(0.1) as t:
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        spin(0.3)
                        time.sleep(0.1)
                        code = 0 if t.when() is None and not t.expired() else 2
                    finally:
                        os._exit(code)
                pids.append(pid)
                spin()

        with self.assertRaises(TimeoutError):
            run_in(where, body)
        self.assertEqual(os.waitstatus_to_exitcode(os.waitpid(pids[0], 0)[1]), 0)

    @unittest.skipIf(IS_WINDOWS or not HAS_ITIMER, "fork and SIGALRM are Unix-only")
    def test_deadline_passing_in_another_librarys_fork_hook(self):
        # The SIGALRM interrupt landed in logging's after-fork hook, was dropped there and
        # left logging's module lock held: the next fork from another thread hung for good.
        script = textwrap.dedent(
            """
            import os, sys, time
            state = {"slow": False, "hook": "not run"}

            def slow_hook():  # registered before torch.utils.timeout, like logging's
                if state["slow"]:
                    state["hook"] = "started"
                    end = time.monotonic() + 0.3
                    while time.monotonic() < end:
                        pass
                    state["hook"] = "finished"

            os.register_at_fork(after_in_parent=slow_hook)
            from torch.utils.timeout import timeout

            state["slow"] = True
            try:
                with timeout(0.05):
                    pid = os.fork()
                    if pid == 0:
                        os._exit(0)
                    os.waitpid(pid, 0)
                    end = time.monotonic() + 30
                    while time.monotonic() < end:
                        pass
            except TimeoutError:
                print("TimeoutError, hook", state["hook"])
            """
        )
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        self.assertEqual((r.stdout.strip(), r.stderr), ("TimeoutError, hook finished", ""))

    @unittest.skipIf(IS_WINDOWS, "fork is Unix-only")
    def test_dataloader_workers_forked_in_a_block_outlive_its_deadline(self):
        # Workers forked inside ``with timeout(...)`` died at the parent's deadline.
        loader = torch.utils.data.DataLoader(
            _SleepyDataset(), num_workers=2, multiprocessing_context="fork", persistent_workers=True, timeout=LONG
        )
        with timeout(3.0) as t:
            it = iter(loader)
            first = next(it)
        time.sleep(max(0.0, t.when() - time.monotonic()) + 0.3)  # the deadline passes in the workers
        rest = list(it)
        again = list(loader)  # persistent workers, second epoch
        self.assertEqual([b.item() for b in [first, *rest]], [0, 1, 2, 3, 4, 5])
        self.assertEqual([b.item() for b in again], [0, 1, 2, 3, 4, 5])


class _SleepyDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        time.sleep(0.2)
        spin(0.05)
        return torch.tensor(i)


class _SlowDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        try:
            with timeout(0.01 if i % 2 else LONG):
                if i % 2:
                    spin()
                return torch.tensor([i, 0])
        except TimeoutError:
            return torch.tensor([i, 1])


class TestComposability(TestCase):
    @parametrize("backend", ["eager", "aot_eager"])
    def test_compile_decorated_function(self, backend):
        @timeout(LONG)
        def f(x):
            return torch.sin(x) + 1

        x = torch.randn(4)
        torch._dynamo.reset()
        self.assertEqual(torch.compile(f, backend=backend)(x), torch.sin(x) + 1)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_timeout_around_compiled_function_and_inside_one(self, backend):
        g = torch.compile(lambda x: torch.cos(x) * 2, backend=backend)

        def h(x):
            with timeout(LONG):
                return torch.cos(x) * 2

        x = torch.randn(4)
        torch._dynamo.reset()
        with timeout(LONG):
            self.assertEqual(g(x), torch.cos(x) * 2)
        self.assertEqual(timeout(LONG)(g)(x), torch.cos(x) * 2)
        self.assertEqual(torch.compile(h, backend=backend)(x), torch.cos(x) * 2)

    def test_fullgraph_reports_the_excluded_wrapper(self):
        # Our reason, not Dynamo's "Please file an issue": decorate outside the compiled region.
        torch._dynamo.reset()
        with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, r"apply @timeout outside the compiled region"):
            torch.compile(add_one, backend="eager", fullgraph=True)(torch.ones(1))

    def test_fullgraph_over_a_caller_of_a_decorated_function(self):
        def step(x):
            return add_one(x) * 2

        torch._dynamo.reset()
        with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, r"apply @timeout outside the compiled region"):
            torch.compile(step, backend="eager", fullgraph=True)(torch.ones(1))
        torch._dynamo.reset()
        self.assertEqual(torch.compile(step, backend="eager")(torch.ones(1)), torch.full((1,), 4.0))

    @parametrize("name", ["timeout", "timeout_at", "move_on", "move_on_at"])
    def test_fullgraph_over_a_block_reports_our_reason(self, name):
        # Dynamo's "marked as skipped ... Please file an issue" before: the block goes around the compiled call.
        factory = getattr(timeout_module, name)
        arg = LONG if name in ("timeout", "move_on") else math.inf

        def step(x):
            with factory(arg):
                x = x + 1
            return x

        torch._dynamo.reset()
        with self.assertRaisesRegex(
            torch._dynamo.exc.Unsupported, rf"{name}\(\) runs eagerly .* put the ``with {name}\(\.\.\.\)`` block around"
        ):
            torch.compile(step, backend="eager", fullgraph=True)(torch.ones(1))
        torch._dynamo.reset()
        self.assertEqual(torch.compile(step, backend="eager")(torch.ones(1)), torch.full((1,), 2.0))

    @unittest.skipIf(IS_WINDOWS, "fork is Unix-only")
    def test_dataloader_fork_workers(self):
        loader = torch.utils.data.DataLoader(
            _SlowDataset(), num_workers=2, multiprocessing_context="fork", timeout=LONG * 2
        )
        self.assertEqual([b.tolist() for b in loader], [[[0, 0]], [[1, 1]], [[2, 0]], [[3, 1]]])

    def test_spawn_runs_decorated_function(self):
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            self.assertEqual(pool.map_async(add_one, [1, 2], chunksize=1).get(timeout=240), [2, 3])


instantiate_parametrized_tests(TestTimeout)
instantiate_parametrized_tests(TestStates)
instantiate_parametrized_tests(TestArguments)
instantiate_parametrized_tests(TestNesting)
instantiate_parametrized_tests(TestComposability)
instantiate_parametrized_tests(TestLifecycle)
instantiate_parametrized_tests(TestGenerators)

if __name__ == "__main__":
    run_tests()
