# Owner(s): ["module: tests"]

import asyncio
import inspect
import logging
import threading

import torch
import torch.utils.error_callback as ec
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TestCase,
)
from torch.utils.hooks import RemovableHandle


class TestRegister(TestCase):
    def test_callback_sees_exception_and_context(self):
        seen = []
        with ec.register(lambda exc, info: seen.append((exc, info))) as handle:
            self.assertIsInstance(handle, RemovableHandle)
            err = RuntimeError("boom")
            ec.report(err, source="test", attempt=2, device=torch.device("cpu"))
        self.assertEqual(len(seen), 1)
        self.assertIs(seen[0][0], err)
        self.assertEqual(seen[0][1], {"source": "test", "attempt": 2, "device": torch.device("cpu")})

    def test_remove_detaches(self):
        seen = []
        handle = ec.register(lambda exc, info: seen.append(exc))
        ec.report(ValueError(), source="test")
        handle.remove()
        handle.remove()  # idempotent, as for every RemovableHandle
        ec.report(ValueError(), source="test")
        self.assertEqual(len(seen), 1)

    def test_exception_filter(self):
        seen = []
        with ec.register(lambda exc, info: seen.append(type(exc)), exceptions=(TimeoutError, torch.OutOfMemoryError)):
            ec.report(TimeoutError(), source="test")
            ec.report(ValueError(), source="test")
            ec.report(torch.OutOfMemoryError("oom"), source="test")
        self.assertEqual(seen, [TimeoutError, torch.OutOfMemoryError])

    def test_single_exception_class(self):
        seen = []
        with ec.register(lambda exc, info: seen.append(exc), exceptions=KeyError):
            ec.report(KeyError("k"), source="test")
            ec.report(IndexError(), source="test")
        self.assertEqual(len(seen), 1)

    def test_default_filter_excludes_base_exceptions(self):
        seen = []
        with ec.register(lambda exc, info: seen.append(exc)):
            ec.report(KeyboardInterrupt(), source="test")
        self.assertEqual(seen, [])

    def test_order_of_callbacks(self):
        order = []
        with ec.register(lambda e, i: order.append("a")), ec.register(lambda e, i: order.append("b")):
            with ec.error_callback(lambda e, i: order.append("scoped")):
                ec.report(RuntimeError(), source="test")
        self.assertEqual(order, ["a", "b", "scoped"])

    def test_info_is_a_copy_per_callback(self):
        def mutate(exc, info):
            info["source"] = "changed"

        seen = []
        with ec.register(mutate), ec.register(lambda e, i: seen.append(i["source"])):
            ec.report(RuntimeError(), source="test")
        self.assertEqual(seen, ["test"])

    def test_visible_from_other_threads(self):
        seen = []
        with ec.register(lambda exc, info: seen.append(threading.current_thread().name)):
            t = threading.Thread(target=ec.report, args=(RuntimeError(),), kwargs={"source": "t"}, name="worker")
            t.start()
            t.join()
        self.assertEqual(seen, ["worker"])


class TestScoped(TestCase):
    def test_only_inside_block(self):
        seen = []
        with ec.error_callback(lambda exc, info: seen.append(info["n"])):
            ec.report(RuntimeError(), source="test", n=1)
        ec.report(RuntimeError(), source="test", n=2)
        self.assertEqual(seen, [1])

    def test_restored_on_error(self):
        seen = []
        with self.assertRaises(ZeroDivisionError):
            with ec.error_callback(lambda exc, info: seen.append(exc)):
                1 / 0
        ec.report(RuntimeError(), source="test")
        self.assertEqual(seen, [])

    def test_nesting(self):
        seen = []
        with ec.error_callback(lambda e, i: seen.append("outer")):
            with ec.error_callback(lambda e, i: seen.append("inner")):
                ec.report(RuntimeError(), source="test")
            ec.report(RuntimeError(), source="test")
        self.assertEqual(seen, ["outer", "inner", "outer"])

    def test_other_threads_do_not_see_scoped_callback(self):
        seen = []
        with ec.error_callback(lambda exc, info: seen.append(exc)):
            t = threading.Thread(target=ec.report, args=(RuntimeError(),), kwargs={"source": "t"})
            t.start()
            t.join()
        self.assertEqual(seen, [])


