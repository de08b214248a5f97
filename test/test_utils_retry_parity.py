# Owner(s): ["module: tests"]
"""The behaviours tenacity's test suite pins down, restated for torch.utils.retry.

Each test names the tenacity feature it mirrors (retry_if_exception,
retry_if_result, stop_after_attempt, stop_before_delay, wait_fixed,
wait_exponential, wait_random_exponential, wait_exponential_jitter,
statistics, reraise, Retrying / AsyncRetrying) and checks the same semantic
case with our API, in all four forms (``@retry`` and ``retry_loop``, sync and
async).  Where we differ on purpose the test says so: a result predicate that
never accepts returns the last result (tenacity raises ``RetryError``), and the
final error is the last attempt's own (tenacity's ``reraise=True``).
"""

import random

from hypothesis import given, settings, strategies as st

from test_utils_retry_features import call_form, failing, FakeTime, FORMS, returning

from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils.retry import retry


class TestRetryConditionParity(TestCase):
    @parametrize("form", FORMS)
    def test_retry_if_exception_predicate(self, form):
        # tenacity: retry=retry_if_exception(pred) retries only errors pred accepts.
        _, err, _, calls = call_form(
            form, failing(OSError("transient"), OSError("fatal")), attempts=5,
            retry_if=lambda e: "transient" in str(e), sleep=lambda s: None,
        )
        self.assertEqual((str(err), calls), ("fatal", 2))

    @parametrize("form", FORMS)
    def test_retry_if_exception_type_and_its_negation(self, form):
        # tenacity: retry_if_exception_type(OSError) / retry_if_not_exception_type(ValueError).
        _, err, _, calls = call_form(form, failing(OSError(), NameError()), exceptions=IOError, sleep=lambda s: None)
        self.assertIsInstance(err, NameError)
        self.assertEqual(calls, 2)
        _, err, _, calls = call_form(
            form, failing(OSError(), KeyError(), ValueError()), attempts=5,
            retry_if=lambda e: not isinstance(e, ValueError), sleep=lambda s: None,
        )
        self.assertIsInstance(err, ValueError)
        self.assertEqual(calls, 3)

    @parametrize("form", FORMS)
    def test_retry_if_exception_message(self, form):
        # tenacity: retry_if_exception_message(match=...).
        _, err, _, calls = call_form(
            form, failing(OSError("code 503"), OSError("code 503"), OSError("code 404")), attempts=5,
            retry_if=lambda e: str(e).endswith("503"), sleep=lambda s: None,
        )
        self.assertEqual((str(err), calls), ("code 404", 3))

    @parametrize("form", FORMS)
    def test_retry_if_result(self, form):
        # tenacity: retry=retry_if_result(lambda r: r is None) until a value comes.
        result, err, _, calls = call_form(
            form, returning(None, None, 42), attempts=5, retry_on_result=lambda r: r is None, sleep=lambda s: None
        )
        self.assertEqual((result, err, calls), (42, None, 3))

    @parametrize("form", FORMS)
    def test_retry_if_result_exhausted_returns_the_last(self, form):
        # tenacity raises RetryError here; we return the last result (backoff's on_predicate does too).
        result, err, stats, calls = call_form(
            form, returning(None), attempts=3, retry_on_result=lambda r: r is None, sleep=lambda s: None
        )
        self.assertEqual((result, err, calls, stats.attempts), (None, None, 3, 3))

    @parametrize("form", FORMS)
    def test_base_exceptions_are_not_retried(self, form):
        # tenacity does not retry KeyboardInterrupt by default; we never retry it, even when listed.
        seen = []
        try:
            call_form(form, failing(KeyboardInterrupt()), exceptions=BaseException, retry_if=seen.append)
        except KeyboardInterrupt:
            pass
        else:
            self.fail("KeyboardInterrupt was swallowed")
        self.assertEqual(seen, [])


class TestStopParity(TestCase):
    @parametrize("form", FORMS)
    def test_stop_after_attempt(self, form):
        # tenacity: stop_after_attempt(3) makes exactly 3 attempts and raises the last error (reraise=True).
        errors = [OSError(str(i)) for i in range(5)]
        _, err, _, calls = call_form(form, failing(*errors), attempts=3, sleep=lambda s: None)
        self.assertIs(err, errors[2])
        self.assertEqual(calls, 3)

    @parametrize("form", FORMS)
    def test_stop_before_delay(self, form):
        # tenacity: stop_before_delay(10) stops when the next attempt would start past 10 s.
        t = FakeTime()
        _, err, _, calls = call_form(
            form, failing(*[OSError() for _ in range(10)]), attempts=10, delay=3.0, backoff=1.0, deadline=10.0,
            sleep=t.sleep, clock=t.clock,
        )
        self.assertIsInstance(err, OSError)
        self.assertEqual((calls, t.sleeps), (4, [3.0, 3.0, 3.0]))


