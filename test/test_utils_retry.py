# Owner(s): ["module: tests"]

import asyncio
import functools
import gc
import inspect
import itertools
import math
import multiprocessing
import pickle
import random
import time
import warnings
from fractions import Fraction
from unittest import mock

from hypothesis import example, given, settings, strategies as st

import torch
import torch.utils.error_callback as ec
from torch._dynamo.testing import CompileCounterWithBackend
import torch.utils.retry as retry_module
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils.retry import Attempt, retry, retry_loop


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


class Flaky:
    """Fails with the given exceptions, in order, then returns ``result``."""

    def __init__(self, *errors, result="ok"):
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


_module_calls = []


@retry(attempts=2, sleep=lambda s: None)
def flaky_once(x):
    _module_calls.append(x)
    if len(_module_calls) % 2:
        raise ConnectionError("first call fails")
    return x * 2


class TestRetry(TestCase):
    def test_success_first_time(self):
        t = FakeTime()
        f = retry(Flaky(), sleep=t.sleep)
        self.assertEqual(f(), "ok")
        self.assertEqual(t.sleeps, [])

    def test_retries_then_succeeds(self):
        t = FakeTime()
        flaky = Flaky(OSError("a"), OSError("b"))
        self.assertEqual(retry(flaky, attempts=3, delay=1.0, sleep=t.sleep)(), "ok")
        self.assertEqual(flaky.calls, 3)
        self.assertEqual(t.sleeps, [1.0, 2.0])

    def test_forms_of_decoration(self):
        t = FakeTime()

        @retry
        def a():
            return 1

        @retry(attempts=2, sleep=t.sleep)
        def b():
            return 2

        self.assertEqual((a(), b(), retry(lambda: 3, attempts=1)()), (1, 2, 3))
        self.assertEqual(b.__name__, "b")

    def test_arguments_are_passed_each_time(self):
        seen = []

        @retry(attempts=3, sleep=lambda s: None)
        def f(x, *, y):
            seen.append((x, y))
            if len(seen) < 2:
                raise ValueError
            return x + y

        self.assertEqual(f(1, y=2), 3)
        self.assertEqual(seen, [(1, 2), (1, 2)])

    def test_only_listed_exceptions_are_retried(self):
        flaky = Flaky(KeyError("not retried"))
        f = retry(flaky, attempts=5, exceptions=(OSError, ValueError), sleep=lambda s: None)
        with self.assertRaises(KeyError):
            f()
        self.assertEqual(flaky.calls, 1)

    def test_base_exceptions_are_not_retried_by_default(self):
        flaky = Flaky(KeyboardInterrupt())
        with self.assertRaises(KeyboardInterrupt):
            retry(flaky, sleep=lambda s: None)()
        self.assertEqual(flaky.calls, 1)

    def test_final_error_carries_the_history(self):
        errors = [ConnectionError("first"), TimeoutError("second"), ConnectionError("third")]
        f = retry(Flaky(*errors), attempts=3, delay=0.5, sleep=lambda s: None)
        with self.assertRaises(ConnectionError) as cm:
            f()
        err = cm.exception
        self.assertIs(err, errors[2])
        self.assertIs(err.__context__, errors[1])
        self.assertIs(err.__context__.__context__, errors[0])
        self.assertExpectedInline(
            "\n".join(err.__notes__),
            """\
torch.utils.retry: attempt 1 of 3 failed with ConnectionError: first; retrying in 0.5 s
torch.utils.retry: attempt 2 of 3 failed with TimeoutError: second; retrying in 1 s
torch.utils.retry: attempt 3 of 3 failed with ConnectionError: third; giving up: no attempts left (3)""",
        )

    def test_same_exception_object_raised_twice_does_not_loop(self):
        err = OSError("cached")
        with self.assertRaises(OSError) as cm:
            retry(Flaky(err, err), attempts=2, sleep=lambda s: None)()
        self.assertIsNone(cm.exception.__context__)
        self.assertEqual(len(cm.exception.__notes__), 2)

    def test_on_retry(self):
        seen = []
        errors = [ValueError("1"), ValueError("2")]
        f = retry(Flaky(*errors), attempts=3, delay=0.25, sleep=lambda s: None, on_retry=lambda *a: seen.append(a))
        self.assertEqual(f(), "ok")
        self.assertEqual(seen, [(errors[0], 1, 0.25), (errors[1], 2, 0.5)])

    def test_on_retry_error_propagates(self):
        def stop(exc, attempt, delay):
            raise RuntimeError("stop retrying")

        flaky = Flaky(ValueError(), ValueError())
        with self.assertRaisesRegex(RuntimeError, "stop retrying"):
            retry(flaky, on_retry=stop, sleep=lambda s: None)()
        self.assertEqual(flaky.calls, 1)

    def test_on_retry_error_is_chained_from_the_attempt_error(self):
        # An exception from on_retry stops retrying; the attempt's error is its __context__, in every form.
        def stop(exc, attempt, delay):
            1 / 0

        async def astop(exc, attempt, delay):
            1 / 0

        def gen():
            raise KeyError("gen")
            yield

        async def agen():
            raise KeyError("agen")
            yield

        async def block(hook):
            async for attempt in retry_loop(on_retry=hook, sleep=lambda s: None):
                with attempt:
                    raise KeyError("async loop")

        def loop():
            for attempt in retry_loop(on_retry=stop, sleep=lambda s: None):
                with attempt:
                    raise KeyError("loop")

        kw = dict(sleep=lambda s: None)
        forms = {
            "function": lambda: retry(Flaky(KeyError("f")), on_retry=stop, **kw)(),
            "coroutine": lambda: run(retry(AsyncFlaky(KeyError("c")), on_retry=stop, **kw)()),
            "coroutine_async_hook": lambda: run(retry(AsyncFlaky(KeyError("c")), on_retry=astop, **kw)()),
            "generator": lambda: next(retry(gen, on_retry=stop, **kw)()),
            "async_generator": lambda: run(retry(agen, on_retry=stop, **kw)().__anext__()),
            "loop": loop,
            "async_loop": lambda: run(block(stop)),
            "async_loop_async_hook": lambda: run(block(astop)),
        }
        for name, call in forms.items():
            with self.subTest(form=name):
                with self.assertRaises(ZeroDivisionError) as cm:
                    call()
                self.assertIsInstance(cm.exception.__context__, KeyError)

    def test_deadline_stops_before_sleeping_past_it(self):
        t = FakeTime()
        flaky = Flaky(*[OSError(str(i)) for i in range(10)])
        f = retry(flaky, attempts=10, delay=1.0, backoff=2.0, deadline=5.0, sleep=t.sleep, clock=t.clock)
        with self.assertRaises(OSError) as cm:
            f()
        self.assertEqual(t.sleeps, [1.0, 2.0])  # a third sleep of 4 s would end at 7 s
        self.assertEqual(flaky.calls, 3)
        self.assertIn("giving up: the next attempt would start past the 5 s deadline", cm.exception.__notes__[-1])

    def test_reports_each_failed_attempt(self):
        seen = []
        with ec.error_callback(lambda exc, info: seen.append((str(exc), info))):
            with self.assertRaises(ValueError):
                retry(Flaky(ValueError("a"), ValueError("b")), attempts=2, delay=1.0, sleep=lambda s: None)()
        self.assertEqual(
            seen,
            [
                ("a", {"source": "torch.utils.retry", "attempt": 1, "attempts": 2, "next_action": "retry", "next_delay": 1.0}),
                ("b", {"source": "torch.utils.retry", "attempt": 2, "attempts": 2, "next_action": "raise", "next_delay": None}),
            ],
        )

    def test_module_level_function_pickles(self):
        self.assertIs(pickle.loads(pickle.dumps(flaky_once)), flaky_once)

    def test_public_api(self):
        self.assertEqual(
            sorted(retry_module.__all__),
            ["Attempt", "RetryStatistics", "is_testing", "retry", "retry_loop", "set_testing"],
        )
        for name in retry_module.__all__:
            self.assertEqual(getattr(retry_module, name).__module__, "torch.utils.retry")


