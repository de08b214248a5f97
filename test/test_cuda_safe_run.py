# Owner(s): ["module: cuda"]

import gc
import pickle
import sys
import unittest
import warnings
import weakref
from collections import namedtuple
from unittest import mock

import torch
import torch.utils.error_callback as ec
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


Pair = namedtuple("Pair", ["first", "second"])

OOM_MESSAGES = {
    "caching_allocator": "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB",
    "cuda_error": "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
    "cublas": "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cudnn_alloc": "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cudnn_not_supported": "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input.",  # noqa: B950
    "cufft": "cuFFT error: CUFFT_ALLOC_FAILED",
    "cpu": "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1152921504606846976 bytes.",  # noqa: B950
}


class FlakyOOM:
    """A callable that raises torch.OutOfMemoryError on its first ``failures`` calls."""

    def __init__(self, failures, error=None):
        self.failures = failures
        self.error = error or (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append(
            {
                "autocast": torch.is_autocast_enabled("cpu"),
                "devices": [
                    a.device.type
                    for a in torch.utils._pytree.tree_leaves((args, kwargs))
                    if isinstance(a, torch.Tensor)
                ],
            }
        )
        if len(self.calls) <= self.failures:
            raise self.error()
        return "ok"


def collect(fn, **kwargs):
    """Wrap fn with safe_run and record every (exc, info) it reports."""
    seen = []
    return torch.cuda.safe_run(fn, error_callback=lambda exc, info: seen.append((exc, info)), **kwargs), seen


@torch.cuda.safe_run
def module_level(x):
    """Adds one."""
    return x + 1


@torch.cuda.safe_run(max_cuda_retries=2, fallback_to_cpu=False)
def module_level_with_options(x):
    return x * 2


class TestSafeRunSuccess(TestCase):
    def test_without_parentheses(self):
        self.assertEqual(module_level(torch.ones(2)), torch.full((2,), 2.0))

    def test_with_parentheses(self):
        self.assertEqual(module_level_with_options(torch.ones(2)), torch.full((2,), 2.0))

    def test_runs_now(self):
        self.assertEqual(torch.cuda.safe_run(lambda a, *, b: a + b)(1, b=2), 3)

    def test_wraps(self):
        self.assertEqual(module_level.__name__, "module_level")
        self.assertEqual(module_level.__qualname__, "module_level")
        self.assertEqual(module_level.__doc__, "Adds one.")
        self.assertEqual(module_level.__wrapped__(1), 2)

    def test_pickles_by_reference(self):
        for fn in (module_level, module_level_with_options):
            self.assertIs(pickle.loads(pickle.dumps(fn)), fn)

    def test_no_report_on_success(self):
        fn, seen = collect(lambda: 1)
        self.assertEqual(fn(), 1)
        self.assertEqual(seen, [])

    def test_module(self):
        model = torch.nn.Linear(2, 2)
        wrapped = torch.cuda.safe_run(model)
        x = torch.ones(1, 2)
        self.assertEqual(wrapped(x), model(x))
        self.assertFalse(hasattr(wrapped, "_parameters"))  # the module's __dict__ is not copied

    def test_public(self):
        self.assertIn("safe_run", torch.cuda.__all__)
        self.assertEqual(torch.cuda.safe_run.__module__, "torch.cuda")
        self.assertIn("Example::", torch.cuda.safe_run.__doc__)


class TestSafeRunValidation(TestCase):
    @parametrize("value", [1.0, "1", None, True], name_fn=lambda v: type(v).__name__)
    def test_max_cuda_retries_type(self, value):
        with self.assertRaisesRegex(TypeError, "max_cuda_retries must be an int"):
            torch.cuda.safe_run(max_cuda_retries=value)

    def test_max_cuda_retries_negative(self):
        with self.assertRaisesRegex(ValueError, "max_cuda_retries must be >= 0, but got -1"):
            torch.cuda.safe_run(max_cuda_retries=-1)

    @parametrize("flag", ["use_autocast_on_oom", "fallback_to_cpu"])
    def test_flags_are_bools(self, flag):
        with self.assertRaisesRegex(TypeError, f"{flag} must be a bool, but got 1"):
            torch.cuda.safe_run(**{flag: 1})

    def test_error_callback_callable(self):
        with self.assertRaisesRegex(TypeError, "error_callback must be callable or None"):
            torch.cuda.safe_run(error_callback="log")

    def test_fn_callable(self):
        with self.assertRaisesRegex(TypeError, "expected a callable to wrap, but got 3"):
            torch.cuda.safe_run(3)
        with self.assertRaisesRegex(TypeError, "expected a callable to wrap"):
            torch.cuda.safe_run(max_cuda_retries=0)("not callable")


class FastClearCache:
    """clear_cache() is tested on its own; here a full gc.collect() per retry would only cost time."""

    def setUp(self):
        super().setUp()
        warnings.simplefilter("always")
        patcher = mock.patch("torch.cuda._safe_run.clear_cache", return_value=0)
        self.clear_cache = patcher.start()
        self.addCleanup(patcher.stop)


class TestSafeRunOOM(FastClearCache, TestCase):
    @parametrize("kind", sorted(OOM_MESSAGES))
    def test_recognized_runtime_errors(self, kind):
        flaky = FlakyOOM(1, error=lambda: RuntimeError(OOM_MESSAGES[kind]))
        fn, seen = collect(flaky)
        self.assertEqual(fn(), "ok")
        self.assertEqual([info["next_action"] for _, info in seen], ["retry_autocast"])

    @parametrize(
        "error",
        [
            ValueError("bad shape"),
            RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
            RuntimeError("CUDA error: device-side assert triggered"),
            KeyError("out of memory"),
        ],
        name_fn=lambda e: type(e).__name__ + "_" + str(e).split()[0].strip("'"),
    )
    def test_other_errors_propagate_unretried(self, error):
        calls = []

        def fn():
            calls.append(1)
            raise error

        wrapped, seen = collect(fn)
        with self.assertRaises(type(error)) as cm:
            wrapped()
        self.assertIs(cm.exception, error)
        self.assertEqual(len(calls), 1)
        self.assertEqual([(info["attempt"], info["next_action"]) for _, info in seen], [(1, "give_up")])

    def test_keyboard_interrupt_is_not_caught(self):
        def fn():
            raise KeyboardInterrupt

        wrapped, seen = collect(fn)
        with self.assertRaises(KeyboardInterrupt):
            wrapped()
        self.assertEqual(seen, [])

    def test_retry_then_success(self):
        flaky = FlakyOOM(1)
        fn, seen = collect(flaky, use_autocast_on_oom=False)
        self.assertEqual(fn(torch.ones(2)), "ok")
        self.assertEqual([c["autocast"] for c in flaky.calls], [False, False])
        [(exc, info)] = seen
        self.assertIsInstance(exc, torch.OutOfMemoryError)
        self.assertEqual(
            info,
            {
                "source": "torch.cuda.safe_run",
                "function": "FlakyOOM",
                "attempt": 1,
                "device": torch.device("cpu"),
                "next_action": "retry",
            },
        )

    def test_retries_run_under_autocast(self):
        flaky = FlakyOOM(2)
        fn, seen = collect(flaky, max_cuda_retries=2)
        self.assertEqual(fn(torch.ones(2)), "ok")
        self.assertEqual([c["autocast"] for c in flaky.calls], [False, True, True])
        self.assertEqual([info["next_action"] for _, info in seen], ["retry_autocast", "retry_autocast"])
        self.assertFalse(torch.is_autocast_enabled("cpu"))

    def test_autocast_dtype(self):
        dtypes = []

        def fn(x):
            dtypes.append((x @ x).dtype)
            if len(dtypes) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return x

        torch.cuda.safe_run(fn)(torch.ones(2, 2))
        self.assertEqual(dtypes, [torch.float32, torch.get_autocast_dtype("cpu")])

    def test_every_stage_then_cpu_fallback(self):
        flaky = FlakyOOM(3)
        fn, seen = collect(flaky, max_cuda_retries=2)
        with self.assertWarnsRegex(UserWarning, "FlakyOOM ran out of memory on cpu 3 time"):
            self.assertEqual(fn(torch.ones(2)), "ok")
        self.assertEqual(
            [(info["attempt"], info["next_action"]) for _, info in seen],
            [(1, "retry_autocast"), (2, "retry_autocast"), (3, "cpu_fallback")],
        )
        self.assertFalse(flaky.calls[-1]["autocast"])

    def test_give_up_raises_last_error(self):
        flaky = FlakyOOM(10)
        fn, seen = collect(flaky, max_cuda_retries=1)
        with self.assertRaises(torch.OutOfMemoryError) as cm, warnings.catch_warnings(record=True) as w:
            fn()
        self.assertEqual(len(flaky.calls), 3)
        self.assertIs(cm.exception, seen[-1][0])
        self.assertEqual(
            [(info["attempt"], info["device"].type, info["next_action"]) for _, info in seen],
            [(1, "cpu", "retry_autocast"), (2, "cpu", "cpu_fallback"), (3, "cpu", "give_up")],
        )
        self.assertEqual(len(w), 1)  # the fallback warns even when it fails

    @unittest.skipIf(sys.version_info < (3, 11), "exception notes are new in Python 3.11")
    def test_give_up_note_lists_attempts(self):
        with self.assertRaises(torch.OutOfMemoryError) as cm, warnings.catch_warnings(record=True):
            torch.cuda.safe_run(FlakyOOM(10), max_cuda_retries=1)()
        self.assertExpectedInline(
            cm.exception.__notes__[-1],
            """torch.cuda.safe_run(FlakyOOM): attempt 1 on cpu: OutOfMemoryError, then retry_autocast; attempt 2 on cpu: OutOfMemoryError, then cpu_fallback; attempt 3 on cpu: OutOfMemoryError, then give_up""",  # noqa: B950
        )

    def test_plain_retry_where_autocast_is_unavailable(self):
        flaky = FlakyOOM(1)
        fn, seen = collect(flaky)
        self.assertEqual(fn(torch.empty(2, device="meta")), "ok")
        self.assertEqual([(info["device"], info["next_action"]) for _, info in seen], [(torch.device("meta"), "retry")])

    def test_no_retries_no_fallback(self):
        flaky = FlakyOOM(1)
        fn, seen = collect(flaky, max_cuda_retries=0, fallback_to_cpu=False)
        with self.assertRaises(torch.OutOfMemoryError):
            fn()
        self.assertEqual(len(flaky.calls), 1)
        self.assertEqual([info["next_action"] for _, info in seen], ["give_up"])

    def test_straight_to_cpu(self):
        flaky = FlakyOOM(1)
        fn, seen = collect(flaky, max_cuda_retries=0)
        with self.assertWarns(UserWarning):
            self.assertEqual(fn(), "ok")
        self.assertEqual([info["next_action"] for _, info in seen], ["cpu_fallback"])

    def test_non_oom_during_retry_propagates(self):
        calls = []

        def fn():
            calls.append(1)
            if len(calls) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory")
            raise ValueError("bug only seen on retry")

        wrapped, seen = collect(fn)
        with self.assertRaisesRegex(ValueError, "bug only seen on retry"):
            wrapped()
        self.assertEqual(len(calls), 2)
        self.assertEqual([info["next_action"] for _, info in seen], ["retry_autocast", "give_up"])

    def test_clear_cache_before_each_retry(self):
        with self.assertWarns(UserWarning):
            torch.cuda.safe_run(FlakyOOM(2))()
        self.assertEqual(self.clear_cache.call_count, 2)

    def test_warning_message(self):
        with warnings.catch_warnings(record=True) as w:
            torch.cuda.safe_run(FlakyOOM(2), max_cuda_retries=1)(torch.ones(1))
        self.assertExpectedInline(
            str(w[0].message),
            """torch.cuda.safe_run: FlakyOOM ran out of memory on cpu 2 time(s), so it ran on the CPU (0 tensor argument(s) and no module moved to cpu); its outputs are on the CPU""",  # noqa: B950
        )

    def test_global_and_per_call_callbacks(self):
        order = []
        with ec.register(lambda exc, info: order.append(("global", info["attempt"]))):
            with ec.error_callback(lambda exc, info: order.append(("scoped", info["attempt"]))):
                torch.cuda.safe_run(
                    FlakyOOM(1), error_callback=lambda exc, info: order.append(("call", info["attempt"]))
                )()
        self.assertEqual(order, [("global", 1), ("scoped", 1), ("call", 1)])

    def test_failing_callback_does_not_mask(self):
        def broken(exc, info):
            raise RuntimeError("callback bug")

        with self.assertLogs("torch.utils.error_callback", level="ERROR"):
            self.assertEqual(torch.cuda.safe_run(FlakyOOM(1), error_callback=broken)(), "ok")
        with self.assertLogs("torch.utils.error_callback", level="ERROR"):
            with self.assertRaisesRegex(ValueError, "real"):
                torch.cuda.safe_run(mock.Mock(side_effect=ValueError("real")), error_callback=broken)()


class TestSafeRunReleasesFailedAttempt(TestCase):
    """pytorch#27600, #18853: the failed attempt's tensors must be gone before the retry starts."""

    def _check(self, keep_exception):
        refs = []
        alive_at_retry = []
        kept = []

        def step(x):
            if refs:
                gc.disable()  # what is still alive now is kept alive by references, not by uncollected garbage
                try:
                    alive_at_retry.extend(r() is not None for r in refs)
                finally:
                    gc.enable()
                return "ok"
            activations = x.expand(256, 256).clone()  # local of the failing frame
            cycle = [x.clone()]
            cycle.append(cycle)  # only the garbage collector frees this one
            refs.extend([weakref.ref(activations), weakref.ref(cycle[0])])
            raise torch.OutOfMemoryError("CUDA out of memory")

        callback = (lambda exc, info: kept.append(exc)) if keep_exception else None
        self.assertEqual(torch.cuda.safe_run(step, error_callback=callback)(torch.ones(1)), "ok")
        self.assertEqual(alive_at_retry, [False, False])
        if keep_exception:
            # The exception survives in the callback's hands, its frames' locals do not.
            self.assertIsInstance(kept[0], torch.OutOfMemoryError)
            self.assertIsNotNone(kept[0].__traceback__)

    def test_tensors_collected_before_retry(self):
        self._check(keep_exception=False)

    def test_tensors_collected_even_if_callback_keeps_exception(self):
        self._check(keep_exception=True)

    def test_every_failed_attempt_released(self):
        refs = []
        alive = []

        def step():
            alive.append([r() is not None for r in refs])
            if len(alive) <= 2:
                activations = torch.ones(64, 64)
                refs.append(weakref.ref(activations))
                raise torch.OutOfMemoryError("CUDA out of memory")
            return "ok"

        with warnings.catch_warnings(record=True):
            self.assertEqual(torch.cuda.safe_run(step, max_cuda_retries=1)(), "ok")
        self.assertEqual(alive, [[], [False], [False, False]])

    def test_oom_in_backward_releases_the_graph(self):
        # pytorch#82218: after an OOM in backward(), the failed step's graph must not outlive it.
        class FailingBackward(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, grad):
                raise torch.OutOfMemoryError("CUDA out of memory")

        model = torch.nn.Linear(4, 4)
        refs = []
        alive = []

        def train_step(batch):
            alive.append([r() is not None for r in refs])
            hidden = model(batch).relu()
            refs.append(weakref.ref(hidden))
            out = FailingBackward.apply(hidden) if len(alive) == 1 else hidden
            out.sum().backward()
            return model.weight.grad.clone()

        batch = torch.ones(2, 4)
        grad = torch.cuda.safe_run(train_step, use_autocast_on_oom=False)(batch)
        self.assertEqual(alive, [[], [False]])
        model.zero_grad()
        model(batch).relu().sum().backward()
        self.assertEqual(grad, model.weight.grad)  # the failure came before any gradient was accumulated

    def test_step_that_zeroes_gradients_retries_cleanly(self):
        # The OOM comes half-way through backward(), after the second layer's gradients were accumulated.
        fail = [True]

        class FailingBackward(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, grad):
                if fail:
                    fail.pop()
                    raise torch.OutOfMemoryError("CUDA out of memory")
                return grad

        first, second = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)

        def train_step(batch):
            first.zero_grad()
            second.zero_grad()
            second(FailingBackward.apply(first(batch))).sum().backward()
            return first.weight.grad.clone(), second.weight.grad.clone()

        batch = torch.ones(2, 4)
        grads = torch.cuda.safe_run(train_step, use_autocast_on_oom=False)(batch)
        self.assertEqual(grads, train_step(batch))

    def test_chained_exception_frames_cleared(self):
        refs = []

        def inner():
            t = torch.ones(16)
            refs.append(weakref.ref(t))
            raise KeyError("lookup")

        def step():
            if refs:
                return refs[0]() is None
            try:
                inner()
            except KeyError:
                raise torch.OutOfMemoryError("CUDA out of memory") from None

        self.assertTrue(torch.cuda.safe_run(step, error_callback=lambda e, i: None)())


