# Owner(s): ["module: utils"]
"""torch.utils.timeout inside asyncio tasks: deadlines delivered by cancelling the task (_timeout_task)."""

import asyncio
import inspect
import signal
import sys
import threading
import time
from unittest import mock

import torch.utils._timeout_interrupt as interrupt_module
import torch.utils._timeout_task as task_module
from torch.testing._internal.common_utils import instantiate_parametrized_tests, parametrize, run_tests, TestCase
from torch.utils.timeout import move_on, move_on_at, timeout, timeout_at

# The helpers of the main timeout tests (test/ is on sys.path under pytest and when run as a script).
from test_utils_timeout import in_thread, LONG, spin


def run(where, main):
    """``asyncio.run(main())`` in this thread or in a new one; return its result or raise its error."""
    return asyncio.run(main()) if where == "main" else in_thread(lambda: asyncio.run(main()))


def each_loop_and_counting(test):
    """Run ``test`` in the main thread's loop and a worker thread's, counting cancellations both ways."""
    return parametrize("where", ["main", "worker"])(parametrize("counting", ["uncancel", "message"])(test))


class TestTask(TestCase):
    @staticmethod
    def _mode(counting):
        # "message" is the Python 3.10 way of recognizing the block's own cancellation.
        return mock.patch.object(task_module, "_HAS_UNCANCEL", counting == "uncancel" and sys.version_info >= (3, 11))

    @each_loop_and_counting
    def test_sync_with_around_await(self, where, counting):
        # The private interrupt escaped asyncio.run or landed in another task.
        async def main():
            with timeout(0.05) as t:
                await asyncio.sleep(LONG)
            return t

        with TestTask._mode(counting), self.assertRaises(TimeoutError) as cm:
            run(where, main)
        self.assertIs(type(cm.exception), TimeoutError)
        self.assertIsInstance(cm.exception.__cause__, asyncio.CancelledError)

    @each_loop_and_counting
    def test_async_with(self, where, counting):
        async def main():
            try:
                async with timeout(0.05) as t:
                    await asyncio.sleep(LONG)
            except TimeoutError:
                return t.expired(), asyncio.current_task().cancelling() if sys.version_info >= (3, 11) else 0
            return None

        with TestTask._mode(counting):
            expired, cancelling = run(where, main)
        self.assertTrue(expired)
        if counting == "uncancel":
            self.assertEqual(cancelling, 0)

    @each_loop_and_counting
    def test_decorated_coroutine_function(self, where, counting):
        # @timeout on async def never fired.
        @timeout(0.05)
        async def step(x):
            await asyncio.sleep(x)
            return x

        self.assertTrue(inspect.iscoroutinefunction(step))

        async def main():
            fast = await step(0)
            try:
                await step(LONG)
            except TimeoutError:
                return fast, "timed out"
            return fast, "not interrupted"

        with TestTask._mode(counting):
            self.assertEqual(run(where, main), (0, "timed out"))

    @each_loop_and_counting
    def test_decorated_coroutine_as_the_task_coroutine(self, where, counting):
        # Hostile trial: asyncio.run(step(...)), gather and create_task of a decorated
        # coroutine ran to their end (the block's frame was taken to be the loop's).
        @timeout(0.05)
        async def step(x):
            await asyncio.sleep(x)
            return x

        async def gathered():
            return await asyncio.gather(step(0), step(LONG), return_exceptions=True)

        async def created():
            try:
                await asyncio.create_task(step(LONG))
            except TimeoutError:
                return "timed out"

        with TestTask._mode(counting):
            with self.assertRaises(TimeoutError):
                run(where, lambda: step(LONG))
            fast, slow = run(where, gathered)
            self.assertEqual(fast, 0)
            self.assertIsInstance(slow, TimeoutError)
            self.assertEqual(run(where, created), "timed out")

    @each_loop_and_counting
    def test_other_tasks_untouched(self, where, counting):
        async def bounded():
            with timeout(0.05):
                await asyncio.sleep(LONG)

        async def other():
            await asyncio.sleep(0.2)
            return "done"

        async def main():
            results = await asyncio.gather(bounded(), other(), return_exceptions=True)
            return [type(r).__name__ if isinstance(r, BaseException) else r for r in results]

        with TestTask._mode(counting):
            self.assertEqual(run(where, main), ["TimeoutError", "done"])

    @each_loop_and_counting
    def test_no_signal_and_no_asynchronous_exception(self, where, counting):
        seen = []

        async def main():
            with timeout(0.05) as t:
                seen.append(signal.getsignal(signal.SIGALRM) if hasattr(signal, "SIGALRM") else None)
                seen.append(list(interrupt_module._thread_scopes().stack))
                try:
                    await asyncio.sleep(LONG)
                except BaseException as e:
                    seen.append(type(e))
                    raise
            return t

        before = signal.getsignal(signal.SIGALRM) if hasattr(signal, "SIGALRM") else None
        with TestTask._mode(counting), self.assertRaises(TimeoutError):
            run(where, main)
        self.assertEqual(seen, [before, [], asyncio.CancelledError])

    @each_loop_and_counting
    def test_inner_fires_outer_untouched(self, where, counting):
        async def main():
            async with timeout(LONG) as outer:
                try:
                    async with timeout(0.05) as inner:
                        await asyncio.sleep(LONG)
                except TimeoutError:
                    pass
                await asyncio.sleep(0.01)
            return inner.expired(), outer.expired()

        with TestTask._mode(counting):
            self.assertEqual(run(where, main), (True, False))

    @each_loop_and_counting
    def test_outer_fires_through_inner(self, where, counting):
        async def main():
            try:
                with timeout(0.05) as outer:
                    with timeout(LONG) as inner:
                        await asyncio.sleep(LONG)
            except TimeoutError:
                return inner.expired(), outer.expired()

        with TestTask._mode(counting):
            self.assertEqual(run(where, main), (False, True))

    @each_loop_and_counting
    def test_cancel_from_outside_is_not_a_timeout(self, where, counting):
        async def main():
            async def body():
                with timeout(LONG) as t:
                    await asyncio.sleep(LONG)
                return t

            task = asyncio.create_task(body())
            await asyncio.sleep(0.01)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return "cancelled"
            return "finished"

        with TestTask._mode(counting):
            self.assertEqual(run(where, main), "cancelled")

    @each_loop_and_counting
    def test_reschedule_and_timeout_at(self, where, counting):
        async def main():
            async with timeout(LONG) as t:
                t.reschedule(time.monotonic() + 0.05)
                try:
                    async with timeout_at(time.monotonic() + LONG):
                        await asyncio.sleep(LONG)
                except TimeoutError:
                    return "inner caught it"
            return "not interrupted"

        with TestTask._mode(counting), self.assertRaises(TimeoutError):
            run(where, main)

    @each_loop_and_counting
    def test_reschedule_from_another_thread_wakes_the_loop(self, where, counting):
        # The loop slept in its wait until the old deadline (LONG): the new one was only
        # seen when something else woke it.
        async def main():
            start = time.monotonic()
            async with move_on(LONG) as scope:
                timer = threading.Timer(0.05, lambda: scope.reschedule(time.monotonic()))
                timer.start()
                try:
                    await asyncio.sleep(LONG)
                finally:
                    timer.cancel()
            return scope.expired(), time.monotonic() - start

        with TestTask._mode(counting):
            expired, elapsed = run(where, main)
        self.assertTrue(expired)
        self.assertLess(elapsed, LONG / 2)

    @each_loop_and_counting
    def test_swallowed_cancellation_is_not_repeated(self, where, counting):
        # As documented (and as asyncio.timeout): one cancellation; the block runs on to its end.
        async def main():
            async with timeout(0.05) as t:
                try:
                    await asyncio.sleep(LONG)
                except asyncio.CancelledError:
                    pass
                await asyncio.sleep(0.1)
            return t.expired()

        with TestTask._mode(counting):
            self.assertTrue(run(where, main))

    @each_loop_and_counting
    def test_nested_blocks_with_the_same_deadline(self, where, counting):
        # As documented: the outer owns the cancellation; both say expired() (asyncio.timeout too).
        async def main():
            deadline = time.monotonic() + 0.05
            after_inner = False
            async with move_on_at(deadline) as outer:
                async with move_on_at(deadline) as inner:
                    await asyncio.sleep(LONG)
                after_inner = True
            return outer.expired(), inner.expired(), after_inner

        with TestTask._mode(counting):
            self.assertEqual(run(where, main), (True, True, False))

    @each_loop_and_counting
    def test_block_without_await_runs_to_its_end(self, where, counting):
        # Inside a task the deadline is a cancellation, which lands at an await: a block
        # with none runs to its end, exits normally and says it expired; nothing leaks
        # into the code after it.
        async def main():
            with timeout(0.02) as t:
                spin(0.1)
            await asyncio.sleep(0.01)
            return t.expired()

        with TestTask._mode(counting):
            self.assertTrue(run(where, main))

    @each_loop_and_counting
    def test_cancellation_pending_at_the_end_of_async_with_is_claimed(self, where, counting):
        # The deadline cancels the task just as its await completes: the cancellation is
        # pending, the body reaches its end; ``async with`` claims it, nothing leaks.
        async def main():
            async with timeout(LONG) as t:
                task_module._on_deadline(t)  # as if the deadline passed now
            await asyncio.sleep(0.01)
            return t.expired()

        with TestTask._mode(counting):
            self.assertTrue(run(where, main))