class TestRetryLoop(TestCase):
    def test_success_ends_the_loop(self):
        numbers = []
        for attempt in retry_loop(attempts=5, sleep=lambda s: None):
            with attempt:
                numbers.append(attempt.number)
        self.assertEqual(numbers, [1])

    def test_retries_then_succeeds(self):
        t = FakeTime()
        flaky = Flaky(OSError(), OSError())
        attempts = []
        for attempt in retry_loop(attempts=3, delay=0.1, sleep=t.sleep):
            with attempt:
                attempts.append(attempt)
                flaky()
        self.assertEqual([a.number for a in attempts], [1, 2, 3])
        self.assertIsInstance(attempts[0], Attempt)
        self.assertEqual(repr(attempts[0]), "<Attempt 1 of 3>")
        self.assertEqual(t.sleeps, [0.1, 0.2])

    def test_gives_up_with_history(self):
        errors = [OSError("a"), OSError("b")]
        with self.assertRaises(OSError) as cm:
            for attempt in retry_loop(attempts=2, sleep=lambda s: None):
                with attempt:
                    raise errors[attempt.number - 1]
        self.assertIs(cm.exception, errors[1])
        self.assertIs(cm.exception.__context__, errors[0])
        self.assertEqual(len(cm.exception.__notes__), 2)

    def test_other_exceptions_propagate_at_once(self):
        count = 0
        with self.assertRaises(KeyError):
            for attempt in retry_loop(attempts=3, exceptions=OSError, sleep=lambda s: None):
                with attempt:
                    count += 1
                    raise KeyError
        self.assertEqual(count, 1)

    def test_attempt_must_be_used(self):
        with self.assertRaisesRegex(RuntimeError, "attempt 1 was not used; write `with attempt:`"):
            for attempt in retry_loop():
                pass
        with self.assertRaisesRegex(RuntimeError, "attempt 1 was already used"):
            for attempt in retry_loop():
                with attempt:
                    pass
                with attempt:
                    pass

    def test_deadline(self):
        t = FakeTime()
        with self.assertRaises(OSError):
            for attempt in retry_loop(attempts=100, delay=1.0, backoff=1.0, deadline=3.5, sleep=t.sleep, clock=t.clock):
                with attempt:
                    raise OSError
        self.assertEqual(t.sleeps, [1.0, 1.0, 1.0])