class TestWaitParity(TestCase):
    @parametrize("form", FORMS)
    def test_wait_fixed(self, form):
        t = FakeTime()
        call_form(form, failing(OSError(), OSError()), delay=2.0, backoff=1.0, sleep=t.sleep)
        self.assertEqual(t.sleeps, [2.0, 2.0])

    @parametrize("form", FORMS)
    def test_wait_exponential_with_max(self, form):
        # tenacity: wait_exponential(multiplier=1, max=10) waits 1, 2, 4, 8, 10, 10.
        t = FakeTime()
        call_form(form, failing(*[OSError() for _ in range(6)]), attempts=7, delay=1.0, max_delay=10.0, sleep=t.sleep)
        self.assertEqual(t.sleeps, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0])

    @settings(max_examples=25, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), delay=st.floats(0.01, 5.0), max_delay=st.floats(0.01, 20.0))
    def test_wait_random_exponential_bounds(self, seed, delay, max_delay):
        # tenacity: wait_random_exponential(multiplier, max) draws in [0, min(multiplier * 2**n, max)].
        t = FakeTime()
        flaky = failing(*[OSError() for _ in range(6)])
        n = [0]

        def f():
            n[0] += 1
            return flaky(n[0])

        retry(f, attempts=7, delay=delay, max_delay=max_delay, jitter="full", sleep=t.sleep, rng=random.Random(seed))()
        self.assertEqual(len(t.sleeps), 6)
        for k, slept in enumerate(t.sleeps):
            self.assertTrue(0.0 <= slept <= min(delay * 2.0**k, max_delay), (k, slept))

    @settings(max_examples=25, deadline=None)
    @given(seed=st.integers(0, 2**32 - 1), jitter=st.floats(0.0, 3.0))
    def test_wait_exponential_jitter_bounds(self, seed, jitter):
        # tenacity: wait_exponential_jitter(initial=1, jitter=j) waits 2**n + U(0, j), capped by max.
        t = FakeTime()
        flaky = failing(*[OSError() for _ in range(4)])
        n = [0]

        def f():
            n[0] += 1
            return flaky(n[0])

        retry(f, attempts=5, delay=1.0, jitter=jitter, max_delay=6.0, sleep=t.sleep, rng=random.Random(seed))()
        for k, slept in enumerate(t.sleeps):
            self.assertTrue(min(2.0**k, 6.0) <= slept <= min(2.0**k + jitter, 6.0), (k, slept))

    @parametrize("form", FORMS)
    def test_custom_wait_from_the_outcome(self, form):
        # tenacity: a wait callable reading retry_state.outcome.exception(); ours: wait_from.
        t = FakeTime()
        call_form(form, failing(OSError(4), OSError(9)), wait_from=lambda e: e.args[0] / 2, sleep=t.sleep)
        self.assertEqual(t.sleeps, [2.0, 4.5])


class TestStatisticsParity(TestCase):
    @parametrize("form", FORMS)
    def test_attempt_number_and_idle_for(self, form):
        # tenacity: statistics["attempt_number"], ["idle_for"], ["start_time"].
        t = FakeTime()
        _, _, stats, _ = call_form(form, failing(OSError(), OSError()), delay=1.0, sleep=t.sleep, clock=t.clock)
        self.assertEqual((stats.attempts, stats.slept, stats.start), (3, 3.0, 100.0))

    def test_statistics_reset_per_call(self):
        # tenacity: a new call starts its statistics afresh.
        flaky = failing(OSError())
        n = [0]

        def f():
            n[0] += 1
            return flaky(n[0])

        w = retry(f, sleep=lambda s: None)
        w()
        self.assertEqual(w.statistics.attempts, 2)
        w()
        self.assertEqual(w.statistics.attempts, 1)

    @parametrize("form", FORMS)
    def test_before_sleep_hook(self, form):
        # tenacity: before_sleep(retry_state) sees the failed attempt's number and the upcoming sleep.
        seen = []
        call_form(
            form, failing(OSError("a"), OSError("b")), delay=0.5,
            on_retry=lambda exc, n, d: seen.append((str(exc), n, d)), sleep=lambda s: None,
        )
        self.assertEqual(seen, [("a", 1, 0.5), ("b", 2, 1.0)])


instantiate_parametrized_tests(TestRetryConditionParity)
instantiate_parametrized_tests(TestStopParity)
instantiate_parametrized_tests(TestWaitParity)
instantiate_parametrized_tests(TestStatisticsParity)


if __name__ == "__main__":
    run_tests()
