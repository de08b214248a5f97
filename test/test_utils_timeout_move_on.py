# Owner(s): ["module: utils"]
"""torch.utils.timeout.move_on / move_on_at: blocks left silently at their deadline (trio's move_on_after)."""

import asyncio
import inspect
import math
import signal
import sys
import threading
import time
import unittest
from unittest import mock

import torch.utils._timeout_task as task_module
import torch.utils.error_callback as ec
import torch.utils.timeout as timeout_module
from torch.testing._internal.common_utils import instantiate_parametrized_tests, parametrize, run_tests, TestCase
from torch.utils.timeout import move_on, move_on_at, timeout

# The helpers of the main timeout tests (test/ is on sys.path under pytest and when run as a script).
from test_utils_timeout import busy, LONG, run_in, spin
from test_utils_timeout_task import each_loop_and_counting, run


HAS_CANCELLING = sys.version_info >= (3, 11)


def counting_mode(counting):
    # "message" is the Python 3.10 way of recognizing the block's own cancellation.
    return mock.patch.object(task_module, "_HAS_UNCANCEL", counting == "uncancel" and HAS_CANCELLING)


def where_test(test):
    return parametrize("where", ["main", "worker"])(test)


class TestMoveOn(TestCase):
    @where_test
    def test_leaves_the_block_silently(self, where):
        def body():
            after = []
            with move_on(0.02) as scope:
                spin()
                after.append("body went on")
            after.append("code after the block runs")
            return scope.expired(), after

        self.assertEqual(run_in(where, body), (True, ["code after the block runs"]))

    @where_test
    def test_move_on_at_leaves_the_block_silently(self, where):
        def body():
            with move_on_at(time.monotonic() + 0.02) as scope:
                spin()
            return scope.expired()

        self.assertTrue(run_in(where, body))

    @where_test
    def test_block_that_finishes_in_time(self, where):
        def body():
            with move_on(LONG) as scope:
                total = busy(100)
                left = scope.remaining()
            return total, 0 < left <= LONG, scope.expired()

        self.assertEqual(run_in(where, body), (4950, True, False))

    @parametrize("limit", [None, math.inf], name_fn=lambda v: str(v))
    def test_no_limit(self, limit):
        with move_on(limit) as scope:
            busy(1000)
        self.assertFalse(scope.expired())
        self.assertEqual(scope.when(), limit)  # None, or math.inf (far in the future)
        with move_on_at(limit) as scope:
            busy(1000)
        self.assertFalse(scope.expired())

    @where_test
    def test_deadline_already_passed(self, where):
        # trio: move_on_at(now) cancels the first checkpoint of its block; here the first bytecodes.
        def body():
            with move_on_at(time.monotonic() - 1.0) as spinning:
                spin()
            with move_on(0) as empty:
                pass
            return spinning.expired(), empty.expired()

        self.assertEqual(run_in(where, body), (True, True))

    def test_deadline_counts_from_entering_the_block(self):
        scope = move_on(LONG)
        self.assertIsNone(scope.when())
        self.assertEqual(scope.remaining(), LONG)
        spin(0.05)
        start = time.monotonic()
        with scope:
            self.assertGreaterEqual(scope.when(), start + LONG)

    @where_test
    def test_except_exception_in_the_body_does_not_swallow_it(self, where):
        def body():
            caught = []
            with move_on(0.02) as scope:
                try:
                    spin()
                except Exception:
                    caught.append("swallowed")
            return scope.expired(), caught

        self.assertEqual(run_in(where, body), (True, []))

    @where_test
    def test_interrupt_swallowed_by_the_body_comes_again(self, where):
        # Like a trio cancel scope, the deadline holds until the block is left.
        def body():
            with move_on(0.02) as scope:
                try:
                    spin()
                except BaseException:  # noqa: B036 - what the test is about
                    pass
                spin()
            return scope.expired()

        self.assertTrue(run_in(where, body))

    def test_body_exception_propagates_unchanged(self):
        with self.assertRaisesRegex(KeyError, "mine"):
            with move_on(LONG) as scope:
                raise KeyError("mine")
        self.assertFalse(scope.expired())

    @where_test
    def test_exception_raised_at_the_deadline_propagates(self, where):
        # Cleanup that fails while the block is being left: the failure is not swallowed.
        def body():
            try:
                with move_on(0.02) as scope:
                    try:
                        spin()
                    finally:
                        raise ZeroDivisionError("cleanup failed")
            except ZeroDivisionError as e:
                return scope.expired(), str(e)
            return "swallowed"

        self.assertEqual(run_in(where, body), (True, "cleanup failed"))

    def test_not_reported_to_error_callback(self):
        seen = []
        with ec.error_callback(lambda exc, info: seen.append(exc)):
            with move_on(0.02) as scope:
                spin()
        self.assertTrue(scope.expired())
        self.assertEqual(seen, [])

    def test_repr(self):
        self.assertExpectedInline(repr(move_on(1.5)), """<Timeout [created] move_on, its time limit of 1.5 s>""")
        self.assertExpectedInline(
            repr(move_on_at(12.0)), """<Timeout [created] move_on, its deadline (time.monotonic() = 12.000)>"""
        )
        with move_on(0.02) as scope:
            spin()
        self.assertExpectedInline(repr(scope), """<Timeout [expired] move_on, its time limit of 0.02 s>""")

    def test_public_api(self):
        for fn in (move_on, move_on_at):
            self.assertIn(fn.__name__, timeout_module.__all__)
            self.assertEqual(fn.__module__, "torch.utils.timeout")
            self.assertIsInstance(fn(1.0), timeout_module.Timeout)

    def test_enter_once(self):
        scope = move_on(LONG)
        with scope:
            pass
        with self.assertRaisesRegex(RuntimeError, "can be entered once; this one is finished"):
            with scope:
                pass