class TestArguments(TestCase):
    @parametrize("fn", [retry, retry_loop], name_fn=lambda f: f.__name__)
    def test_messages(self, fn):
        name = fn.__name__
        seconds = "must be a finite number of seconds between 0 and 1e+09, but got"
        cases = [
            (dict(attempts=0), ValueError, f"{name}(): attempts must be an int >= 1, but got 0"),
            (dict(attempts=-(10**100)), ValueError, f"{name}(): attempts must be an int >= 1, but got -{10**100}"),
            (dict(attempts=2.0), TypeError, f"{name}(): attempts must be an int, but got 2.0 of type float"),
            (dict(attempts="3"), TypeError, f"{name}(): attempts must be an int, but got '3' of type str"),
            (dict(attempts=True), TypeError, f"{name}(): attempts must be an int, but got True of type bool"),
            (dict(exceptions=()), TypeError, f"{name}(): exceptions must be an exception class or a non-empty tuple of them, but got ()"),  # noqa: B950
            (dict(exceptions=int), TypeError, f"{name}(): exceptions must be an exception class or a non-empty tuple of them, but got <class 'int'>"),  # noqa: B950
            (dict(exceptions=ValueError("x")), TypeError, f"{name}(): exceptions must be an exception class or a non-empty tuple of them, but got ValueError('x')"),  # noqa: B950
            (dict(delay=-1), ValueError, f"{name}(): delay {seconds} -1"),
            (dict(delay=math.nan), ValueError, f"{name}(): delay {seconds} nan"),
            (dict(delay=math.inf), ValueError, f"{name}(): delay {seconds} inf"),
            (dict(delay=1e300), ValueError, f"{name}(): delay {seconds} 1e+300"),
            (dict(delay=10**400), ValueError, f"{name}(): delay {seconds} an integer of 1329 bits"),
            (dict(delay="1s"), TypeError, f"{name}(): delay must be a number of seconds, but got '1s' of type str"),
            (dict(delay=True), TypeError, f"{name}(): delay must be a number of seconds, but got True of type bool"),
            (dict(max_delay=-0.5), ValueError, f"{name}(): max_delay {seconds} -0.5"),
            (dict(max_delay=math.inf), ValueError, f"{name}(): max_delay {seconds} inf"),
            (dict(max_delay="1"), TypeError, f"{name}(): max_delay must be a number of seconds or None, but got '1' of type str"),  # noqa: B950
            (dict(jitter=-1), ValueError, f"{name}(): jitter {seconds} -1"),
            (dict(jitter=math.inf), ValueError, f"{name}(): jitter {seconds} inf"),
            (dict(deadline=-1), ValueError, f"{name}(): deadline {seconds} -1"),
            (dict(deadline=math.nan), ValueError, f"{name}(): deadline {seconds} nan"),
            (dict(deadline=math.inf), ValueError, f"{name}(): deadline {seconds} inf"),
            (dict(backoff=0.5), ValueError, f"{name}(): backoff must be a finite number >= 1, but got 0.5"),
            (dict(backoff=math.inf), ValueError, f"{name}(): backoff must be a finite number >= 1, but got inf"),
            (dict(backoff=math.nan), ValueError, f"{name}(): backoff must be a finite number >= 1, but got nan"),
            (dict(backoff=10**400), ValueError, f"{name}(): backoff must be a finite number >= 1, but got an integer of 1329 bits"),  # noqa: B950
            (dict(max_delay=10**400), ValueError, f"{name}(): max_delay {seconds} an integer of 1329 bits"),
            (dict(jitter=10**400), ValueError, f"{name}(): jitter {seconds} an integer of 1329 bits"),
            (dict(deadline=10**400), ValueError, f"{name}(): deadline {seconds} an integer of 1329 bits"),
            (dict(backoff="2"), TypeError, f"{name}(): backoff must be a number, but got '2' of type str"),
            (dict(on_retry=3), TypeError, f"{name}(): on_retry must be callable, but got 3"),
            (dict(sleep=0.1), TypeError, f"{name}(): sleep must be callable, but got 0.1"),
            (dict(clock="now"), TypeError, f"{name}(): clock must be callable, but got 'now'"),
            (dict(clock=None), TypeError, f"{name}(): clock must be callable, but got None"),
            (dict(rng=0), TypeError, f"{name}(): rng must be a random.Random instance, but got 0"),
        ]
        for kwargs, error, message in cases:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(error) as cm:
                    fn(**kwargs)
                self.assertEqual(str(cm.exception), message)

    @parametrize("fn", [retry, retry_loop], name_fn=lambda f: f.__name__)
    def test_accepted_numbers(self, fn):
        # Any real number type (NumPy's, Fraction) and the largest durations; None where documented.
        for kwargs in (
            dict(delay=Fraction(1, 10), backoff=Fraction(3, 2), jitter=0, max_delay=1e9, deadline=1e9),
            dict(attempts=10**100, delay=1e9, max_delay=1e9),
            dict(attempts=10**400, delay=1e-9, backoff=1.0),
            dict(sleep=None, on_retry=None, max_delay=None, deadline=None),
        ):
            with self.subTest(kwargs=kwargs):
                fn(**kwargs)

    def test_unbounded_schedule_is_refused(self):
        # Without max_delay or deadline, a sleep past what the platform can do is refused up front.
        for fn in (retry, retry_loop):
            with self.assertRaises(ValueError) as cm:
                fn(attempts=2000, delay=0.001)
            self.assertExpectedInline(
                str(cm.exception).replace("retry_loop(", "retry("),
                """retry(): with attempts=2000, delay=0.001 and backoff=2.0, the sleep before the last attempt would be 2.9e+598 s, past the longest accepted (1e+09 s); pass max_delay= or deadline=, or fewer attempts""",  # noqa: B950
            )
        with self.assertRaisesRegex(ValueError, "would be 1.1e\\+09 s"):
            retry(attempts=2, delay=1e9, jitter=1e8)
        for fn in (retry, retry_loop):  # attempts past the float range: a ValueError, not an OverflowError
            with self.assertRaisesRegex(ValueError, "the sleep before the last attempt would be more than 1e\\+308 s"):
                fn(attempts=10**400, delay=1)
            with self.assertRaisesRegex(ValueError, "would be more than 1e\\+308 s"):
                fn(attempts=10**400, delay=1e-300, backoff=1.5)
        # Either bound makes it fine.
        retry(attempts=2000, delay=0.001, max_delay=1.0)
        retry(attempts=2000, delay=0.001, deadline=60.0)
        retry(attempts=31, delay=1.0)  # 2**29 s before the last attempt: under 1e9

    def test_async_hooks_refused_where_nothing_awaits_them(self):
        async def async_sleep(seconds):
            pass

        async def async_on_retry(exc, attempt, delay):
            pass

        def gen():
            yield 1

        for kwargs in (dict(sleep=async_sleep), dict(on_retry=async_on_retry)):
            name = next(iter(kwargs))
            with self.subTest(name=name):
                with self.assertRaisesRegex(
                    TypeError, f"retry\\(\\): {name} is an async function, which a synchronous function cannot await"
                ):
                    retry(lambda: None, **kwargs)
                with self.assertRaisesRegex(TypeError, f"{name} is an async function, which a generator function"):
                    retry(gen, **kwargs)
                loop = retry_loop(**kwargs)
                with self.assertRaisesRegex(
                    TypeError, f"retry_loop\\(\\): {name} is an async function, which a `for` loop cannot await"
                ):
                    iter(loop)

    def test_awaitable_returned_to_sync_code(self):
        err = OSError("flaky")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # and no "coroutine was never awaited"
            with self.assertRaisesRegex(TypeError, "retry\\(\\): sleep returned an awaitable") as cm:
                retry(Flaky(err), sleep=lambda s: asyncio.sleep(s))()
            self.assertIs(cm.exception.__cause__, err)
            with self.assertRaisesRegex(TypeError, "retry_loop\\(\\): on_retry returned an awaitable"):
                for attempt in retry_loop(on_retry=lambda *a: asyncio.sleep(0)):
                    with attempt:
                        raise OSError
            gc.collect()

    def test_errors_at_decoration_time(self):
        with self.assertRaises(ValueError):

            @retry(attempts=0)
            def f():
                pass

        with self.assertRaisesRegex(TypeError, "retry\\(\\): expected a callable to wrap, but got 3"):
            retry(3)

    def test_class_is_refused(self):
        # The wrapper, a function, would replace the class; retry a function that constructs it instead.
        class Client:
            pass

        message = (
            "retry(): can only decorate a function, but got the class "
            "TestArguments.test_class_is_refused.<locals>.Client; to retry constructing it, "
            "retry a function that does: retry(lambda *args, **kwargs: Client(*args, **kwargs), ...)"
        )
        for decorate in (lambda c: retry(c), lambda c: retry(attempts=2)(c)):
            with self.assertRaises(TypeError) as cm:
                decorate(Client)
            self.assertEqual(str(cm.exception), message)
        self.assertIsInstance(retry(lambda: Client())(), Client)


