# Owner(s): ["module: utils"]
"""torch.utils.timeout against its peers' own test suites, case by case, in our words.

The semantic cases of CPython's ``Lib/test/test_asyncio/test_timeouts.py`` (for
:func:`asyncio.timeout`) and of trio's ``_tests/test_timeouts.py`` and cancel-scope
tests (``_core/_tests/test_run.py``), where they apply: in a coroutine (the block
cancels its task, as asyncio does) and in a plain block of the main thread or a
worker thread (the block is interrupted).  Where we differ on purpose, the test
says so.
"""

import asyncio
import math
import time

from torch.testing._internal.common_utils import instantiate_parametrized_tests, parametrize, run_tests, TestCase
from torch.utils.timeout import move_on, move_on_at, timeout, timeout_at

# The helpers of the main timeout tests (test/ is on sys.path under pytest and when run as a script).
from test_utils_timeout import busy, LONG, run_in, spin
from test_utils_timeout_task import run


def in_each_loop(test):
    return parametrize("where", ["main", "worker"])(test)


in_each_thread = in_each_loop


class TestAsyncioTimeoutsInATask(TestCase):
    # test_asyncio/test_timeouts.py, in a coroutine.
    @in_each_loop
    def test_basic(self, where):
        async def main():
            try:
                async with timeout(0.01) as cm:
                    await asyncio.sleep(LONG)
            except TimeoutError:
                return cm.expired()

        self.assertIs(run(where, main), True)

    @in_each_loop
    def test_timeout_at_keeps_its_deadline(self, where):
        async def main():
            deadline = time.monotonic() + 0.01
            try:
                async with timeout_at(deadline) as cm:
                    await asyncio.sleep(LONG)
            except TimeoutError:
                return cm.expired(), cm.when() == deadline

        self.assertEqual(run(where, main), (True, True))

    @in_each_loop
    def test_same_deadline_only_the_outermost_raises(self, where):
        async def main():
            deadline = time.monotonic() + 0.01
            seen = []
            try:
                async with timeout_at(deadline) as outer:
                    try:
                        async with timeout_at(deadline) as inner:
                            await asyncio.sleep(LONG)
                    except asyncio.CancelledError:
                        seen.append("inner let the cancellation through")
                        raise
            except TimeoutError:
                seen.append("outer raised")
            # As in asyncio, both deadlines passed: both say so.
            return seen, inner.expired(), outer.expired()

        self.assertEqual(
            run(where, main), (["inner let the cancellation through", "outer raised"], True, True)
        )

    @in_each_loop
    def test_the_awaited_call_sees_the_cancellation(self, where):
        async def main():
            seen = []
            try:
                async with timeout(0.01):
                    try:
                        await asyncio.sleep(LONG)
                    except asyncio.CancelledError:
                        seen.append("cancelled")
                        raise
            except TimeoutError:
                seen.append("timeout")
            return seen

        self.assertEqual(run(where, main), ["cancelled", "timeout"])

    @in_each_loop
    def test_not_expired(self, where):
        async def main():
            async with timeout(LONG) as cm:
                await asyncio.sleep(0.01)
            return cm.expired(), cm.when() > time.monotonic()

        self.assertEqual(run(where, main), (False, True))

    @in_each_loop
    def test_disabled(self, where):
        async def main():
            async with timeout(None) as a:
                await asyncio.sleep(0.01)
            async with timeout_at(None) as b:
                await asyncio.sleep(0.01)
            return a.expired(), a.when(), b.expired(), b.when()

        self.assertEqual(run(where, main), (False, None, False, None))

    @parametrize("pause", [LONG, 0], name_fn=lambda p: "sleep_zero" if p == 0 else "sleep_long")
    def test_zero(self, pause):
        # Even ``await asyncio.sleep(0)`` is cancelled: the deadline comes before the task's next step.
        async def main():
            t0 = time.monotonic()
            try:
                async with timeout(0) as cm:
                    await asyncio.sleep(pause)
            except TimeoutError:
                return cm.expired(), t0 <= cm.when() <= time.monotonic()

        self.assertEqual(run("main", main), (True, True))

    def test_deadline_in_the_past(self):
        # asyncio takes timeout(-11); we refuse a negative duration (as trio does): the
        # deadline in the past is timeout_at's.
        async def main():
            try:
                async with timeout_at(time.monotonic() - 11) as cm:
                    await asyncio.sleep(0)
            except TimeoutError:
                return cm.expired()

        self.assertIs(run("main", main), True)
        with self.assertRaisesRegex(ValueError, "non-negative"):
            timeout(-11)

    def test_foreign_exception_passes(self):
        async def main():
            try:
                async with timeout(0.01) as cm:
                    raise KeyError("mine")
            except KeyError:
                return cm.expired()

        self.assertIs(run("main", main), False)

    @in_each_loop
    def test_foreign_exception_at_the_deadline(self, where):
        async def crash():
            try:
                await asyncio.sleep(LONG)
            finally:
                1 / 0

        async def main():
            try:
                async with timeout(0.01) as cm:
                    await crash()
            except ZeroDivisionError as e:
                return cm.expired(), type(e.__context__)

        self.assertEqual(run(where, main), (True, asyncio.CancelledError))

    def test_foreign_cancel_is_not_a_timeout(self):
        async def main():
            try:
                async with timeout(LONG) as cm:
                    asyncio.current_task().cancel()
                    await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                return cm.expired()

        self.assertIs(run("main", main), False)

    def test_task_is_not_left_cancelled(self):
        async def outer():
            try:
                async with timeout(0.001):
                    await asyncio.sleep(LONG)
            except TimeoutError:
                return "timed out"

        async def main():
            task = asyncio.create_task(outer())
            result = await task
            return result, task.cancelled()

        self.assertEqual(run("main", main), ("timed out", False))

    def test_outer_deadline_passes_while_the_loop_is_busy(self):
        # Both deadlines pass during a blocking call; the outer one's cancellation wins.
        async def main():
            try:
                async with timeout(0.002) as outer:
                    async with timeout(0.1):
                        time.sleep(0.15)
                        await asyncio.sleep(LONG)
            except TimeoutError:
                return outer.expired()

        self.assertIs(run("main", main), True)

    def test_outer_deadline_after_a_caught_inner_one(self):
        async def main():
            steps = []
            try:
                async with timeout(0.1):
                    try:
                        async with timeout(0.01):
                            await asyncio.sleep(LONG)
                    except TimeoutError:
                        steps.append("inner")
                    await asyncio.sleep(LONG)  # cancelled by the outer deadline
            except TimeoutError:
                steps.append("outer")
            return steps

        self.assertEqual(run("main", main), ["inner", "outer"])

    def test_reschedule_from_another_task(self):
        async def main():
            started = asyncio.get_running_loop().create_future()
            deadline1 = time.monotonic() + LONG
            deadline2 = deadline1 + 20

            async def body():
                async with timeout_at(deadline1) as cm:
                    started.set_result(cm)
                    await asyncio.sleep(3 * LONG)

            task = asyncio.create_task(body())
            cm = await started
            whens = [cm.when()]
            cm.reschedule(deadline2)
            whens.append(cm.when())
            cm.reschedule(None)
            whens.append(cm.when())
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return whens == [deadline1, deadline2, None], cm.expired()

        self.assertEqual(run("main", main), (True, False))

    def test_timeout_in_a_finally_of_an_expired_block(self):
        async def main():
            steps = []
            try:
                async with timeout(0.01):
                    try:
                        await asyncio.sleep(LONG)
                    finally:
                        try:
                            async with timeout(0.01):
                                await asyncio.sleep(LONG)
                        except TimeoutError:
                            steps.append("inner")
            except TimeoutError:
                steps.append("outer")
            return steps

        self.assertEqual(run("main", main), ["inner", "outer"])

    def test_timeout_after_the_task_was_cancelled_and_recovered(self):
        async def main():
            try:
                asyncio.current_task().cancel()
                await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                pass
            try:
                async with timeout(0):
                    await asyncio.sleep(LONG)
            except TimeoutError:
                return "timed out"

        self.assertEqual(run("main", main), "timed out")

    def test_cancel_in_a_timeout_after_the_task_was_cancelled_and_recovered(self):
        async def main():
            try:
                asyncio.current_task().cancel()
                await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                pass
            try:
                async with timeout(LONG):
                    asyncio.current_task().cancel()
                    await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                return "cancelled"

        self.assertEqual(run("main", main), "cancelled")

    def test_cause_is_the_cancellation(self):
        async def main():
            try:
                async with timeout(0):
                    await asyncio.sleep(LONG)
            except TimeoutError as e:
                return type(e.__cause__)

        self.assertIs(run("main", main), asyncio.CancelledError)

    def test_enter_once_and_reschedule_only_while_active(self):
        async def main():
            errors = []
            async with timeout(LONG) as cm:
                try:
                    async with cm:
                        pass
                except RuntimeError as e:
                    errors.append(str(e))
            for call in (lambda: cm.reschedule(time.monotonic()), lambda: timeout(LONG).reschedule(None)):
                try:
                    call()
                except RuntimeError as e:
                    errors.append(str(e))
            return errors

        self.assertEqual(
            run("main", main),
            [
                "A timeout can be entered once; this one is active",
                "Timeout.reschedule(): cannot reschedule a timeout that is finished; only an active block (inside "
                "its ``with``) can be rescheduled",
                "Timeout.reschedule(): cannot reschedule a timeout that is created; only an active block (inside "
                "its ``with``) can be rescheduled",
            ],
        )