def _record(seen, n):
    ec.report(RuntimeError(), source="test", n=n)


class TestDecorator(TestCase):
    def setUp(self):
        super().setUp()
        self.seen = []
        self.attach = ec.error_callback(lambda exc, info: self.seen.append(info["n"]))

    def test_function(self):
        @self.attach
        def f(n):
            _record(self.seen, n)
            return n * 2

        self.assertEqual(f(1), 2)
        _record(self.seen, 99)
        self.assertEqual(self.seen, [1])
        self.assertEqual(f.__name__, "f")

    def test_coroutine_only_while_it_runs(self):
        @self.attach
        async def step(n):
            _record(self.seen, n)
            await asyncio.sleep(0.01)
            _record(self.seen, n + 1)
            return n

        async def other():
            for n in (100, 101, 102):
                _record(self.seen, n)
                await asyncio.sleep(0.005)

        async def main():
            return await asyncio.gather(step(1), other(), step(10))

        self.assertTrue(inspect.iscoroutinefunction(step))
        self.assertEqual(asyncio.run(main()), [1, None, 10])
        self.assertEqual(sorted(self.seen), [1, 2, 10, 11])

    def test_coroutine_cancelled(self):
        @self.attach
        async def step():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                _record(self.seen, "cancelled")
                raise

        async def main():
            task = asyncio.create_task(step())
            await asyncio.sleep(0.01)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        self.assertEqual(self.seen, ["cancelled"])

    def test_generator_not_seen_by_consumer(self):
        @self.attach
        def gen():
            _record(self.seen, 1)
            sent = yield "a"
            _record(self.seen, sent)
            try:
                yield "b"
            except KeyError:
                _record(self.seen, "thrown")
                yield "c"
            finally:
                _record(self.seen, "closed")
            return "done"

        self.assertTrue(inspect.isgeneratorfunction(gen))
        it = gen()
        self.assertEqual(next(it), "a")
        _record(self.seen, "consumer")  # the consumer does not see the generator's callback
        self.assertEqual(it.send(2), "b")
        self.assertEqual(it.throw(KeyError()), "c")
        it.close()
        self.assertEqual(self.seen, [1, 2, "thrown", "closed"])

        def returning():
            return (yield from gen())

        it = returning()
        next(it)
        it.send(0)
        with self.assertRaises(StopIteration) as ctx:
            next(it)
        self.assertEqual(ctx.exception.value, "done")

    def test_async_generator(self):
        @self.attach
        async def agen():
            _record(self.seen, 1)
            await asyncio.sleep(0)
            sent = yield "a"
            _record(self.seen, sent)
            try:
                yield "b"
            except KeyError:
                _record(self.seen, "thrown")
                yield "c"
            finally:
                _record(self.seen, "closed")

        async def main():
            it = agen()
            self.assertEqual(await it.asend(None), "a")
            _record(self.seen, "consumer")
            self.assertEqual(await it.asend(2), "b")
            self.assertEqual(await it.athrow(KeyError()), "c")
            await it.aclose()
            return [x async for x in agen()]

        self.assertTrue(inspect.isasyncgenfunction(agen))
        self.assertEqual(asyncio.run(main()), ["a", "b"])
        self.assertEqual(self.seen, [1, 2, "thrown", "closed", 1, None, "closed"])

    def test_threads_share_a_decorated_function(self):
        @self.attach
        def f(n, barrier):
            barrier.wait(30)
            _record(self.seen, n)

        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=f, args=(n, barrier)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(self.seen), [0, 1, 2, 3])

    def test_class_refused(self):
        with self.assertRaisesRegex(TypeError, r"error_callback\(\): can only decorate a function, but got a class"):
            self.attach(int)