class TestSchedule(TestCase):
    @settings(max_examples=200, deadline=None)
    @given(
        attempts=st.integers(1, 12),
        delay=st.floats(0, 10, allow_nan=False),
        backoff=st.floats(1, 5, allow_nan=False),
        max_delay=st.none() | st.floats(0, 30, allow_nan=False),
        jitter=st.floats(0, 2, allow_nan=False),
        seed=st.integers(0, 2**32 - 1),
    )
    def test_delays(self, attempts, delay, backoff, max_delay, jitter, seed):
        t = FakeTime()
        flaky = Flaky(*[OSError(i) for i in range(attempts)])
        f = retry(
            flaky, attempts=attempts, delay=delay, backoff=backoff, max_delay=max_delay, jitter=jitter,
            sleep=t.sleep, clock=t.clock, rng=random.Random(seed),
        )
        with self.assertRaises(OSError):
            f()
        self.assertEqual(flaky.calls, attempts)
        self.assertEqual(len(t.sleeps), attempts - 1)
        rng = random.Random(seed)
        for k, slept in enumerate(t.sleeps):
            base = delay * backoff**k
            expected = base + (rng.uniform(0, jitter) if jitter else 0.0)
            if max_delay is not None:
                expected = min(expected, max_delay)
                self.assertLessEqual(slept, max_delay)
            self.assertEqual(slept, expected)
            self.assertGreaterEqual(slept, min(base, max_delay) if max_delay is not None else base)
        if jitter == 0:
            self.assertEqual(t.sleeps, sorted(t.sleeps))  # never decreasing
        # Same seed, same schedule.
        t2 = FakeTime()
        with self.assertRaises(OSError):
            retry(
                Flaky(*[OSError(i) for i in range(attempts)]), attempts=attempts, delay=delay, backoff=backoff,
                max_delay=max_delay, jitter=jitter, sleep=t2.sleep, rng=random.Random(seed),
            )()
        self.assertEqual(t2.sleeps, t.sleeps)

    @settings(max_examples=100, deadline=None)
    @given(
        delay=st.floats(0.01, 5, allow_nan=False),
        backoff=st.floats(1, 3, allow_nan=False),
        jitter=st.floats(0, 1, allow_nan=False),
        deadline=st.floats(0, 60, allow_nan=False),
    )
    @example(delay=1.0, backoff=1.0, jitter=2.220446049250313e-16, deadline=1.0)
    def test_deadline_bounds_the_total(self, delay, backoff, jitter, deadline):
        t = FakeTime()
        f = retry(
            Flaky(*[OSError() for _ in range(1000)]), attempts=1000, delay=delay, backoff=backoff, jitter=jitter,
            deadline=deadline, sleep=t.sleep, clock=t.clock, rng=random.Random(0),
        )
        start = t.now
        with self.assertRaises(OSError):
            f()
        # Measured on the policy's clock (a sum of the sleeps may round differently).
        self.assertLessEqual(t.now - start, deadline)


