# Owner(s): ["module: tests"]

import asyncio
import importlib.util
import math
import random
import threading
import time
import unittest

import torch
from torch._dynamo.testing import CompileCounter
import torch.utils.error_callback as ec
import torch.utils.retry as retry_module
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils.retry import is_testing, retry, retry_loop, RetryStatistics, set_testing


FORMS = ["retry", "async_retry", "loop", "async_loop"]


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def call_form(form, body, **kwargs):
    """Run ``body(attempt_number)`` under ``form`` with ``kwargs``.

    Returns ``(result, error, statistics, calls)``: the value returned (or, for a
    loop, the last value the block reported), the exception raised (or None), the
    :class:`RetryStatistics` of the wrapper or loop, and how many attempts ran.
    """
    calls = []

    def step():
        calls.append(1)
        return body(len(calls))

    if form == "retry":
        wrapped = retry(step, **kwargs)
        stats, thunk = wrapped.statistics, wrapped
    elif form == "async_retry":

        async def astep():
            return step()

        wrapped = retry(astep, **kwargs)
        stats = wrapped.statistics

        def thunk():
            return asyncio.run(wrapped())

    elif form == "loop":
        loop = retry_loop(**kwargs)
        stats = loop.statistics

        def thunk():
            value = None
            for attempt in loop:
                with attempt:
                    value = attempt.result = step()
            return value

    else:
        loop = retry_loop(**kwargs)
        stats = loop.statistics

        async def go():
            value = None
            async for attempt in loop:
                with attempt:
                    value = attempt.result = step()
            return value

        def thunk():
            return asyncio.run(go())

    try:
        return thunk(), None, stats, len(calls)
    except Exception as e:
        return None, e, stats, len(calls)


def failing(*errors, result="ok"):
    """A body raising ``errors[n - 1]`` on attempt ``n`` while there are some, then returning ``result``."""

    def body(n):
        if n <= len(errors):
            raise errors[n - 1]
        return result

    return body


def returning(*values):
    """A body returning ``values[n - 1]`` on attempt ``n`` (the last one from then on)."""
    return lambda n: values[min(n, len(values)) - 1]


class TestRetryIf(TestCase):
    @parametrize("form", FORMS)
    def test_rejected_error_raised_at_once_unchanged(self, form):
        t = FakeTime()
        gone = OSError("gone")
        seen = []

        def transient(exc):
            seen.append(exc)
            return str(exc) != "gone"

        _, err, stats, calls = call_form(
            form, failing(OSError("busy"), gone), attempts=5, retry_if=transient, sleep=t.sleep, clock=t.clock
        )
        self.assertIs(err, gone)
        self.assertEqual(calls, 2)
        self.assertEqual([str(e) for e in seen], ["busy", "gone"])
        self.assertFalse(hasattr(gone, "__notes__"))  # unchanged: no history notes
        self.assertEqual(t.sleeps, [0.0])
        self.assertEqual(stats.attempts, 2)
        self.assertIs(stats.last_exception, gone)

    @parametrize("form", FORMS)
    def test_accepted_error_retried(self, form):
        t = FakeTime()
        result, err, _, calls = call_form(
            form, failing(OSError("a"), OSError("b")), attempts=3, retry_if=lambda e: True, sleep=t.sleep
        )
        self.assertIsNone(err)
        self.assertEqual((result, calls), ("ok", 3))

    @parametrize("form", FORMS)
    def test_applied_after_the_exceptions_filter(self, form):
        seen = []
        _, err, _, calls = call_form(
            form, failing(KeyError("k")), exceptions=OSError, retry_if=lambda e: seen.append(e) or True
        )
        self.assertIsInstance(err, KeyError)
        self.assertEqual((seen, calls), ([], 1))

    @parametrize("form", FORMS)
    def test_predicate_error_propagates_chained(self, form):
        def broken(exc):
            raise ZeroDivisionError("predicate bug")

        _, err, _, calls = call_form(form, failing(OSError("a")), retry_if=broken, sleep=lambda s: None)
        self.assertIsInstance(err, ZeroDivisionError)
        self.assertIsInstance(err.__context__, OSError)
        self.assertEqual(calls, 1)

    @parametrize("form", FORMS)
    def test_non_bool_answer_is_a_type_error(self, form):
        _, err, _, _ = call_form(form, failing(OSError("a")), retry_if=lambda e: None, sleep=lambda s: None)
        self.assertIsInstance(err, TypeError)
        self.assertIn("retry_if must return a bool, but returned None of type NoneType", str(err))
        self.assertIsInstance(err.__cause__, OSError)

    def test_generators(self):
        calls = []

        @retry(attempts=3, retry_if=lambda e: "again" in str(e), sleep=lambda s: None)
        def gen():
            calls.append(1)
            if len(calls) == 1:
                raise OSError("again")
            if len(calls) == 2:
                raise OSError("stop")
            yield 1

        with self.assertRaisesRegex(OSError, "stop"):
            list(gen())
        self.assertEqual(len(calls), 2)
        self.assertEqual(gen.statistics.attempts, 2)

        async def agen_fn():
            calls.append(1)
            if len(calls) < 5:
                raise OSError("again")
            yield 7

        agen = retry(agen_fn, attempts=5, retry_if=lambda e: True, sleep=lambda s: None)

        async def consume():
            return [x async for x in agen()]

        self.assertEqual(asyncio.run(consume()), [7])
        self.assertEqual(agen.statistics.attempts, 3)


