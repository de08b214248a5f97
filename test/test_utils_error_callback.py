# Owner(s): ["module: tests"]

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
        with self.assertRaisesRegex(TypeError, "callback must be callable"):
            with ec.error_callback(bad):
                pass

    @parametrize("bad", [(), ValueError("x"), int, (ValueError, str), "ValueError"], name_fn=lambda b: repr(b).replace("'", ""))
    def test_exceptions_must_be_exception_types(self, bad):
        with self.assertRaisesRegex(TypeError, "exceptions must be an exception class"):
            ec.register(print, exceptions=bad)

    def test_report_needs_an_exception(self):
        with self.assertRaisesRegex(TypeError, "expected an exception instance"):
            ec.report("boom", source="test")

    def test_report_without_callbacks_is_cheap_noop(self):
        ec.report(RuntimeError(), source="test")

    def test_public_api(self):
        self.assertEqual(sorted(ec.__all__), ["error_callback", "register", "report"])
        for name in ec.__all__:
            self.assertEqual(getattr(ec, name).__module__, "torch.utils.error_callback")


instantiate_parametrized_tests(TestValidation)

if __name__ == "__main__":
    run_tests()