class TestLongRuns(TestCase):
    def test_backoff_past_the_cap_does_not_overflow(self):
        # delay * backoff**k used to overflow after ~1025 retries.
        t = FakeTime()
        flaky = Flaky(*[OSError(str(i)) for i in range(2000)])
        with self.assertRaises(OSError) as cm:
            retry(flaky, attempts=2000, delay=0.001, max_delay=1.0, sleep=t.sleep)()
        self.assertEqual(flaky.calls, 2000)
        self.assertEqual(len(t.sleeps), 1999)
        self.assertEqual(t.sleeps[:3], [0.001, 0.002, 0.004])
        self.assertEqual(set(t.sleeps[10:]), {1.0})
        self.assertEqual(str(cm.exception), "1999")

    def test_million_attempts(self):
        t = FakeTime()
        flaky = Flaky(*[OSError() for _ in range(1500)])
        f = retry(flaky, attempts=10**6, delay=0.001, backoff=3.0, max_delay=2.0, jitter=0.5, sleep=t.sleep)
        self.assertEqual(f(), "ok")
        self.assertEqual(len(t.sleeps), 1500)
        self.assertLessEqual(max(t.sleeps), 2.0)
        numbers = []
        flaky = Flaky(*[OSError() for _ in range(1500)])
        for attempt in retry_loop(attempts=10**6, delay=0.001, max_delay=1.0, sleep=t.sleep):
            with attempt:
                numbers.append(attempt.number)
                flaky()
        self.assertEqual(numbers, list(range(1, 1502)))

    def test_deadline_without_cap_gives_up_instead_of_overflowing(self):
        t = FakeTime()
        flaky = Flaky(*[OSError() for _ in range(5000)])
        f = retry(flaky, attempts=10**9, delay=1e-6, backoff=1.5, deadline=3600.0, sleep=t.sleep, clock=t.clock)
        with self.assertRaises(OSError) as cm:
            f()
        self.assertLessEqual(t.now - 100.0, 3600.0)
        self.assertIn("giving up: the next attempt would start past the 3600 s deadline", cm.exception.__notes__[-1])
        # A factor so large that the second retry's backoff**k overflows a float.
        t = FakeTime()
        with self.assertRaises(OSError):
            retry(Flaky(*[OSError()] * 3), attempts=4, delay=1.0, backoff=1e300, deadline=1e9, sleep=t.sleep)()
        self.assertEqual(t.sleeps, [1.0])
        # A delay so small that backoff**k overflows before delay * backoff**k reaches the deadline.
        t = FakeTime()
        with self.assertRaises(OSError):
            retry(Flaky(*[OSError()] * 1100), attempts=1100, delay=1e-300, deadline=1e9, sleep=t.sleep, clock=t.clock)()
        self.assertEqual(len(t.sleeps), 1026)
        self.assertEqual(t.sleeps[1025], math.ldexp(1e-300, 1025), rtol=1e-12, atol=0)

    @settings(max_examples=100, deadline=None)
    @given(
        k=st.integers(0, 10**12) | st.integers(0, 10**400),
        delay=st.floats(0, 1e9),
        backoff=st.floats(1, 1e300) | st.just(1.0),
        max_delay=st.floats(0, 1e9),
        jitter=st.floats(0, 1e9),
    )
    def test_any_retry_index_gives_a_capped_delay(self, k, delay, backoff, max_delay, jitter):
        policy = retry_loop(delay=delay, backoff=backoff, max_delay=max_delay, jitter=jitter).policy
        d = policy.next_delay(k)
        self.assertTrue(0 <= d <= max_delay)

    def test_history_is_bounded(self):
        errors = [OSError(f"e{i}") for i in range(3000)]
        with self.assertRaises(OSError) as cm:
            retry(Flaky(*errors), attempts=3000, sleep=lambda s: None)()
        err = cm.exception
        self.assertIs(err, errors[-1])
        chain = []
        while err is not None:
            chain.append(err)
            err = err.__context__
        self.assertEqual(chain, errors[:-11:-1])  # the last 10, newest first
        notes = cm.exception.__notes__
        self.assertEqual(len(notes), 11)
        self.assertExpectedInline(
            "\n".join(notes[:2] + notes[-1:]),
            """\
torch.utils.retry: attempts 1 to 2990 failed too (only the last 10 are kept)
torch.utils.retry: attempt 2991 of 3000 failed with OSError: e2990; retrying in 0 s
torch.utils.retry: attempt 3000 of 3000 failed with OSError: e2999; giving up: no attempts left (3000)""",
        )
        # The dropped errors are not kept alive by the kept ones.
        self.assertIsNone(errors[2990].__context__)
        self.assertIs(errors[2991].__context__, errors[2990])

    def test_history_of_a_loop_is_bounded(self):
        with self.assertRaises(OSError) as cm:
            for attempt in retry_loop(attempts=50, sleep=lambda s: None):
                with attempt:
                    raise OSError(attempt.number)
        self.assertEqual(len(cm.exception.__notes__), 11)
        self.assertEqual(str(cm.exception.__context__), "49")


class RaisesWithoutAddNote(OSError):
    """An error as on Python 3.10: no ``add_note``."""

    @property
    def add_note(self):
        raise AttributeError("'RaisesWithoutAddNote' object has no attribute 'add_note'")


class TestPython310(TestCase):
    def test_give_up_without_add_note(self):
        errors = [RaisesWithoutAddNote("first"), RaisesWithoutAddNote("second")]
        self.assertFalse(hasattr(errors[0], "add_note"))
        with self.assertRaises(RaisesWithoutAddNote) as cm:
            retry(Flaky(*errors), attempts=2, delay=0.5, sleep=lambda s: None)()
        self.assertIs(cm.exception, errors[1])
        self.assertIs(cm.exception.__context__, errors[0])
        self.assertExpectedInline(
            "\n".join(cm.exception.__notes__),
            """\
torch.utils.retry: attempt 1 of 2 failed with RaisesWithoutAddNote: first; retrying in 0.5 s
torch.utils.retry: attempt 2 of 2 failed with RaisesWithoutAddNote: second; giving up: no attempts left (2)""",
        )

    def test_existing_notes_are_kept(self):
        err = RaisesWithoutAddNote("x")
        err.__notes__ = ["the user's note"]
        with self.assertRaises(RaisesWithoutAddNote):
            retry(Flaky(err), attempts=1)()
        self.assertEqual(err.__notes__[0], "the user's note")
        self.assertEqual(len(err.__notes__), 2)


def run(coro):
    return asyncio.run(coro)


def AsyncFlaky(*errors):
    """An ``async def`` function failing like :class:`Flaky`; ``.calls`` counts its calls."""
    flaky = Flaky(*errors)

    async def call(*args, **kwargs):
        call.calls += 1
        await asyncio.sleep(0)
        return flaky(*args, **kwargs)

    call.calls = 0
    return call