class TestArguments(TestCase):
    # The same validation as timeout()/timeout_at(), naming move_on()/move_on_at().
    @parametrize(
        "bad",
        [-1, math.nan, -math.inf, 1e300, 10**400],
        name_fn=lambda b: {-1: "neg1", 1e300: "1e300", 10**400: "huge_int"}.get(b, str(b).replace("-", "neg")),
    )
    def test_bad_seconds_value(self, bad):
        with self.assertRaisesRegex(ValueError, r"^move_on\(\): seconds must be"):
            move_on(bad)

    @parametrize("bad", ["1", b"1", [1], True], name_fn=lambda b: type(b).__name__)
    def test_bad_seconds_type(self, bad):
        with self.assertRaisesRegex(TypeError, r"^move_on\(\): seconds must be a non-negative number of seconds or None"):
            move_on(bad)

    def test_bad_deadline(self):
        with self.assertRaisesRegex(ValueError, r"^move_on_at\(\): deadline must be a monotonic time or None, but got nan"):
            move_on_at(math.nan)
        with self.assertRaisesRegex(TypeError, r"^move_on_at\(\): deadline must be a monotonic time or None"):
            move_on_at("soon")
        with self.assertRaisesRegex(ValueError, r"^move_on_at\(\): deadline must be a monotonic time at most"):
            move_on_at(time.monotonic() + 1e300)

    def test_messages(self):
        with self.assertRaises(ValueError) as cm:
            move_on(-1)
        self.assertExpectedInline(str(cm.exception), """move_on(): seconds must be a non-negative number of seconds or None, but got -1.0""")  # noqa: B950

    def test_decorating_is_refused(self):
        # A call cut short would return None as if it had finished: refused for every kind of function.
        def plain():
            pass

        async def coro():
            pass

        def gen():
            yield

        for fn in (plain, coro, gen):
            with self.assertRaisesRegex(TypeError, r"^move_on\(\) cannot decorate .*, or decorate with @timeout"):
                move_on(1.0)(fn)
        with self.assertRaises(TypeError) as cm:
            move_on_at(time.monotonic() + 1)(plain)
        self.assertExpectedInline(str(cm.exception), """move_on() cannot decorate 'TestArguments.test_decorating_is_refused.<locals>.plain': at the deadline the call would return None as if it had finished.  Put ``with move_on(...)`` inside the function, or decorate with @timeout(...), which raises TimeoutError""")  # noqa: B950