class TestFailingCallback(TestCase):
    def test_failing_callback_is_logged_not_raised(self):
        def broken(exc, info):
            raise ValueError("callback bug")

        seen = []
        with ec.register(broken), ec.register(lambda e, i: seen.append(e)):
            with self.assertLogs("torch.utils.error_callback", level=logging.ERROR) as logs:
                err = RuntimeError("original")
                ec.report(err, source="test")
        self.assertEqual(seen, [err])  # later callbacks still run
        self.assertIn("raised while handling RuntimeError from test", logs.output[0])
        self.assertIn("callback bug", logs.output[0])

    def test_base_exception_from_callback_propagates(self):
        # Documented: only Exception subclasses are caught, so Ctrl-C in a callback still stops the program.
        def interrupted(exc, info):
            raise KeyboardInterrupt

        seen = []
        with ec.register(interrupted), ec.register(lambda e, i: seen.append(e)):
            with self.assertRaises(KeyboardInterrupt):
                ec.report(RuntimeError("original"), source="test")
            self.assertEqual(seen, [])
        with ec.register(lambda e, i: seen.append(e)):
            ec.report(RuntimeError("later"), source="test")  # the reporting flag was reset
        self.assertEqual(len(seen), 1)
        self.assertIn("Only :class:`Exception` subclasses are caught", " ".join(ec.report.__doc__.split()))

    def test_original_error_propagates_unchanged(self):
        def broken(exc, info):
            raise ValueError("callback bug")

        with ec.register(broken), self.assertLogs("torch.utils.error_callback", level=logging.ERROR):
            with self.assertRaisesRegex(RuntimeError, "original"):
                try:
                    raise RuntimeError("original")
                except RuntimeError as e:
                    ec.report(e, source="test")
                    raise

    def test_no_recursion_when_callback_reports(self):
        calls = []

        def reporting(exc, info):
            calls.append(info["source"])
            ec.report(RuntimeError("inner"), source="inside-callback")

        with ec.register(reporting):
            ec.report(RuntimeError("outer"), source="outer")
        self.assertEqual(calls, ["outer"])


class TestValidation(TestCase):
    @parametrize("bad", [None, 3, "print"])
    def test_callback_must_be_callable(self, bad):
        with self.assertRaisesRegex(TypeError, "callback must be callable"):
            ec.register(bad)
        with self.assertRaisesRegex(TypeError, r"error_callback\(\): callback must be callable"):
            ec.error_callback(bad)  # at the call, not only when entered

    @parametrize("bad", [(), ValueError("x"), int, (ValueError, str), "ValueError"], name_fn=lambda b: repr(b).replace("'", ""))
    def test_exceptions_must_be_exception_types(self, bad):
        with self.assertRaisesRegex(TypeError, "exceptions must be an exception class"):
            ec.register(print, exceptions=bad)

    def test_report_needs_an_exception(self):
        with self.assertRaisesRegex(TypeError, "expected an exception instance"):
            ec.report("boom", source="test")

    def test_error_callback_checks_exceptions_at_call(self):
        with self.assertRaisesRegex(TypeError, r"error_callback\(\): exceptions must be an exception class"):
            ec.error_callback(print, exceptions="ValueError")

    @parametrize("bad", [5, None, b"x", ("a",)], name_fn=lambda b: type(b).__name__)
    def test_report_source_must_be_a_string(self, bad):
        with self.assertRaisesRegex(TypeError, r"report\(\): source must be a non-empty string"):
            ec.report(RuntimeError(), source=bad)

    def test_report_source_must_not_be_empty(self):
        with self.assertRaisesRegex(ValueError, r"report\(\): source must be a non-empty string.*got ''"):
            ec.report(RuntimeError(), source="")

    def test_report_without_callbacks_is_cheap_noop(self):
        ec.report(RuntimeError(), source="test")

    def test_public_api(self):
        self.assertEqual(sorted(ec.__all__), ["error_callback", "register", "report"])
        for name in ec.__all__:
            self.assertEqual(getattr(ec, name).__module__, "torch.utils.error_callback")


instantiate_parametrized_tests(TestValidation)

if __name__ == "__main__":
    run_tests()