class TestAsync(TestCase):
    def test_coroutine_function_is_retried(self):
        # @retry on async def used to call once and return the coroutine's result unretried.
        flaky = Flaky(OSError("a"), OSError("b"))

        @retry(attempts=3, sleep=lambda s: None)
        async def fetch(x):
            await asyncio.sleep(0)
            return flaky(x)

        self.assertTrue(inspect.iscoroutinefunction(fetch))
        self.assertEqual(fetch.__name__, "fetch")
        self.assertEqual(run(fetch(1)), "ok")
        self.assertEqual(flaky.calls, 3)

    def test_kind_is_found_through_partial_and_call(self):
        class Client:
            def __init__(self):
                self.calls = 0

            async def __call__(self, x):
                self.calls += 1
                if self.calls == 1:
                    raise ConnectionError
                return x

        client = Client()
        f = retry(client, sleep=lambda s: None)
        self.assertTrue(inspect.iscoroutinefunction(f))
        self.assertEqual(run(f(5)), 5)
        flaky = AsyncFlaky(OSError())
        g = retry(functools.partial(flaky, 1), sleep=lambda s: None)
        self.assertTrue(inspect.iscoroutinefunction(g))
        self.assertEqual(run(g()), "ok")
        self.assertEqual(flaky.calls, 2)

    def test_backoff_lets_other_tasks_run(self):
        events = []

        @retry(attempts=2, delay=0.05)
        async def fetch():
            events.append(f"attempt {len(events)}")
            if len(events) == 1:
                raise ConnectionError
            return "data"

        async def other():
            events.append("other started")
            await asyncio.sleep(0)
            events.append("other ran")

        async def main():
            return await asyncio.gather(fetch(), other())

        self.assertEqual(run(main()), ["data", None])
        # With a blocking sleep the second attempt would come before the other task's steps.
        self.assertEqual(events, ["attempt 0", "other started", "other ran", "attempt 3"])

    def test_default_sleep_is_asyncio_sleep(self):
        slept = []

        async def fake_sleep(seconds):
            slept.append(seconds)

        with mock.patch("asyncio.sleep", fake_sleep):
            f = retry(AsyncFlaky(OSError(), OSError()), attempts=3, delay=1.0, max_delay=1.5)
            self.assertEqual(run(f()), "ok")
        self.assertEqual([s for s in slept if s], [1.0, 1.5])

    def test_injected_sleep_and_on_retry_sync_or_async(self):
        for kind in ("sync", "async"):
            with self.subTest(kind=kind):
                seen = []
                if kind == "sync":

                    def sleep(s):
                        seen.append(("sleep", s))

                    def on_retry(exc, attempt, delay):
                        seen.append(("on_retry", attempt))

                else:

                    async def sleep(s):
                        await asyncio.sleep(0)
                        seen.append(("sleep", s))

                    async def on_retry(exc, attempt, delay):
                        await asyncio.sleep(0)
                        seen.append(("on_retry", attempt))

                f = retry(AsyncFlaky(OSError(), OSError()), attempts=3, delay=0.5, sleep=sleep, on_retry=on_retry)
                self.assertEqual(run(f()), "ok")
                self.assertEqual(seen, [("on_retry", 1), ("sleep", 0.5), ("on_retry", 2), ("sleep", 1.0)])

    def test_gives_up_with_history(self):
        errors = [TimeoutError("a"), TimeoutError("b")]
        f = retry(AsyncFlaky(*errors), attempts=2, exceptions=TimeoutError, sleep=lambda s: None)
        with self.assertRaises(TimeoutError) as cm:
            run(f())
        self.assertIs(cm.exception, errors[1])
        self.assertIs(cm.exception.__context__, errors[0])
        self.assertEqual(len(cm.exception.__notes__), 2)

    def test_other_exceptions_and_cancellation_are_not_retried(self):
        flaky = AsyncFlaky(KeyError(), KeyError())
        with self.assertRaises(KeyError):
            run(retry(flaky, exceptions=OSError, sleep=lambda s: None)())
        self.assertEqual(flaky.calls, 1)
        calls = []

        @retry(attempts=5, sleep=lambda s: None)
        async def hangs():
            calls.append(1)
            await asyncio.sleep(60)

        async def main():
            task = asyncio.ensure_future(hangs())
            await asyncio.sleep(0.01)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        run(main())
        self.assertEqual(calls, [1])

    def test_deadline(self):
        t = FakeTime()
        flaky = AsyncFlaky(*[OSError() for _ in range(10)])
        f = retry(flaky, attempts=10, delay=1.0, deadline=5.0, sleep=t.sleep, clock=t.clock)
        with self.assertRaises(OSError):
            run(f())
        self.assertEqual(t.sleeps, [1.0, 2.0])

    def test_async_for_retry_loop(self):
        slept = []

        async def sleep(s):
            slept.append(s)

        async def main():
            numbers = []
            async for attempt in retry_loop(attempts=4, delay=0.25, sleep=sleep):
                with attempt:
                    numbers.append(attempt.number)
                    await asyncio.sleep(0)
                    if attempt.number < 3:
                        raise OSError("not yet")
            return numbers

        self.assertEqual(run(main()), [1, 2, 3])
        self.assertEqual(slept, [0.25, 0.5])

    def test_async_for_gives_up_and_lets_other_tasks_run(self):
        events = []

        async def block():
            async for attempt in retry_loop(attempts=2, delay=0.05, exceptions=KeyError):
                with attempt:
                    events.append(f"attempt {attempt.number}")
                    raise KeyError(attempt.number)

        async def other():
            events.append("other started")
            await asyncio.sleep(0)
            events.append("other ran")

        async def main():
            return await asyncio.gather(block(), other(), return_exceptions=True)

        err, _ = run(main())
        self.assertIsInstance(err, KeyError)
        self.assertIsInstance(err.__context__, KeyError)
        self.assertEqual(events, ["attempt 1", "other started", "other ran", "attempt 2"])

    def test_sync_for_inside_a_running_loop_warns(self):
        # A plain `for` sleeps with time.sleep and blocks the event loop.
        async def main():
            for attempt in retry_loop(attempts=2, delay=0.001):
                with attempt:
                    if attempt.number == 1:
                        raise OSError

        with self.assertWarnsRegex(RuntimeWarning, "retry_loop\\(\\): time.sleep blocks the running event loop") as cm:
            run(main())
        self.assertIn("use `async for attempt in retry_loop(...)`", str(cm.warning))
        self.assertEqual(cm.filename, __file__)  # points at the `for` statement

        @retry(attempts=2, delay=0.001)
        def sync_fn(calls=[]):  # noqa: B006
            calls.append(1)
            if len(calls) == 1:
                raise OSError

        async def main2():
            sync_fn()

        with self.assertWarnsRegex(RuntimeWarning, "retry\\(\\): time.sleep blocks the running event loop") as cm:
            run(main2())
        self.assertIn("decorate an `async def` function instead", str(cm.warning))
        self.assertEqual(cm.filename, __file__)

        async def main3():
            async for attempt in retry_loop(attempts=2, delay=0.001, sleep=time.sleep):
                with attempt:
                    if attempt.number == 1:
                        raise OSError

        with self.assertWarnsRegex(RuntimeWarning, "sleep=time.sleep blocks the event loop"):
            run(main3())

    def test_no_warning_without_a_running_loop_or_a_real_sleep(self):
        async def main():
            for attempt in retry_loop(attempts=2, sleep=lambda s: None, delay=1.0):
                with attempt:
                    if attempt.number == 1:
                        raise OSError

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            run(main())
            for attempt in retry_loop(attempts=2, delay=0.001):
                with attempt:
                    if attempt.number == 1:
                        raise OSError

    def test_loop_iterates_once(self):
        loop = retry_loop()
        for attempt in loop:
            with attempt:
                pass
        with self.assertRaisesRegex(RuntimeError, "retry_loop\\(\\): this loop was already iterated"):
            iter(loop)

        async def main():
            async for _ in loop:
                pass

        with self.assertRaisesRegex(RuntimeError, "already iterated"):
            run(main())