class TestRetryOnResult(TestCase):
    @parametrize("form", FORMS)
    def test_retries_until_accepted(self, form):
        t = FakeTime()
        result, err, stats, calls = call_form(
            form, returning(503, 503, 200), attempts=5, delay=1.0, retry_on_result=lambda r: r == 503,
            sleep=t.sleep, clock=t.clock,
        )
        self.assertIsNone(err)
        self.assertEqual((result, calls), (200, 3))
        self.assertEqual(t.sleeps, [1.0, 2.0])
        self.assertEqual(stats.as_dict(), {"attempts": 3, "slept": 3.0, "start": 100.0, "last_exception": None})

    @parametrize("form", FORMS)
    def test_attempts_run_out_returns_the_last_result(self, form):
        t = FakeTime()
        result, err, stats, calls = call_form(
            form, returning(1, 2, 3, 4), attempts=3, retry_on_result=lambda r: True, sleep=t.sleep
        )
        self.assertIsNone(err)
        self.assertEqual((result, calls, stats.attempts), (3, 3, 3))
        self.assertEqual(len(t.sleeps), 2)

    @parametrize("form", FORMS)
    def test_deadline_returns_the_last_result(self, form):
        t = FakeTime()
        result, err, _, calls = call_form(
            form, returning(1, 2, 3), attempts=10, delay=4.0, backoff=1.0, deadline=6.0,
            retry_on_result=lambda r: True, sleep=t.sleep, clock=t.clock,
        )
        self.assertIsNone(err)
        self.assertEqual((result, calls, t.sleeps), (2, 2, [4.0]))

    @parametrize("form", FORMS)
    def test_errors_and_results_mix(self, form):
        result, err, stats, calls = call_form(
            form,
            lambda n: (_ for _ in ()).throw(OSError("down")) if n == 1 else n,
            attempts=5, retry_on_result=lambda r: r < 3, sleep=lambda s: None,
        )
        self.assertIsNone(err)
        self.assertEqual((result, calls), (3, 3))
        self.assertIsInstance(stats.last_exception, OSError)

    @parametrize("form", FORMS)
    def test_on_retry_gets_none_for_a_result(self, form):
        seen = []
        call_form(
            form, returning(0, 1), delay=0.5, retry_on_result=lambda r: r == 0,
            on_retry=lambda exc, n, d: seen.append((exc, n, d)), sleep=lambda s: None,
        )
        self.assertEqual(seen, [(None, 1, 0.5)])

    @parametrize("form", FORMS)
    def test_non_bool_and_raising_predicates(self, form):
        _, err, _, _ = call_form(form, returning(1), retry_on_result=lambda r: "yes")
        self.assertIsInstance(err, TypeError)
        self.assertIn("retry_on_result must return a bool, but returned 'yes' of type str", str(err))

        def broken(value):
            raise LookupError("bug")

        _, err, _, calls = call_form(form, returning(1), retry_on_result=broken)
        self.assertIsInstance(err, LookupError)
        self.assertEqual(calls, 1)

    def test_loop_block_without_result(self):
        for is_async in (False, True):
            with self.subTest(is_async=is_async):
                loop = retry_loop(retry_on_result=lambda r: False)
                msg = "retry_on_result is set, but attempt 1 completed without a result"
                if is_async:

                    async def go():
                        async for attempt in loop:
                            with attempt:
                                pass

                    with self.assertRaisesRegex(RuntimeError, msg):
                        asyncio.run(go())
                else:
                    with self.assertRaisesRegex(RuntimeError, msg):
                        for attempt in loop:
                            with attempt:
                                pass

    def test_refused_for_generator_functions(self):
        def gen():
            yield 1

        async def agen():
            yield 1

        for fn in (gen, agen):
            with self.assertRaisesRegex(TypeError, "retry_on_result does not apply to the generator function"):
                retry(fn, retry_on_result=lambda r: False)