class TestAsyncioTimeoutsInAPlainBlock(TestCase):
    # The same cases for a block that is interrupted (no event loop), in the main thread
    # (SIGALRM) and in a worker thread (the watchdog).
    @in_each_thread
    def test_basic_and_timeout_at(self, where):
        def body():
            deadline = time.monotonic() + 0.01
            try:
                with timeout_at(deadline) as cm:
                    spin()
            except TimeoutError:
                return cm.expired(), cm.when() == deadline

        self.assertEqual(run_in(where, body), (True, True))

    @in_each_thread
    def test_same_deadline_only_the_outermost_raises(self, where):
        # Differs from asyncio on purpose: like trio's cancel scopes, the interrupt is the
        # outermost block's, so the inner block reports expired() False (trio's
        # cancelled_caught).  In a task, both say True (see above).
        def body():
            deadline = time.monotonic() + 0.01
            seen = []
            try:
                with timeout_at(deadline) as outer:
                    try:
                        with timeout_at(deadline) as inner:
                            spin()
                    except TimeoutError:
                        seen.append("inner raised")
            except TimeoutError:
                seen.append("outer raised")
            return seen, inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (["outer raised"], False, True))

    @in_each_thread
    def test_zero_and_a_block_that_ends_before_the_interrupt(self, where):
        def body():
            try:
                with timeout(0) as spinning:
                    spin()
            except TimeoutError:
                pass
            with timeout(0) as empty:
                pass  # ends before the interrupt can land: not a failure
            return spinning.expired(), empty.expired()

        self.assertEqual(run_in(where, body), (True, True))

    @in_each_thread
    def test_block_that_finishes_just_before_the_deadline(self, where):
        # Nothing arrives after the ``with``, even when the deadline passes right after it.
        def body():
            with timeout(0.05) as cm:
                busy(10)
            spin(0.2)
            return cm.expired()

        self.assertIs(run_in(where, body), False)

    @in_each_thread
    def test_foreign_exception_at_the_deadline(self, where):
        def body():
            try:
                with timeout(0.01) as cm:
                    try:
                        spin()
                    finally:
                        1 / 0
            except ZeroDivisionError as e:
                context = e.__context__
                # The interrupt (private) is a BaseException, never an Exception.
                return cm.expired(), isinstance(context, BaseException) and not isinstance(context, Exception)

        self.assertEqual(run_in(where, body), (True, True))

    @in_each_thread
    def test_chaining_hides_the_private_interrupt(self, where):
        # asyncio chains its TimeoutError to the CancelledError (in a task, so do we); a
        # plain block raises it ``from None``: no cause, no context shown.
        def body():
            try:
                with timeout(0.01):
                    spin()
            except TimeoutError as e:
                return e.__cause__, e.__suppress_context__

        self.assertEqual(run_in(where, body), (None, True))

    @in_each_thread
    def test_timeout_in_a_finally_of_an_expired_block(self, where):
        # The inner deadline was never delivered: cleanup under an expired block ran unbounded.
        def body():
            steps = []
            try:
                with timeout(0.01):
                    try:
                        spin()
                    finally:
                        try:
                            with timeout(0.01):
                                spin()
                        except TimeoutError:
                            steps.append("inner")
                        steps.append("cleanup finished")
            except TimeoutError:
                steps.append("outer")
            return steps

        self.assertEqual(run_in(where, body), ["inner", "cleanup finished", "outer"])

    @in_each_thread
    def test_outer_deadline_after_a_caught_inner_one(self, where):
        def body():
            steps = []
            try:
                with timeout(0.1):
                    try:
                        with timeout(0.01):
                            spin()
                    except TimeoutError:
                        steps.append("inner")
                    spin()
            except TimeoutError:
                steps.append("outer")
            return steps

        self.assertEqual(run_in(where, body), ["inner", "outer"])

    @in_each_thread
    def test_reschedule_earlier_later_and_none(self, where):
        def body():
            whens = []
            try:
                with timeout(LONG) as earlier:
                    new = time.monotonic() + 0.01
                    earlier.reschedule(new)
                    whens.append(earlier.when() == new)
                    spin()
            except TimeoutError:
                pass
            with timeout(0.02) as later:
                new = time.monotonic() + LONG
                later.reschedule(new)
                whens.append(later.when() == new)
                spin(0.1)
            with timeout(0.02) as never:
                never.reschedule(None)
                whens.append(never.when())
                spin(0.1)
            return whens, earlier.expired(), later.expired(), never.expired()

        self.assertEqual(run_in(where, body), ([True, True, None], True, False, False))