class TestGenerators(TestCase):
    def make(self, failures, items=(1, 2, 3), fail_after=None, async_=False, **kwargs):
        """A decorated (async) generator function failing ``failures`` times before its first item."""
        runs = []

        def body():
            runs.append(1)
            if len(runs) <= failures:
                raise ConnectionError(f"run {len(runs)}")

        if async_:

            async def gen():
                body()
                for i, item in enumerate(items):
                    if i == fail_after:
                        raise ConnectionError("midway")
                    await asyncio.sleep(0)
                    yield item

        else:

            def gen():
                body()
                for i, item in enumerate(items):
                    if i == fail_after:
                        raise ConnectionError("midway")
                    yield item
                return "done"

        kwargs.setdefault("sleep", lambda s: None)
        return retry(gen, **kwargs), runs

    @staticmethod
    async def collect(agen):
        return [x async for x in agen]

    def test_retried_before_the_first_item(self):
        # @retry used to cover only the creation of the generator.
        g, runs = self.make(2, attempts=3)
        self.assertTrue(inspect.isgeneratorfunction(g))
        self.assertEqual(list(g()), [1, 2, 3])
        self.assertEqual(len(runs), 3)
        ag, aruns = self.make(2, async_=True, attempts=3)
        self.assertTrue(inspect.isasyncgenfunction(ag))
        self.assertEqual(run(self.collect(ag())), [1, 2, 3])
        self.assertEqual(len(aruns), 3)

    def test_gives_up_before_the_first_item(self):
        for async_ in (False, True):
            with self.subTest(async_=async_):
                g, runs = self.make(5, async_=async_, attempts=2)
                with self.assertRaisesRegex(ConnectionError, "run 2") as cm:
                    run(self.collect(g())) if async_ else list(g())
                self.assertEqual(len(runs), 2)
                self.assertEqual(str(cm.exception.__context__), "run 1")
                self.assertIn("giving up: no attempts left (2)", cm.exception.__notes__[-1])

    def test_not_retried_after_an_item(self):
        for async_ in (False, True):
            with self.subTest(async_=async_):
                g, runs = self.make(0, async_=async_, fail_after=2, attempts=5)
                got = []

                async def consume():
                    async for x in g():
                        got.append(x)

                def consume_sync():
                    got.extend(g())

                with self.assertRaisesRegex(ConnectionError, "midway") as cm:
                    run(consume()) if async_ else consume_sync()
                self.assertEqual(got, [1, 2])  # nothing repeated
                self.assertEqual(len(runs), 1)
                self.assertExpectedInline(
                    cm.exception.__notes__[-1],
                    """torch.utils.retry: not retried: the generator had already yielded, so a retry would repeat its items""",  # noqa: B950
                )

    def test_empty_generator_and_return_value(self):
        g, _ = self.make(1, items=())
        self.assertEqual(list(g()), [])
        g, _ = self.make(1)

        def outer():
            return (yield from g())

        it = outer()
        self.assertEqual(list(itertools.islice(it, 3)), [1, 2, 3])
        with self.assertRaises(StopIteration) as cm:
            next(it)
        self.assertEqual(cm.exception.value, "done")

    def test_send_throw_close_reach_the_generator(self):
        log = []

        @retry(attempts=2, sleep=lambda s: None)
        def echo():
            log.append("start")
            if len(log) == 1:
                raise OSError("first start fails")
            try:
                received = yield "ready"
                while True:
                    try:
                        received = yield f"got {received}"
                    except KeyError as e:
                        received = f"caught {e!r}"
            finally:
                log.append("closed")

        g = echo()
        self.assertEqual(next(g), "ready")
        self.assertEqual(g.send("a"), "got a")
        self.assertEqual(g.throw(KeyError("k")), "got caught KeyError('k')")
        with self.assertRaises(ValueError):
            g.throw(ValueError("not caught"))
        self.assertEqual(log, ["start", "start", "closed"])
        g = echo()
        next(g)
        g.close()
        self.assertEqual(log[-2:], ["start", "closed"])

    def test_asend_athrow_aclose_reach_the_generator(self):
        log = []

        @retry(attempts=2, sleep=lambda s: None)
        async def echo():
            log.append("start")
            if len(log) == 1:
                raise OSError("first start fails")
            try:
                received = yield "ready"
                while True:
                    try:
                        received = yield f"got {received}"
                    except KeyError as e:
                        received = f"caught {e!r}"
            finally:
                await asyncio.sleep(0)
                log.append("closed")

        async def main():
            g = echo()
            out = [await g.__anext__(), await g.asend("a"), await g.athrow(KeyError("k"))]
            await g.aclose()
            return out

        self.assertEqual(run(main()), ["ready", "got a", "got caught KeyError('k')"])
        self.assertEqual(log, ["start", "start", "closed"])

    def test_async_generator_sleeps_with_asyncio(self):
        slept = []

        async def fake_sleep(seconds):
            slept.append(seconds)

        with mock.patch("asyncio.sleep", fake_sleep):
            ag, _ = self.make(2, async_=True, attempts=3, delay=0.5, sleep=None)
            self.assertEqual(run(self.collect(ag())), [1, 2, 3])
        self.assertEqual([s for s in slept if s], [0.5, 1.0])