class TestNesting(TestCase):
    @where_test
    def test_inner_move_on_expires_outer_timeout_untouched(self, where):
        def body():
            with timeout(LONG) as outer:
                with move_on(0.02) as inner:
                    spin()
                busy(100)
            return inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (True, False))

    @where_test
    def test_outer_timeout_goes_through_inner_move_on(self, where):
        # The interrupt is the outer block's: the inner move_on does not swallow it.
        def body():
            reached = []
            try:
                with timeout(0.02) as outer:
                    with move_on(LONG) as inner:
                        spin()
                    reached.append("after the inner block")
            except TimeoutError:
                return inner.expired(), outer.expired(), reached
            return "not raised"

        self.assertEqual(run_in(where, body), (False, True, []))

    @where_test
    def test_outer_move_on_goes_through_inner_timeout(self, where):
        def body():
            with move_on(0.02) as outer:
                with timeout(LONG) as inner:
                    spin()
            return inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (False, True))

    @where_test
    def test_both_expire_together_the_outermost_owns_it(self, where):
        # trio: with both scopes cancelled, Cancelled goes through the inner one
        # (cancelled_caught False) and the outer one catches it.
        def body():
            deadline = time.monotonic() + 0.02
            reached = []
            with move_on_at(deadline) as outer:
                with move_on_at(deadline) as inner:
                    spin()
                reached.append("between")
            return inner.expired(), outer.expired(), reached

        self.assertEqual(run_in(where, body), (False, True, []))

    @where_test
    def test_inner_expires_first_then_outer(self, where):
        def body():
            reached = []
            with move_on(0.2) as outer:
                with move_on(0.02) as inner:
                    spin()
                reached.append("between")
                spin()
            return inner.expired(), outer.expired(), reached

        self.assertEqual(run_in(where, body), (True, True, ["between"]))

    @where_test
    def test_caught_inner_timeouts_then_outer_move_on(self, where):
        def body():
            with move_on(0.2) as outer:
                for _ in range(3):
                    try:
                        with timeout(0.01):
                            spin()
                    except TimeoutError:
                        pass
                spin()
            return outer.expired()

        self.assertTrue(run_in(where, body))

    @where_test
    def test_move_on_in_the_cleanup_of_an_expired_block(self, where):
        # A block entered on the interrupt's way out has a deadline of its own (it was
        # never interrupted: the cleanup spun forever).
        def body():
            steps = []
            with move_on(0.02) as outer:
                try:
                    spin()
                finally:
                    with move_on(0.02) as cleanup:
                        spin()
                    steps.append("cleanup bounded")
            return cleanup.expired(), outer.expired(), steps

        self.assertEqual(run_in(where, body), (True, True, ["cleanup bounded"]))


class TestReschedule(TestCase):
    # Timeout.reschedule()/when() on move_on scopes, as on asyncio.Timeout.
    @where_test
    def test_earlier(self, where):
        def body():
            with move_on(LONG) as scope:
                new = time.monotonic() + 0.02
                scope.reschedule(new)
                same = scope.when() == new
                spin()
            return same, scope.expired()

        self.assertEqual(run_in(where, body), (True, True))

    @where_test
    def test_later_and_to_none(self, where):
        def body():
            with move_on(0.05) as later:
                later.reschedule(time.monotonic() + LONG)
                spin(0.15)
            with move_on(0.05) as never:
                never.reschedule(None)
                when = never.when()
                spin(0.15)
            return later.expired(), never.expired(), when

        self.assertEqual(run_in(where, body), (False, False, None))

    def test_only_an_active_block(self):
        scope = move_on(LONG)
        with self.assertRaisesRegex(RuntimeError, "cannot reschedule a timeout that is created"):
            scope.reschedule(time.monotonic() + 1)
        with scope:
            pass
        with self.assertRaisesRegex(RuntimeError, "cannot reschedule a timeout that is finished"):
            scope.reschedule(time.monotonic() + 1)
        with move_on(0.02) as expired:
            spin()
        with self.assertRaisesRegex(RuntimeError, "cannot reschedule a timeout that is expired"):
            expired.reschedule(None)

    @unittest.skipUnless(hasattr(signal, "setitimer"), "the main thread's blocks use SIGALRM's timer")
    def test_reschedule_racing_the_exit_from_another_thread_leaves_no_timer(self):
        # A thread that keeps moving the deadline while the block exits in the main thread: its last
        # re-arm must not land after the exit disarmed the timer (SIGALRM's default action, restored by
        # the exit, would kill the process later).  Before the fix a third of such blocks left it armed.
        armed = []
        for _ in range(40):
            scope = timeout(LONG)

            def keep_alive(scope=scope):
                while True:
                    try:
                        scope.reschedule(time.monotonic() + LONG)
                    except RuntimeError:
                        return

            with scope:
                helper = threading.Thread(target=keep_alive)
                helper.start()
                time.sleep(0.002)
            helper.join()
            remaining = signal.setitimer(signal.ITIMER_REAL, 0)[0]  # disarm, in case, before asserting
            armed.append(remaining > 0)
        self.assertFalse(any(armed), f"{sum(armed)} of 40 blocks left the timer armed")

    def test_when_after_the_block_keeps_the_last_deadline(self):
        with move_on(LONG) as scope:
            new = time.monotonic() + 2 * LONG
            scope.reschedule(new)
        self.assertEqual(scope.when(), new)