class TestWaitFrom(TestCase):
    @parametrize("form", FORMS)
    def test_overrides_the_computed_delay(self, form):
        t = FakeTime()

        class Busy(OSError):
            def __init__(self, after):
                super().__init__(f"retry after {after}")
                self.after = after

        _, err, stats, _ = call_form(
            form, failing(Busy(7.0), OSError("plain"), Busy(0)), attempts=4, delay=1.0, jitter=5.0,
            wait_from=lambda e: getattr(e, "after", None), sleep=t.sleep, clock=t.clock, rng=random.Random(0),
        )
        self.assertIsNone(err)
        self.assertEqual(t.sleeps[0], 7.0)  # no jitter on top
        self.assertTrue(2.0 <= t.sleeps[1] <= 7.0)  # None: computed 1 * 2**1 + U(0, 5)
        self.assertEqual(t.sleeps[2], 0.0)
        self.assertEqual(stats.slept, sum(t.sleeps))

    @parametrize("form", FORMS)
    def test_capped_by_max_delay(self, form):
        t = FakeTime()
        call_form(form, failing(OSError()), max_delay=2.5, wait_from=lambda e: 60, sleep=t.sleep)
        self.assertEqual(t.sleeps, [2.5])

    @parametrize("form", FORMS)
    def test_deadline_gives_up_instead_of_sleeping_past_it(self, form):
        t = FakeTime()
        _, err, _, calls = call_form(
            form, failing(OSError("x"), OSError("y")), deadline=10.0, wait_from=lambda e: 60,
            sleep=t.sleep, clock=t.clock,
        )
        self.assertIsInstance(err, OSError)
        self.assertEqual((calls, t.sleeps), (1, []))
        self.assertIn("past the 10 s deadline", err.__notes__[-1])

    @parametrize("form", FORMS)
    def test_bad_results(self, form):
        for value, kind, text in (
            (math.nan, ValueError, "the delay wait_from returned must be a finite number of seconds"),
            ("3", TypeError, "the delay wait_from returned must be a number of seconds, but got '3' of type str"),
            (True, TypeError, "but got True of type bool"),
        ):
            with self.subTest(value=value):
                _, err, _, _ = call_form(form, failing(OSError("x")), wait_from=lambda e, v=value: v)
                self.assertIsInstance(err, kind)
                self.assertIn(text, str(err))
                self.assertIsInstance(err.__cause__, OSError)

    @parametrize("form", FORMS)
    def test_raising_propagates_chained(self, form):
        def broken(exc):
            raise KeyError("no header")

        _, err, _, calls = call_form(form, failing(OSError("x")), wait_from=broken)
        self.assertIsInstance(err, KeyError)
        self.assertIsInstance(err.__context__, OSError)
        self.assertEqual(calls, 1)


class TestFullJitter(TestCase):
    @parametrize("form", FORMS)
    def test_uniform_below_the_capped_backoff(self, form):
        t = FakeTime()
        errors = [OSError(str(i)) for i in range(7)]
        call_form(
            form, failing(*errors), attempts=8, delay=1.0, backoff=2.0, max_delay=10.0, jitter="full",
            sleep=t.sleep, rng=random.Random(1234),
        )
        rng = random.Random(1234)
        caps = [min(2.0**k, 10.0) for k in range(7)]
        self.assertEqual(t.sleeps, [rng.uniform(0.0, cap) for cap in caps])
        for slept, cap in zip(t.sleeps, caps):
            self.assertTrue(0.0 <= slept <= cap)

    def test_bad_values(self):
        for make in (retry, retry_loop):
            name = make.__name__
            with self.assertRaisesRegex(ValueError, rf"{name}\(\): jitter must be a number of seconds or 'full', "
                                        r"but got 'half'"):
                make(jitter="half")
            with self.assertRaisesRegex(TypeError, rf"{name}\(\): jitter must be a number of seconds or 'full', "
                                        r"but got \[1\] of type list"):
                make(jitter=[1])
            with self.assertRaisesRegex(ValueError, "jitter must be a finite number"):
                make(jitter=-1.0)