def drive(coro):
    """Run a coroutine that never suspends, without an event loop (which would handle KeyboardInterrupt itself)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended")


class TestStopSignals(TestCase):
    @parametrize(
        "error",
        [KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError],
        name_fn=lambda e: e.__name__,
    )
    def test_never_retried_even_with_base_exception(self, error):
        # Cancellation, interrupt, exit and generator close propagate at once, whatever exceptions= says.
        def forms():
            kw = dict(attempts=5, exceptions=BaseException, sleep=lambda s: None)
            calls = []

            def body():
                calls.append(1)
                raise error()

            def plain():
                body()

            async def coro():
                body()

            def gen():
                body()
                yield

            async def agen():
                body()
                yield

            def loop():
                for attempt in retry_loop(**kw):
                    with attempt:
                        body()

            async def aloop():
                async for attempt in retry_loop(**kw):
                    with attempt:
                        body()

            yield "function", calls, lambda: retry(plain, **kw)()
            yield "coroutine", calls, lambda: drive(retry(coro, **kw)())
            yield "generator", calls, lambda: next(retry(gen, **kw)())
            yield "async_generator", calls, lambda: drive(retry(agen, **kw)().__anext__())
            yield "loop", calls, loop
            yield "async_loop", calls, lambda: drive(aloop())

        seen = []
        with ec.error_callback(lambda exc, info: seen.append(exc)):
            for name, calls, call in forms():
                with self.subTest(form=name):
                    calls.clear()
                    with self.assertRaises(error) as cm:
                        call()
                    self.assertEqual(len(calls), 1)
                    self.assertFalse(getattr(cm.exception, "__notes__", None))
        self.assertEqual(seen, [])

    def test_after_an_item_no_note_on_a_stop_signal(self):
        @retry(exceptions=BaseException, sleep=lambda s: None)
        def gen():
            yield 1
            raise KeyboardInterrupt

        g = gen()
        next(g)
        with self.assertRaises(KeyboardInterrupt) as cm:
            next(g)
        self.assertFalse(getattr(cm.exception, "__notes__", None))

    def test_cancelled_task_stays_cancelled(self):
        # The trial's reproduction: a task retried with exceptions=BaseException ran on after cancel().
        calls = []

        @retry(attempts=1000, exceptions=BaseException, delay=0.001, max_delay=0.01)
        async def slow():
            calls.append(1)
            await asyncio.sleep(10)

        async def main():
            task = asyncio.ensure_future(slow())
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.wait([task], timeout=5)
            return task

        task = run(main())
        self.assertTrue(task.cancelled())
        self.assertEqual(calls, [1])

    def test_cancelled_during_the_backoff_sleep(self):
        # asyncio.sleep's CancelledError during the backoff propagates; it is not counted as a failed attempt.
        calls = []

        @retry(attempts=1000, exceptions=BaseException, delay=10, max_delay=10)
        async def fails():
            calls.append(1)
            raise ConnectionError

        async def loop():
            async for attempt in retry_loop(attempts=1000, exceptions=BaseException, delay=10, max_delay=10):
                with attempt:
                    calls.append(1)
                    raise ConnectionError

        async def main(coro):
            task = asyncio.ensure_future(coro)
            await asyncio.sleep(0.05)
            task.cancel()
            await asyncio.wait([task], timeout=5)
            return task

        for make in (fails, loop):
            with self.subTest(form=make.__name__):
                calls.clear()
                task = run(main(make()))
                self.assertTrue(task.cancelled())
                self.assertEqual(calls, [1])
                with self.assertRaises(asyncio.CancelledError) as cm:
                    task.result()
                self.assertNotIsInstance(cm.exception.__context__, asyncio.CancelledError)

    def test_interrupt_during_the_sleep_or_on_retry_propagates(self):
        def interrupt(*args):
            raise KeyboardInterrupt

        for kwargs in (dict(sleep=interrupt), dict(on_retry=interrupt, sleep=lambda s: None)):
            with self.subTest(hook=next(iter(kwargs))):
                flaky = Flaky(ConnectionError(), ConnectionError())
                with self.assertRaises(KeyboardInterrupt):
                    retry(flaky, exceptions=BaseException, **kwargs)()
                self.assertEqual(flaky.calls, 1)


class TestComposability(TestCase):
    @parametrize("backend", ["eager", "aot_eager"])
    def test_compile_decorated_function(self, backend):
        calls = []

        @retry(attempts=3, exceptions=ValueError, sleep=lambda s: None)
        def f(x):
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("first call")
            return torch.sin(x) * 2

        x = torch.randn(4)
        torch._dynamo.reset()
        seen = []
        with ec.error_callback(lambda exc, info: seen.append(info["attempt"])):
            self.assertEqual(torch.compile(f, backend=backend)(x), torch.sin(x) * 2)
        self.assertEqual(len(calls), 2)
        self.assertEqual(seen, [1])

    @parametrize("backend", ["eager", "aot_eager"])
    def test_success_path_traces_in_one_graph(self, backend):
        @retry(attempts=3, exceptions=OSError, delay=0.1)
        def f(x):
            return torch.sin(x) + 1

        def g(x):
            for attempt in retry_loop(attempts=2, exceptions=OSError):
                with attempt:
                    return x.cos() * 2
            raise AssertionError("unreachable")

        x = torch.randn(4)
        for fn, expected in ((f, torch.sin(x) + 1), (g, x.cos() * 2)):
            torch._dynamo.reset()
            counter = CompileCounterWithBackend(backend)
            self.assertEqual(torch.compile(fn, backend=counter, fullgraph=True)(x), expected)
            self.assertEqual(counter.frame_count, 1)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_retry_around_compiled_function(self, backend):
        g = torch.compile(lambda x: x.cos() + 1, backend=backend)
        torch._dynamo.reset()
        x = torch.randn(3)
        self.assertEqual(retry(g, attempts=2)(x), x.cos() + 1)
        for attempt in retry_loop(attempts=2):
            with attempt:
                y = g(x)
        self.assertEqual(y, x.cos() + 1)

    def test_spawn_runs_decorated_function(self):
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            self.assertEqual(pool.map_async(flaky_once, [3], chunksize=1).get(timeout=240), [6])


instantiate_parametrized_tests(TestArguments)
instantiate_parametrized_tests(TestComposability)
instantiate_parametrized_tests(TestStopSignals)

if __name__ == "__main__":
    run_tests()
