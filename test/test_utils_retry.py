# Owner(s): ["module: tests"]

import math
import multiprocessing
import pickle
import random

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
        self.assertEqual(sorted(retry_module.__all__), ["Attempt", "retry", "retry_loop"])
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
        cases = [
            (dict(attempts=0), ValueError, f"{name}(): attempts must be an int >= 1, but got 0"),
            (dict(attempts=2.0), ValueError, f"{name}(): attempts must be an int >= 1, but got 2.0"),
            (dict(attempts=True), ValueError, f"{name}(): attempts must be an int >= 1, but got True"),
            (dict(exceptions=()), TypeError, f"{name}(): exceptions must be an exception class or a non-empty tuple of them, but got ()"),  # noqa: B950
            (dict(exceptions=int), TypeError, f"{name}(): exceptions must be an exception class or a non-empty tuple of them, but got <class 'int'>"),  # noqa: B950
            (dict(exceptions=ValueError("x")), TypeError, f"{name}(): exceptions must be an exception class or a non-empty tuple of them, but got ValueError('x')"),  # noqa: B950
            (dict(delay=-1), ValueError, f"{name}(): delay must be a non-negative number of seconds, but got -1"),
            (dict(delay=math.nan), ValueError, f"{name}(): delay must be a non-negative number of seconds, but got nan"),
            (dict(delay="1s"), TypeError, f"{name}(): delay must be a number of seconds, but got '1s'"),
            (dict(max_delay=-0.5), ValueError, f"{name}(): max_delay must be a non-negative number of seconds, but got -0.5"),
            (dict(jitter=-1), ValueError, f"{name}(): jitter must be a non-negative number of seconds, but got -1"),
            (dict(deadline=-1), ValueError, f"{name}(): deadline must be a non-negative number of seconds, but got -1"),
            (dict(backoff=0.5), ValueError, f"{name}(): backoff must be a finite number >= 1, but got 0.5"),
            (dict(backoff=math.inf), ValueError, f"{name}(): backoff must be a finite number >= 1, but got inf"),
            (dict(on_retry=3), TypeError, f"{name}(): on_retry must be callable, but got 3"),
            (dict(sleep=None), TypeError, f"{name}(): sleep must be callable, but got None"),
            (dict(clock="now"), TypeError, f"{name}(): clock must be callable, but got 'now'"),
            (dict(rng=0), TypeError, f"{name}(): rng must be a random.Random instance, but got 0"),
        ]
        for kwargs, error, message in cases:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(error) as cm:
                    fn(**kwargs)
                self.assertEqual(str(cm.exception), message)

    def test_errors_at_decoration_time(self):
        with self.assertRaises(ValueError):

            @retry(attempts=0)
            def f():
                pass

        with self.assertRaisesRegex(TypeError, "retry\\(\\): expected a callable to wrap, but got 3"):
            retry(3)


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
            self.assertEqual(pool.map(flaky_once, [3], chunksize=1), [6])


instantiate_parametrized_tests(TestArguments)
instantiate_parametrized_tests(TestComposability)

if __name__ == "__main__":
    run_tests()
