# Owner(s): ["module: python frontend"]

import asyncio
import contextlib
import functools
import threading

from torch.testing._internal.common_utils import run_tests, TestCase
from torch.utils._stepwise import context_decorator, kind, step_scoped, wrap


_state = threading.local()


def _value() -> str | None:
    return getattr(_state, "value", None)


@contextlib.contextmanager
def _setting(value: str):
    previous = _value()
    _state.value = value
    try:
        yield
    finally:
        _state.value = previous


class TestKind(TestCase):
    def test_kinds(self):
        def f():
            pass

        def g():
            yield

        async def c():
            pass

        async def ag():
            yield

        class Callable:
            async def __call__(self):
                pass

        self.assertEqual(
            [kind(x) for x in (f, g, c, ag, functools.partial(c), Callable())],
            ["function", "generator", "coroutine", "async generator", "coroutine", "coroutine"],
        )


class TestWrap(TestCase):
    def test_function(self):
        wrapped = wrap(lambda: _value(), lambda: _setting("on"))
        self.assertEqual(wrapped(), "on")
        self.assertIsNone(_value())

    def test_generator_state_only_while_the_body_runs(self):
        def gen():
            received = yield _value()
            yield (received, _value())

        it = wrap(gen, lambda: _setting("on"))()
        self.assertEqual(next(it), "on")
        self.assertIsNone(_value())  # the consumer does not see the state
        self.assertEqual(it.send("x"), ("x", "on"))
        with self.assertRaises(StopIteration):
            next(it)

    def test_generator_throw_and_close_run_in_the_state(self):
        seen = []

        def gen():
            try:
                yield 1
            except KeyError:
                seen.append(("throw", _value()))
                yield 2
            finally:
                seen.append(("close", _value()))

        it = wrap(gen, lambda: _setting("on"))()
        next(it)
        self.assertEqual(it.throw(KeyError()), 2)
        it.close()
        self.assertEqual(seen, [("throw", "on"), ("close", "on")])

    def test_coroutines_interleaved_do_not_see_each_other(self):
        async def body(name):
            seen = []
            for _ in range(3):
                seen.append(_value())
                await asyncio.sleep(0)
            return seen

        async def main():
            a = wrap(body, lambda: _setting("a"))
            return await asyncio.gather(a("a"), body("plain"))

        on, plain = asyncio.run(main())
        self.assertEqual(on, ["a", "a", "a"])
        self.assertEqual(plain, [None, None, None])

    def test_cancellation_reaches_the_body_in_the_state(self):
        seen = []

        async def body():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                seen.append(_value())
                raise

        async def main():
            task = asyncio.ensure_future(wrap(body, lambda: _setting("on"))())
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        self.assertEqual(seen, ["on"])

    def test_async_generator(self):
        async def agen():
            received = yield _value()
            await asyncio.sleep(0)
            yield (received, _value())

        async def main():
            it = wrap(agen, lambda: _setting("on"))()
            first = await it.asend(None)
            outside = _value()
            second = await it.asend("x")
            with self.assertRaises(StopAsyncIteration):
                await it.__anext__()
            return first, outside, second

        self.assertEqual(asyncio.run(main()), ("on", None, ("x", "on")))

    def test_converter_maps_result_and_items(self):
        def gen(n):
            yield n
            return n + 1

        wrapped = wrap(gen, contextlib.nullcontext, converter=lambda args, kwargs: lambda v: v * 10)
        it = wrapped(1)
        self.assertEqual(next(it), 10)
        with self.assertRaises(StopIteration) as cm:
            next(it)
        self.assertEqual(cm.exception.value, 20)

    def test_step_scoped_awaits_any_awaitable(self):
        class Ready:
            def __await__(self):
                yield from asyncio.sleep(0).__await__()
                return _value()

        async def main():
            return await step_scoped(lambda: _setting("on"), Ready())

        self.assertEqual(asyncio.run(main()), "on")

    def test_context_decorator_refuses_classes_and_non_callables(self):
        with self.assertRaisesRegex(TypeError, r"^thing\(\): can only decorate a function, but got a class"):
            context_decorator(contextlib.nullcontext, int, "thing()")
        with self.assertRaisesRegex(TypeError, r"^thing\(\): can only decorate a function, but got 5"):
            context_decorator(contextlib.nullcontext, 5, "thing()")


if __name__ == "__main__":
    run_tests()