class TestGenerators(TestCase):
    # A block spanning a ``yield`` must not cancel the consumer.
    @each_loop_and_counting
    def test_async_generator_block_spanning_a_yield(self, where, counting):
        async def agen():
            async with timeout(0.05) as t:
                yield t
                await asyncio.sleep(LONG)
                yield "not interrupted"

        async def main():
            g = agen()
            t = await g.__anext__()
            await asyncio.sleep(0.3)  # the deadline passes while the generator is suspended
            try:
                await g.__anext__()
            except TimeoutError:
                return t.expired()
            return "not interrupted"

        with TestTask._mode(counting):
            self.assertIs(run(where, main), True)

    @parametrize("where", ["main", "worker"])
    def test_sync_generator_block_inside_a_task_runs_to_its_end(self, where):
        # A sync generator cannot await: a cancellation could only land in its consumer.
        def gen():
            with timeout(0.05) as t:
                yield t
                spin(0.1)

        async def main():
            g = gen()
            t = next(g)
            await asyncio.sleep(0.3)
            next(g, None)
            await asyncio.sleep(0.01)
            return t.expired()

        self.assertIs(run(where, main), True)


class TestWithoutATask(TestCase):
    def test_async_with_in_a_coroutine_driven_by_hand(self):
        # No asyncio task (another framework's scheduler, say): the thread's own delivery,
        # and the deadline waits while the coroutine is suspended.
        class Suspend:
            def __await__(self):
                yield

        async def body():
            async with timeout(0.05) as t:
                await Suspend()
                spin(LONG)
            return t

        coro = body()
        coro.send(None)  # suspended inside the block
        spin(0.2)  # the deadline passes while it is suspended: nothing raised here
        with self.assertRaises(TimeoutError):
            coro.send(None)


class TestDecoration(TestCase):
    def test_generator_functions_refused_at_decoration(self):
        # @timeout covered only the creation of the generator.
        def gen():
            yield 1

        async def agen():
            yield 1

        for fn in (gen, agen):
            with self.assertRaisesRegex(TypeError, f"timeout\\(\\) cannot decorate the generator function '.*{fn.__name__}'"):
                timeout(1.0)(fn)

    def test_sync_block_outside_a_task_in_a_loop_thread_uses_the_thread_mode(self):
        # A plain callback of the loop (no task) is bounded like any code of its thread.
        async def main():
            loop = asyncio.get_running_loop()
            done = loop.create_future()

            def callback():
                try:
                    with timeout(0.05):
                        spin(LONG)
                except TimeoutError as e:
                    done.set_result(type(e))

            loop.call_soon(callback)
            return await done

        self.assertIs(run("worker", main), TimeoutError)


instantiate_parametrized_tests(TestTask)
instantiate_parametrized_tests(TestGenerators)

if __name__ == "__main__":
    run_tests()