class TestGenerators(TestCase):
    @where_test
    def test_block_spanning_a_yield_never_reaches_the_consumer(self, where):
        def gen():
            with move_on(0.05) as scope:
                yield scope
                spin()
            yield "after the block"

        def consumer():
            g = gen()
            scope = next(g)
            spin(0.3)  # the deadline passes while the generator is suspended
            before = scope.expired()
            return before, next(g), scope.expired()

        self.assertEqual(run_in(where, consumer), (False, "after the block", True))


class TestInATask(TestCase):
    # Inside an asyncio task: the deadline cancels only the current task; the block
    # takes back its own cancellation and the task goes on, uncancelled.
    @each_loop_and_counting
    def test_async_with(self, where, counting):
        async def main():
            async with move_on(0.05) as scope:
                await asyncio.sleep(LONG)
            await asyncio.sleep(0)  # no cancellation left pending
            # Python 3.11+ counts cancellations; the block took back its own (uncancel()).
            cancelling = asyncio.current_task().cancelling() if HAS_CANCELLING and counting == "uncancel" else 0
            return scope.expired(), cancelling

        with counting_mode(counting):
            self.assertEqual(run(where, main), (True, 0))

    @each_loop_and_counting
    def test_sync_with_in_a_coroutine(self, where, counting):
        async def main():
            with move_on_at(time.monotonic() + 0.05) as scope:
                await asyncio.sleep(LONG)
            await asyncio.sleep(0)
            return scope.expired()

        with counting_mode(counting):
            self.assertTrue(run(where, main))

    @each_loop_and_counting
    def test_other_tasks_untouched(self, where, counting):
        async def other():
            await asyncio.sleep(0.2)
            return "other done"

        async def main():
            task = asyncio.create_task(other())
            async with move_on(0.02) as scope:
                await asyncio.sleep(LONG)
            return scope.expired(), await task

        with counting_mode(counting):
            self.assertEqual(run(where, main), (True, "other done"))

    @each_loop_and_counting
    def test_cancel_from_outside_is_not_swallowed(self, where, counting):
        async def main():
            async def body():
                async with move_on(LONG) as scope:
                    await asyncio.sleep(LONG)
                return scope

            task = asyncio.create_task(body())
            await asyncio.sleep(0.01)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return "cancelled"
            return "swallowed"

        with counting_mode(counting):
            self.assertEqual(run(where, main), "cancelled")

    @each_loop_and_counting
    def test_outer_timeout_goes_through_inner_move_on(self, where, counting):
        async def main():
            try:
                async with timeout(0.05) as outer:
                    async with move_on(LONG) as inner:
                        await asyncio.sleep(LONG)
                    return "inner swallowed it"
            except TimeoutError:
                return inner.expired(), outer.expired()

        with counting_mode(counting):
            self.assertEqual(run(where, main), (False, True))

    @each_loop_and_counting
    def test_inner_move_on_outer_timeout_untouched(self, where, counting):
        async def main():
            async with timeout(LONG) as outer:
                async with move_on(0.02) as inner:
                    await asyncio.sleep(LONG)
                await asyncio.sleep(0.01)
            return inner.expired(), outer.expired()

        with counting_mode(counting):
            self.assertEqual(run(where, main), (True, False))

    @each_loop_and_counting
    def test_reschedule(self, where, counting):
        async def main():
            async with move_on(LONG) as earlier:
                earlier.reschedule(time.monotonic() + 0.02)
                await asyncio.sleep(LONG)
            async with move_on(0.02) as never:
                never.reschedule(None)
                await asyncio.sleep(0.1)
            return earlier.expired(), never.expired(), never.when()

        with counting_mode(counting):
            self.assertEqual(run(where, main), (True, False, None))

    @each_loop_and_counting
    def test_async_generator_block_spanning_a_yield(self, where, counting):
        async def agen():
            async with move_on(0.05) as scope:
                yield scope
                await asyncio.sleep(LONG)
            yield "after the block"

        async def main():
            g = agen()
            scope = await g.__anext__()
            await asyncio.sleep(0.3)  # the deadline passes while the generator is suspended
            return await g.__anext__(), scope.expired()

        with counting_mode(counting):
            self.assertEqual(run(where, main), ("after the block", True))

    def test_coroutine_functions_are_not_decorated(self):
        async def coro():
            pass

        self.assertTrue(inspect.iscoroutinefunction(timeout(1.0)(coro)))
        with self.assertRaises(TypeError):
            move_on(1.0)(coro)


instantiate_parametrized_tests(TestMoveOn)
instantiate_parametrized_tests(TestArguments)
instantiate_parametrized_tests(TestNesting)
instantiate_parametrized_tests(TestReschedule)
instantiate_parametrized_tests(TestGenerators)
instantiate_parametrized_tests(TestInATask)

if __name__ == "__main__":
    run_tests()