class TestStatistics(TestCase):
    @parametrize("form", FORMS)
    def test_figures_and_reset_per_call(self, form):
        t = FakeTime()
        boom = OSError("b")
        _, err, stats, _ = call_form(
            form, failing(OSError("a"), boom), attempts=2, delay=1.5, sleep=t.sleep, clock=t.clock
        )
        self.assertIs(err, boom)
        self.assertEqual(stats.as_dict(), {"attempts": 2, "slept": 1.5, "start": 100.0, "last_exception": boom})
        self.assertEqual(
            (stats.attempts, stats.slept, stats.start, stats.last_exception), (2, 1.5, 100.0, boom)
        )

    def test_before_a_call_and_after_a_clean_one(self):
        t = FakeTime()
        fails = [True]

        def f():
            if fails.pop() if fails else False:
                raise OSError("x")
            return 1

        w = retry(f, sleep=t.sleep, clock=t.clock)
        self.assertEqual(w.statistics.as_dict(), {"attempts": 0, "slept": 0.0, "start": None, "last_exception": None})
        w()
        self.assertEqual(w.statistics.attempts, 2)
        t.now = 500.0
        w()  # a new call: its own figures only
        self.assertEqual(w.statistics.as_dict(), {"attempts": 1, "slept": 0.0, "start": 500.0, "last_exception": None})
        self.assertIsInstance(w.statistics, RetryStatistics)
        self.assertIn("RetryStatistics(attempts=1, slept=0", repr(w.statistics))

    def test_read_only(self):
        stats = retry(lambda: 1).statistics
        with self.assertRaises(AttributeError):
            stats.attempts = 3
        with self.assertRaises(AttributeError):
            stats.extra = 1

    def test_loop_counts_attempts_as_they_start(self):
        loop = retry_loop(attempts=3, exceptions=OSError, sleep=lambda s: None)
        seen = []
        for attempt in loop:
            with attempt:
                seen.append(loop.statistics.attempts)
                if attempt.number < 2:
                    raise OSError("x")
        self.assertEqual(seen, [1, 2])
        self.assertEqual(loop.statistics.attempts, 2)

    def test_concurrent_threads_never_mix(self):
        delay = 0.25
        bad = []

        def body_for(k):
            n = [0]

            def f():
                n[0] += 1
                if n[0] <= k:
                    raise OSError("x")
                return k

            return f

        def sleep(s):
            threading.Event().wait(0)  # let other threads run between attempts

        w = retry(lambda f: f(), attempts=6, delay=delay, backoff=1.0, sleep=sleep)

        def worker(k):
            for _ in range(50):
                w(body_for(k))
                d = w.statistics.as_dict()  # some call's figures: they must belong together
                if d["slept"] != (d["attempts"] - 1) * delay or (d["attempts"] > 1) != (d["last_exception"] is not None):
                    bad.append(d)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(bad, [])

    def test_concurrent_tasks_never_mix(self):
        counters = {}

        async def attempt(k):
            counters[k] = counters.get(k, 0) + 1
            await asyncio.sleep(0)
            if counters[k] <= k:
                raise OSError("x")
            return k

        w = retry(attempt, attempts=6, delay=0.0)
        own = {}

        async def one(k):
            await w(k)
            own[k] = w.statistics.as_dict()

        async def main():
            await asyncio.gather(*(one(k) for k in range(4)))

        asyncio.run(main())
        for d in own.values():  # the last finished call's figures, consistent with each other
            self.assertEqual((d["attempts"] > 1), d["last_exception"] is not None)
        self.assertEqual(w.statistics.attempts, 4)  # the slowest call (k=3) finished last

    def test_compiled_success_path_records_an_attempt(self):
        w = retry(lambda x: x.sin() * 2)
        counter = CompileCounter()
        x = torch.randn(3)
        self.assertEqual(torch.compile(w, backend=counter, fullgraph=True)(x), x.sin() * 2)
        self.assertEqual(counter.frame_count, 1)
        self.assertEqual((w.statistics.attempts, w.statistics.start), (1, None))

    @parametrize("option", ["retry_if", "wait_from", "full_jitter"])
    def test_options_keep_the_success_path_in_one_graph(self, option):
        kwargs = {
            "retry_if": {"retry_if": lambda e: True},
            "wait_from": {"wait_from": lambda e: None},
            "full_jitter": {"jitter": "full"},
        }[option]
        w = retry(lambda x: x.cos() + 1, **kwargs)
        counter = CompileCounter()
        x = torch.randn(3)
        self.assertEqual(torch.compile(w, backend=counter, fullgraph=True)(x), x.cos() + 1)
        self.assertEqual(counter.frame_count, 1)