class TestSafeRunCPUFallback(FastClearCache, TestCase):
    def test_nested_tensor_arguments_move_to_cpu(self):
        seen_devices = []

        def fn(batch, *, extra):
            leaves = torch.utils._pytree.tree_leaves((batch, extra))
            seen_devices.append(sorted({t.device.type for t in leaves if isinstance(t, torch.Tensor)}))
            if len(seen_devices) < 3:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return batch["pair"].first + extra[0]

        meta = torch.empty(2, device="meta")  # stands in for a GPU tensor: not on the CPU
        batch = {"pair": Pair(meta, [meta, {"k": meta}]), "n": 3}
        with mock.patch.object(torch.Tensor, "cpu", lambda t: torch.ones(t.shape)):
            with self.assertWarnsRegex(
                UserWarning,
                r"ran on the CPU \(4 tensor argument\(s\) and no module moved to cpu\); its outputs are on the CPU",
            ):
                out = torch.cuda.safe_run(fn)(batch, extra=(meta,))
        self.assertEqual(seen_devices, [["meta"], ["meta"], ["cpu"]])
        self.assertEqual(out, torch.full((2,), 2.0))
        self.assertEqual(batch["pair"].first.device.type, "meta")  # the caller's arguments are untouched

    def _meta_module(self):
        model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)).to("meta")
        model[0].register_buffer("scale", torch.ones(1, device="meta"))
        return model

    def _patch_module_moves(self):
        """Make 'meta' <-> cpu moves of parameters possible: cpu() materializes, to('meta') goes back."""
        real_to = torch.Tensor.to

        def cpu(t):
            return torch.zeros(t.shape, dtype=t.dtype)

        def to(t, *args, **kwargs):
            device = kwargs.get("device", args[0] if args else None)
            return (
                torch.empty(t.shape, dtype=t.dtype, device="meta")
                if str(device) == "meta"
                else real_to(t, *args, **kwargs)
            )

        return mock.patch.multiple(torch.Tensor, cpu=cpu, to=to)

    @parametrize("how", ["argument", "nested_argument", "fn", "bound_method"])
    def test_modules_move_to_cpu_and_back(self, how):
        model = self._meta_module()
        devices_in_call = []

        def record_and_fail_once(m, args):
            devices_in_call.append({t.device.type for t in (*m.parameters(), *m.buffers())})
            if len(devices_in_call) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory")

        model.register_forward_pre_hook(record_and_fail_once)
        x = torch.ones(1, 2)
        fn, args = {
            "argument": (lambda m, x: m(x), (model, x)),
            "nested_argument": (lambda d, x: d["model"](x), ({"model": model}, x)),
            "fn": (model, (x,)),
            "bound_method": (model.__call__, (x,)),
        }[how]
        with self._patch_module_moves(), warnings.catch_warnings(record=True) as w:
            out = torch.cuda.safe_run(fn, max_cuda_retries=0)(*args)
        self.assertEqual(devices_in_call, [{"meta"}, {"cpu"}])
        self.assertEqual(out.device.type, "cpu")  # outputs stay where they were computed
        self.assertEqual({t.device.type for t in (*model.parameters(), *model.buffers())}, {"meta"})
        self.assertEqual(len(w), 1)
        self.assertIn(
            "(0 tensor argument(s) and the modules Linear moved to cpu, and back to their devices afterwards)",
            str(w[0].message),
        )

    def test_each_submodule_returns_to_its_own_device(self):
        model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
        model[0].to("meta")  # a model split over two devices: meta and cpu
        flaky = FlakyOOM(1)
        with self._patch_module_moves(), warnings.catch_warnings(record=True):
            self.assertEqual(torch.cuda.safe_run(flaky, max_cuda_retries=0)(model), "ok")
        self.assertEqual(model[0].weight.device.type, "meta")
        self.assertEqual(model[1].weight.device.type, "cpu")

    def test_modules_restored_when_cpu_run_fails(self):
        model = self._meta_module()

        def step(m):
            raise torch.OutOfMemoryError("CUDA out of memory")

        with self._patch_module_moves(), warnings.catch_warnings(record=True):
            with self.assertRaises(torch.OutOfMemoryError):
                torch.cuda.safe_run(step, max_cuda_retries=0)(model)
        self.assertEqual({p.device.type for p in model.parameters()}, {"meta"})

    def test_warning_says_where_modules_stay_when_restore_fails(self):
        model = self._meta_module()
        flaky = FlakyOOM(1)

        def to(t, *args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory while moving back")

        with mock.patch.object(torch.Tensor, "cpu", lambda t: torch.zeros(t.shape)):
            with mock.patch.object(torch.Tensor, "to", to), warnings.catch_warnings(record=True) as w:
                self.assertEqual(torch.cuda.safe_run(flaky, max_cuda_retries=0)(model), "ok")
        message = str(w[0].message)
        self.assertIn(
            "the modules Linear moved to cpu; could not move them all back: Linear stays on cpu (OutOfMemoryError: CUDA out of memory while moving back)",  # noqa: B950
            message,
        )
        self.assertEqual({p.device.type for p in model.parameters()}, {"cpu"})

    def test_cpu_module_not_moved(self):
        model = torch.nn.Linear(2, 2)
        flaky = FlakyOOM(1)
        with warnings.catch_warnings(record=True) as w:
            torch.cuda.safe_run(flaky, max_cuda_retries=0)(model, torch.ones(2))
        self.assertIn("(0 tensor argument(s) and no module moved to cpu)", str(w[0].message))

    def test_warning_points_at_caller(self):
        with warnings.catch_warnings(record=True) as w:
            torch.cuda.safe_run(FlakyOOM(1), max_cuda_retries=0)()
        self.assertEqual(w[0].filename, __file__)


class TestSafeRunCompile(TestCase):
    @parametrize("backend", ["eager", "aot_eager"])
    def test_compiled_wrapped_function(self, backend):
        torch._dynamo.reset()
        graphs = []

        def counting_backend(gm, example_inputs):
            graphs.append(gm)
            return torch._dynamo.lookup_backend(backend)(gm, example_inputs)

        fails = [True]

        @torch.compiler.disable
        def maybe_oom():
            if fails:
                fails.pop()
                raise torch.OutOfMemoryError("CUDA out of memory")

        def step(x):
            y = x.sin() + 1
            maybe_oom()
            return y * 2

        x = torch.arange(4.0)
        seen = []
        compiled = torch.compile(
            torch.cuda.safe_run(step, error_callback=lambda e, i: seen.append(i["next_action"])),
            backend=counting_backend,
        )
        self.assertEqual(compiled(x), step(x))
        self.assertEqual(seen, ["retry_autocast"])  # the wrapper ran eagerly and recovered
        self.assertGreater(len(graphs), 0)  # the wrapped function itself was compiled

    @parametrize("backend", ["eager", "aot_eager"])
    def test_safe_run_called_inside_compiled_function(self, backend):
        torch._dynamo.reset()

        def inner(x):
            return x.cos()

        def outer(x):
            return torch.cuda.safe_run(inner)(x) + 1

        x = torch.arange(4.0)
        self.assertEqual(torch.compile(outer, backend=backend)(x), outer(x))


@unittest.skipIf(not TEST_CUDA, "requires CUDA")
class TestSafeRunCUDA(TestCase):
    def test_real_oom_recovers_on_cpu_and_memory_returns_to_baseline(self):
        torch.cuda.clear_cache()
        baseline = torch.cuda.memory_allocated()
        model = torch.nn.Linear(64, 64, device="cuda")
        weight = model.weight
        total = torch.cuda.get_device_properties(0).total_memory
        seen = []

        def step(m, x):
            if x.is_cuda:
                torch.empty(total, dtype=torch.uint8, device="cuda")  # more than the device has
            return m(x).sum()

        with self.assertWarns(UserWarning):
            out = torch.cuda.safe_run(step, error_callback=lambda e, i: seen.append(i["next_action"]))(
                model, torch.ones(8, 64, device="cuda")
            )
        self.assertEqual(out.device.type, "cpu")
        self.assertEqual(seen, ["retry_autocast", "cpu_fallback"])
        self.assertIs(model.weight, weight)  # moved in place: an optimizer's references stay valid
        self.assertEqual(weight.device.type, "cuda")
        del model, weight
        torch.cuda.clear_cache()
        self.assertEqual(torch.cuda.memory_allocated(), baseline)

    def test_real_oom_retry_succeeds_once_memory_is_released(self):
        total = torch.cuda.get_device_properties(0).total_memory
        held = []

        def step():
            if not held:
                # A failed attempt that leaves a big tensor in its frame; only safe_run's cleanup frees it.
                big = torch.empty(total // 2, dtype=torch.uint8, device="cuda")
                held.append(weakref.ref(big))
                torch.empty(total, dtype=torch.uint8, device="cuda")
            return torch.empty(total // 2, dtype=torch.uint8, device="cuda").numel()

        self.assertEqual(torch.cuda.safe_run(step, fallback_to_cpu=False)(), total // 2)
        self.assertIsNone(held[0]())
        torch.cuda.clear_cache()


instantiate_parametrized_tests(TestSafeRunValidation)
instantiate_parametrized_tests(TestSafeRunOOM)
instantiate_parametrized_tests(TestSafeRunCPUFallback)
instantiate_parametrized_tests(TestSafeRunCompile)

if __name__ == "__main__":
    run_tests()