class TestTrioCancelScopes(TestCase):
    # trio's _tests/test_timeouts.py and the cancel-scope cases of _core/_tests/test_run.py.
    @in_each_thread
    def test_move_on_at_now(self, where):
        def body():
            with move_on_at(time.monotonic()) as scope:
                spin()
            return scope.expired()

        self.assertIs(run_in(where, body), True)

    def test_move_on_at_now_in_a_task(self):
        async def main():
            with move_on_at(time.monotonic()) as scope:
                await asyncio.sleep(0)
                return "not cancelled"
            return scope.expired()

        self.assertIs(run("main", main), True)

    @parametrize(
        "make",
        [timeout, move_on, timeout_at, move_on_at],
        name_fn=lambda f: f.__name__,
    )
    def test_nan_and_negative_durations_are_refused(self, make):
        with self.assertRaisesRegex(ValueError, rf"^{make.__name__}\(\): .* but got nan"):
            make(math.nan)
        if make in (timeout, move_on):
            with self.assertRaisesRegex(ValueError, rf"^{make.__name__}\(\): seconds must be a non-negative"):
                make(-1)
        else:
            make(-1.0)  # a deadline in the past is fine (trio: deadlines may be negative)

    def test_deadline_counted_from_entry(self):
        # trio's timeout_from_enter=True (its future default).
        scope = move_on(5)
        spin(0.05)
        start = time.monotonic()
        with scope:
            self.assertGreaterEqual(scope.when(), start + 5)
            self.assertLessEqual(scope.when(), time.monotonic() + 5)

    @in_each_thread
    def test_both_cancelled_the_outer_catches(self, where):
        def body():
            with move_on(LONG) as outer:
                with move_on(LONG) as inner:
                    now = time.monotonic()
                    inner.reschedule(now)
                    outer.reschedule(now)
                    spin()
                return "inner swallowed it"
            return inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (False, True))

    @in_each_thread
    def test_inner_cancelled_the_outer_goes_on(self, where):
        def body():
            steps = []
            with move_on(LONG) as outer:
                with move_on(0.01) as inner:
                    spin()
                steps.append("outer body goes on")
            return steps, inner.expired(), outer.expired()

        self.assertEqual(run_in(where, body), (["outer body goes on"], True, False))

    @in_each_thread
    def test_other_exception_raised_while_leaving_wins(self, where):
        def body():
            try:
                with move_on(0.01) as scope:
                    try:
                        spin()
                    finally:
                        raise KeyError("cleanup")
            except KeyError:
                return scope.expired()

        self.assertIs(run_in(where, body), True)

    @in_each_thread
    def test_deadline_moved_into_the_past_fires_at_once(self, where):
        def body():
            with move_on(LONG) as scope:
                scope.reschedule(time.monotonic() - 1)
                spin()
            return scope.expired()

        self.assertIs(run_in(where, body), True)


instantiate_parametrized_tests(TestAsyncioTimeoutsInATask)
instantiate_parametrized_tests(TestAsyncioTimeoutsInAPlainBlock)
instantiate_parametrized_tests(TestTrioCancelScopes)

if __name__ == "__main__":
    run_tests()