# name= records in torch.utils.telemetry, which lands after this module in the PR stack.
HAS_TELEMETRY = importlib.util.find_spec("torch.utils.telemetry") is not None


class TestTelemetryName(TestCase):
    @parametrize("form", FORMS)
    @unittest.skipIf(not HAS_TELEMETRY, "torch.utils.telemetry is not in this build")
    def test_each_attempt_is_timed_under_the_name(self, form):
        from torch.utils import telemetry

        telemetry.reset()
        self.addCleanup(telemetry.reset)
        name = f"test_retry.{form}"
        with ec.error_callback(lambda exc, info: None):
            call_form(form, failing(OSError("a"), OSError("b")), attempts=4, sleep=lambda s: None, name=name)
        figures = telemetry.snapshot()[name]
        self.assertEqual((figures["count"], figures["errors"]), (3, 2))

    def test_bad_names(self):
        for make in (retry, retry_loop):
            with self.assertRaisesRegex(TypeError, rf"{make.__name__}\(\): name must be a string or None, but got 3"):
                make(name=3)
            with self.assertRaisesRegex(ValueError, rf"{make.__name__}\(\): name must be a non-empty string"):
                make(name="")


class TestSetTesting(TestCase):
    def tearDown(self):
        set_testing(False)
        super().tearDown()

    @parametrize("form", FORMS)
    def test_sleeps_zero_and_restores(self, form):
        t = FakeTime()
        delays = []
        self.assertFalse(is_testing())
        with set_testing(True):
            self.assertTrue(is_testing())
            _, _, stats, calls = call_form(
                form, failing(OSError(), OSError()), delay=30.0, sleep=t.sleep,
                on_retry=lambda exc, n, d: delays.append(d),
            )
        self.assertFalse(is_testing())
        self.assertEqual((calls, t.sleeps, delays, stats.slept), (3, [0.0, 0.0], [30.0, 60.0], 0.0))

    def test_default_sleeps_take_no_time(self):
        set_testing(True)  # the plain form: on until switched off
        n = []

        def g():
            n.append(1)
            if len(n) < 3:
                raise OSError
            return 1

        self.assertEqual(retry(g, delay=1000.0)(), 1)

        async def ag():
            n.append(1)
            if len(n) < 5:
                raise OSError
            return 2

        self.assertEqual(asyncio.run(retry(ag, delay=1000.0)()), 2)
        set_testing(False)
        self.assertFalse(retry_module.is_testing())

    def test_nested_restores_the_previous_setting(self):
        with set_testing(True):
            with set_testing(False):
                self.assertFalse(is_testing())
            self.assertTrue(is_testing())
        self.assertFalse(is_testing())

    def test_bad_value(self):
        with self.assertRaisesRegex(TypeError, r"set_testing\(\): enabled must be a bool, but got 1 of type int"):
            set_testing(1)


class TestHookValidation(TestCase):
    @parametrize("hook", ["retry_if", "retry_on_result", "wait_from"])
    def test_not_callable(self, hook):
        for make in (retry, retry_loop):
            with self.assertRaisesRegex(
                TypeError, rf"{make.__name__}\(\): {hook} must be a function or None, but got 5 of type int"
            ):
                make(**{hook: 5})

    @parametrize("hook", ["retry_if", "retry_on_result", "wait_from"])
    def test_async_function(self, hook):
        async def predicate(x):
            return True

        for make in (retry, retry_loop):
            with self.assertRaisesRegex(TypeError, rf"{make.__name__}\(\): {hook} must be a plain function"):
                make(**{hook: predicate})


class TestSetTestingOverlap(TestCase):
    """Blocks that overlap in threads or tasks and exit in any order never leave the switch on."""

    def tearDown(self):
        set_testing(False)
        super().tearDown()

    def test_threads_exiting_in_entry_order(self):
        steps = [threading.Event() for _ in range(4)]
        seen = []

        def first():
            with set_testing(True):
                steps[0].set()
                steps[1].wait()
            steps[2].set()

        def second():
            steps[0].wait()
            with set_testing(True):
                steps[1].set()
                steps[2].wait()
                seen.append(is_testing())  # the first block left: this one still holds it
            steps[3].set()

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(seen, [True])
        self.assertFalse(is_testing())

    def test_tasks_exiting_in_entry_order(self):
        seen = []

        async def block(entered, leave, mark):
            with set_testing(True):
                entered.set()
                await leave.wait()
                seen.append((mark, is_testing()))

        async def main():
            a_in, b_in, a_out, b_out = (asyncio.Event() for _ in range(4))
            a = asyncio.ensure_future(block(a_in, a_out, "a"))
            await a_in.wait()
            b = asyncio.ensure_future(block(b_in, b_out, "b"))
            await b_in.wait()
            a_out.set()
            await a
            seen.append(("after a", is_testing()))
            b_out.set()
            await b

        asyncio.run(main())
        self.assertEqual(seen, [("a", True), ("after a", True), ("b", True)])
        self.assertFalse(is_testing())

    def test_plain_calls_and_blocks(self):
        set_testing(True)
        with set_testing(False):
            self.assertFalse(is_testing())
            set_testing(False)  # a plain call inside a block: applies once no block runs
            self.assertFalse(is_testing())
        self.assertFalse(is_testing())
        set_testing(True)
        with set_testing(False):
            pass
        self.assertTrue(is_testing())
        set_testing(False)
        self.assertFalse(is_testing())

    def test_objects_made_first_and_entered_later_are_no_plain_calls(self):
        # Made in one order, entered later: once entered, neither counts as a plain call.
        on, off = set_testing(True), set_testing(False)
        with on:
            with off:
                self.assertFalse(is_testing())
            self.assertTrue(is_testing())
        self.assertFalse(is_testing())
        set_testing(True)
        later = set_testing(False)  # not entered yet: the latest plain call for now
        self.assertFalse(is_testing())
        with later:
            pass
        self.assertTrue(is_testing())  # the plain set_testing(True) again
        set_testing(False)

    def test_decorator_holds_the_setting_during_each_call(self):
        @set_testing(True)
        def check(x):
            return is_testing(), x

        @set_testing(True)
        async def check_async():
            await asyncio.sleep(0)
            return is_testing()

        self.assertFalse(is_testing())  # decorating sets nothing
        self.assertEqual(check(3), (True, 3))
        self.assertEqual(check.__name__, "check")
        self.assertTrue(asyncio.run(check_async()))
        self.assertFalse(is_testing())

    def test_decorator_refuses_clearly_and_sets_nothing(self):
        with self.assertRaisesRegex(TypeError, r"set_testing\(True\) decorates a function, but got 3 of type int"):
            set_testing(True)(3)
        self.assertFalse(is_testing())

        def gen():
            yield

        with self.assertRaisesRegex(TypeError, r"set_testing\(True\) cannot decorate the generator function"):
            set_testing(True)(gen)
        self.assertFalse(is_testing())


class TestTimeoutInterrupt(TestCase):
    """torch.utils.timeout's interrupt ends the block: never retried, even with exceptions=BaseException."""

    @parametrize("form", FORMS)
    def test_never_retried(self, form):
        from torch.utils._timeout_interrupt import _Interrupt

        calls = []

        def body(n):
            calls.append(n)
            raise _Interrupt

        with self.assertRaises(_Interrupt):
            call_form(form, body, exceptions=BaseException, sleep=lambda s: None)
        self.assertEqual(calls, [1])

    def test_move_on_ends_a_retried_call(self):
        from torch.utils.timeout import move_on

        calls = []

        @retry(attempts=4, exceptions=BaseException)
        def post():
            calls.append(1)
            for _ in range(1000):  # 10 s at most; the interrupt lands in time.sleep
                time.sleep(0.01)

        with move_on(0.05) as scope:
            post()
        self.assertTrue(scope.expired())
        self.assertEqual(len(calls), 1)
        self.assertIsNone(post.statistics.last_exception)


class TestNotesBounded(TestCase):
    @parametrize("form", FORMS)
    def test_same_error_raised_again_and_again(self, form):
        cached = OSError("cached")
        for _ in range(30):
            _, err, _, _ = call_form(form, lambda n: (_ for _ in ()).throw(cached), sleep=lambda s: None)
            self.assertIs(err, cached)
        ours = [n for n in cached.__notes__ if n.startswith("torch.utils.retry: ")]
        self.assertLessEqual(len(ours), 11)
        self.assertIn("attempt 3 of 3 failed", ours[-1])

    def test_not_retried_note_once(self):
        cached = OSError("after the first item")

        @retry(sleep=lambda s: None)
        def gen():
            yield 1
            raise cached

        for _ in range(5):
            with self.assertRaises(OSError):
                list(gen())
        self.assertEqual(len(cached.__notes__), 1)


class StrRaises(OSError):
    def __str__(self):
        raise RuntimeError("no str")


class NotesNotAList(OSError):
    def __init__(self):
        super().__init__("tuple notes")
        self.__notes__ = ("theirs",)


class NoWrites(OSError):
    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")


class TestOddExceptions(TestCase):
    """Retry's notes and chaining are best-effort: the user's exception comes out unchanged."""

    @parametrize("form", FORMS)
    def test_comes_out_unchanged(self, form):
        for make in (StrRaises, NotesNotAList, NoWrites):
            with self.subTest(make=make.__name__):
                errors = [make(), make()]
                _, err, stats, calls = call_form(form, failing(*errors, *errors), attempts=2, sleep=lambda s: None)
                self.assertIs(err, errors[1])
                self.assertIs(stats.last_exception, errors[1])
                self.assertEqual(calls, 2)

    def test_str_failure_in_the_note(self):
        err = StrRaises()
        _, got, _, _ = call_form("retry", failing(err), attempts=1)
        self.assertIs(got, err)
        self.assertEqual(err.__notes__, [
            "torch.utils.retry: attempt 1 of 1 failed with StrRaises: <exception str() failed>; "
            "giving up: no attempts left (1)"
        ])
        self.assertEqual(NotesNotAList().__notes__, ("theirs",))


class TestWaitFromValues(TestCase):
    @parametrize("form", FORMS)
    def test_past_date_retries_at_once(self, form):
        t = FakeTime()
        _, err, _, calls = call_form(form, failing(OSError()), wait_from=lambda e: -30.0, sleep=t.sleep)
        self.assertEqual((err, calls, t.sleeps), (None, 2, [0.0]))

    @parametrize("form", FORMS)
    def test_huge_is_capped_by_max_delay(self, form):
        for value in (3600, 2e9, 10**400, math.inf):
            with self.subTest(value=str(value)[:10]):
                t = FakeTime()
                _, err, _, _ = call_form(
                    form, failing(OSError()), max_delay=1.0, wait_from=lambda e, v=value: v, sleep=t.sleep
                )
                self.assertEqual((err, t.sleeps), (None, [1.0]))

    @parametrize("form", FORMS)
    def test_huge_gives_up_at_the_deadline(self, form):
        for value in (3600, 2e9, 10**400, math.inf):
            with self.subTest(value=str(value)[:10]):
                t = FakeTime()
                first = OSError("x")
                _, err, _, calls = call_form(
                    form, failing(first), deadline=5.0, wait_from=lambda e, v=value: v, sleep=t.sleep, clock=t.clock
                )
                self.assertIs(err, first)
                self.assertEqual((calls, t.sleeps), (1, []))
                self.assertIn("past the 5 s deadline", err.__notes__[-1])

    @parametrize("form", FORMS)
    def test_unbounded_without_cap_nor_deadline(self, form):
        for value, shown in ((2e9, "2000000000.0"), (math.inf, "inf"), (10**400, "an integer of 1329 bits")):
            with self.subTest(value=shown):
                _, err, _, _ = call_form(form, failing(OSError()), wait_from=lambda e, v=value: v)
                self.assertIsInstance(err, ValueError)
                name = "retry" if "retry" in form else "retry_loop"
                self.assertIn(f"{name}(): wait_from returned {shown} (seconds), past the longest sleep accepted", str(err))
                self.assertIsInstance(err.__cause__, OSError)


class TestClockChecked(TestCase):
    @parametrize("form", FORMS)
    def test_bad_readings(self, form):
        name = "retry" if "retry" in form else "retry_loop"
        for clock, kind, text in (
            (lambda: math.nan, ValueError, f"{name}(): clock must return a finite number of seconds, but returned nan"),
            (lambda: "x", TypeError, f"{name}(): clock must return a number of seconds, but returned 'x' of type str"),
        ):
            with self.subTest(text=text):
                _, err, _, calls = call_form(
                    form, failing(OSError(), OSError()), deadline=5.0, clock=clock, sleep=lambda s: None
                )
                self.assertIsInstance(err, kind)
                self.assertEqual(str(err), text)
                self.assertEqual(calls, 1)


class TestLoopBreak(TestCase):
    def test_break_after_a_failed_attempt(self):
        loop = retry_loop(exceptions=KeyError, sleep=lambda s: None)
        for attempt in loop:
            with attempt:
                raise KeyError("gone")
            break
        self.assertEqual(loop.statistics.attempts, 1)
        self.assertIsInstance(loop.statistics.last_exception, KeyError)

    def test_async_break_after_a_failed_attempt(self):
        loop = retry_loop(exceptions=KeyError)

        async def main():
            async for attempt in loop:
                with attempt:
                    raise KeyError("gone")
                break
            return loop.statistics.as_dict()  # before the loop's generator is finalized

        figures = asyncio.run(main())
        self.assertEqual(figures["attempts"], 1)
        self.assertIsInstance(figures["last_exception"], KeyError)


class TestGeneratorStatistics(TestCase):
    """A generator call's figures are published when it ends, not at its first item."""

    def test_sync(self):
        early, late = ValueError("before first"), ValueError("after first")
        runs = []

        @retry(exceptions=ValueError, sleep=lambda s: None)
        def gen(fail_late):
            runs.append(1)
            if len(runs) == 1:
                raise early
            yield 1
            if fail_late:
                raise late
            yield 2

        g1 = gen(True)
        self.assertEqual(next(g1), 1)
        self.assertEqual(gen.statistics.attempts, 0)  # g1 has not finished
        self.assertEqual(list(gen(False)), [1, 2])
        self.assertEqual((gen.statistics.attempts, gen.statistics.last_exception), (1, None))
        with self.assertRaises(ValueError):
            next(g1)
        self.assertEqual((gen.statistics.attempts, gen.statistics.last_exception), (2, late))

    def test_async(self):
        late = ValueError("after first")
        runs = []

        @retry(exceptions=ValueError, sleep=lambda s: None)
        async def agen():
            runs.append(1)
            if len(runs) == 1:
                raise ValueError("before first")
            yield 1
            raise late

        async def main():
            g = agen()
            self.assertEqual(await g.__anext__(), 1)
            self.assertEqual(agen.statistics.attempts, 0)
            with self.assertRaises(ValueError):
                await g.__anext__()

        asyncio.run(main())
        self.assertEqual((agen.statistics.attempts, agen.statistics.last_exception), (2, late))


class TestMessages(TestCase):
    def test_type_named_with_its_module(self):
        import numpy as np

        with self.assertRaisesRegex(
            TypeError, r"retry_if must return a bool, but returned np\.True_ of type numpy\.bool"
        ):
            retry(failing(OSError()), retry_if=lambda e: np.bool_(True), sleep=lambda s: None)(1)

    def test_classmethod_below(self):
        for kind in (classmethod, staticmethod):
            with self.assertRaisesRegex(
                TypeError, rf"retry\(\): cannot wrap a {kind.__name__} object; put @retry below @{kind.__name__}"
            ):
                retry(kind(lambda cls: 1))

    def test_fullgraph_failure_names_retry(self):
        @retry(attempts=2, sleep=lambda s: None)
        def fails(x):
            raise ValueError("bad")

        torch._dynamo.reset()
        with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, r"apply @retry outside the compiled region"):
            torch.compile(fails, fullgraph=True)(torch.ones(2))

    def test_attempt_used_twice(self):
        for attempt in retry_loop():
            with attempt:
                pass
            with self.assertRaisesRegex(RuntimeError, r"retry_loop\(\): attempt 1 was already used"):
                with attempt:
                    pass



instantiate_parametrized_tests(TestRetryIf)
instantiate_parametrized_tests(TestRetryOnResult)
instantiate_parametrized_tests(TestWaitFrom)
instantiate_parametrized_tests(TestFullJitter)
instantiate_parametrized_tests(TestStatistics)
instantiate_parametrized_tests(TestTelemetryName)
instantiate_parametrized_tests(TestSetTesting)
instantiate_parametrized_tests(TestHookValidation)
instantiate_parametrized_tests(TestTimeoutInterrupt)
instantiate_parametrized_tests(TestNotesBounded)
instantiate_parametrized_tests(TestOddExceptions)
instantiate_parametrized_tests(TestWaitFromValues)
instantiate_parametrized_tests(TestClockChecked)


if __name__ == "__main__":
    run_tests()
