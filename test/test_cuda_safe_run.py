# Owner(s): ["module: cuda"]

import asyncio
import contextlib
import types
import gc
import inspect
import pickle
import sys
import traceback
import unittest
import warnings
import weakref
from collections import namedtuple
from unittest import mock

import torch
import torch.utils.error_callback as ec
from torch.cuda._oom import is_oom
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


Pair = namedtuple("Pair", ["first", "second"])

# (name, error, the device that ran out), the messages as PyTorch and the libraries word them.
OOM_ERRORS = [
    ("caching_allocator", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 1 has a total capacity of 79.19 GiB"), "cuda:1"),  # noqa: B950
    ("caching_allocator_runtime", RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"), "cuda"),
    ("no_device_named", torch.OutOfMemoryError("out of memory"), "cuda:0"),
    ("cuda_error", RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"), "cuda"),  # noqa: B950
    ("accelerator_error", getattr(torch, "AcceleratorError", RuntimeError)("CUDA error: out of memory"), "cuda"),
    ("cuda_driver", RuntimeError("CUDA driver error: out of memory"), "cuda"),
    ("triton", RuntimeError("Triton Error [CUDA]: out of memory"), "cuda"),
    ("hip_error", RuntimeError("HIP error: out of memory"), "cuda"),
    ("hip_allocator", RuntimeError("HIP out of memory. Tried to allocate 2.00 GiB"), "cuda"),
    ("cublas", RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), "cuda"),
    ("cudnn_alloc", RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), "cuda"),
    ("cudnn9_device", RuntimeError("cuDNN Frontend error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"), "cuda"),  # noqa: B950
    ("cudnn9_host", RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED"), "cuda"),
    ("cudnn_not_supported", RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input."), "cuda"),  # noqa: B950
    ("cufft", RuntimeError("cuFFT error: CUFFT_ALLOC_FAILED"), "cuda"),
    ("cusolver", RuntimeError("cusolver error: CUSOLVER_STATUS_ALLOC_FAILED"), "cuda"),
    ("cusparse", RuntimeError("CUSPARSE_STATUS_ALLOC_FAILED when calling cusparseCreate"), "cuda"),
    ("mps", RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.00 GB)"), "mps"),
    ("xpu", torch.OutOfMemoryError("XPU out of memory. Tried to allocate 2.00 GiB"), "xpu"),
    ("hpu", RuntimeError("synStatus=26 [Generic failure] PT_DEVMEM Allocation failed"), "hpu"),
    ("cpu", RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1152921504606846976 bytes."), "cpu"),  # noqa: B950
]
if hasattr(torch, "AcceleratorError"):
    # Recognized by its type and message even where no anchored pattern matches.
    OOM_ERRORS.append(("accelerator_error_by_type", torch.AcceleratorError("out of memory"), "cuda:0"))

# Errors that share words with an out-of-memory error but are not one.
NEAR_MISSES = [
    ("cudnn_arch_mismatch", RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH")),
    ("cudnn_shape", RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED_SHAPE")),
    ("cudnn_not_supported_bare", RuntimeError("CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN")),
    ("cublas_longer_status", RuntimeError("CUBLAS_STATUS_ALLOC_FAILED_X")),
    ("illegal_access", getattr(torch, "AcceleratorError", RuntimeError)("CUDA error: an illegal memory access was encountered")),  # noqa: B950
    ("device_assert", RuntimeError("CUDA error: device-side assert triggered")),
    ("not_a_runtime_error", ValueError("CUDA out of memory")),
    ("key_error", KeyError("out of memory")),
    ("inside_a_word", RuntimeError("XCUDA out of memoryX")),
]


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


class FakeGPU:
    """The fake OOMs name CUDA; on this CPU-only machine the CPU's autocast plays CUDA's.

    clear_cache() is tested on its own; here a full gc.collect() per retry would only cost time.
    """

    real_clear_cache = False

    def setUp(self):
        super().setUp()
        warnings.simplefilter("always")
        self.autocast_devices = []

        def autocast(device, dtype):
            self.autocast_devices.append((device, dtype))
            return torch.autocast("cpu", dtype=dtype)

        patches = [("torch.cuda._safe_run._autocast", {"side_effect": autocast})]
        if not self.real_clear_cache:
            patches.append(("torch.cuda._safe_run.clear_cache", {"return_value": 0}))
        for target, kwargs in patches:
            patcher = mock.patch(target, **kwargs)
            setattr(self, target.rsplit(".", 1)[1].lstrip("_"), patcher.start())
            self.addCleanup(patcher.stop)


class TestSafeRunOOM(FakeGPU, TestCase):
    @parametrize("name, error, device", OOM_ERRORS, name_fn=lambda name, error, device: name)
    def test_recognized_out_of_memory_errors(self, name, error, device):
        from torch.cuda._safe_run import _failing_device

        self.assertTrue(is_oom(error))
        # Where the message names no device, the current CUDA device is the one that ran out.
        with mock.patch.multiple(torch.cuda, is_initialized=lambda: True, current_device=lambda: 0):
            self.assertEqual(_failing_device(error, len, (), {}), torch.device(device))
            flaky = FlakyOOM(1, error=lambda: error)
            fn, seen = collect(flaky, use_autocast_on_oom=False)
            if device == "cpu":  # A CPU that ran out has nothing cheaper to retry on
                with self.assertRaises(RuntimeError), warnings.catch_warnings(record=True) as w:
                    fn()
                self.assertEqual((len(flaky.calls), w), (1, []))
            else:
                self.assertEqual(fn(), "ok")
        expected = [(torch.device("cpu"), "give_up")] if device == "cpu" else [(torch.device(device), "retry")]
        self.assertEqual([(i["device"], i["next_action"]) for _, i in seen], expected)

    @parametrize("name, error", NEAR_MISSES, name_fn=lambda name, error: name)
    def test_near_misses_are_not_out_of_memory(self, name, error):
        self.assertFalse(is_oom(error))
        flaky = FlakyOOM(1, error=lambda: error)
        fn, seen = collect(flaky)
        with self.assertRaises(type(error)):
            fn()
        self.assertEqual(len(flaky.calls), 1)
        self.assertEqual([i["next_action"] for _, i in seen], ["give_up"])

    def test_failing_device_from_arguments(self):
        # The message names the kind of device; the argument of that kind gives the index.
        from torch.cuda._safe_run import _failing_device

        meta = torch.empty(1, device="meta")
        error = torch.OutOfMemoryError("out of memory")
        self.assertEqual(_failing_device(error, len, ({"x": meta},), {}), torch.device("meta"))
        cuda_like = mock.Mock(spec=torch.Tensor, device=torch.device("cuda", 3))
        with mock.patch("torch.utils._pytree.tree_leaves", return_value=[meta, cuda_like]):
            self.assertEqual(
                _failing_device(RuntimeError("CUDA error: out of memory"), len, (), {}), torch.device("cuda", 3)
            )

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
                "device": torch.device("cuda"),
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
        low = torch.get_autocast_dtype("cuda")  # what a CUDA device without native bf16 gets
        self.assertEqual(dtypes, [torch.float32, low])
        self.assertEqual(self.autocast_devices, [(torch.device("cuda"), low)])

    def test_every_stage_then_cpu_fallback(self):
        flaky = FlakyOOM(3)
        fn, seen = collect(flaky, max_cuda_retries=2)
        with self.assertWarnsRegex(UserWarning, "FlakyOOM ran out of memory on cuda 3 time"):
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
            [(1, "cuda", "retry_autocast"), (2, "cuda", "cpu_fallback"), (3, "cpu", "give_up")],
        )
        self.assertEqual(len(w), 1)  # the fallback warns even when it fails

    @unittest.skipIf(sys.version_info < (3, 11), "exception notes are new in Python 3.11")
    def test_give_up_note_lists_attempts(self):
        with self.assertRaises(torch.OutOfMemoryError) as cm, warnings.catch_warnings(record=True):
            torch.cuda.safe_run(FlakyOOM(10), max_cuda_retries=1)()
        self.assertExpectedInline(
            cm.exception.__notes__[-1],
            """torch.cuda.safe_run(FlakyOOM): attempt 1 on cuda: OutOfMemoryError, then retry_autocast; attempt 2 on cuda: OutOfMemoryError, then cpu_fallback; attempt 3 on cpu: OutOfMemoryError, then give_up""",  # noqa: B950
        )

    def test_plain_retry_where_autocast_is_unavailable(self):
        flaky = FlakyOOM(1, error=lambda: torch.OutOfMemoryError("out of memory"))
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
            """torch.cuda.safe_run: FlakyOOM ran out of memory on cuda 2 time(s), so it ran on the CPU (0 tensor argument(s) and no module moved to cpu); its outputs are on the CPU""",  # noqa: B950
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


    @parametrize("error", [KeyboardInterrupt, SystemExit])
    def test_callback_base_exception_propagates(self, error):
        def interrupt(exc, info):
            raise error

        with self.assertRaises(error):
            torch.cuda.safe_run(FlakyOOM(1), error_callback=interrupt)()


class TestSafeRunReleasesFailedAttempt(FakeGPU, TestCase):
    """pytorch#27600, #18853: the failed attempt's tensors must be gone before the retry starts."""

    real_clear_cache = True

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


class TestSafeRunCPUFallback(FakeGPU, TestCase):
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

    @parametrize("kind", ["function", "coroutine_function"])
    def test_containers_without_tensors_to_move_are_passed_as_is(self, kind):
        # The fallback used to rebuild every list and dict, so fn's writes to them were lost (ok [] {}).
        seen = []

        def body(x, results, stats, nested):
            seen.append((results, stats, nested, nested["log"]))
            if len(seen) < 3:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB")  # noqa: B950
            results.append(x.sum().item())
            stats["steps"] = 1
            nested["log"].append("done")
            nested["added"] = True  # nested holds a tensor to move: it is a new dict, this is lost
            return "ok"

        if kind == "function":
            fn = body
        else:

            async def fn(*args):
                return body(*args)

        results, stats, log = [], {}, []
        cpu_t = torch.ones(1)
        nested = {"log": log, "cpu": [cpu_t], "gpu": torch.empty(1, device="meta")}
        wrapped = torch.cuda.safe_run(fn)
        with mock.patch.object(torch.Tensor, "cpu", lambda t: torch.ones(t.shape)):
            with warnings.catch_warnings(record=True):
                args = (torch.ones(3), results, stats, nested)
                out = wrapped(*args) if kind == "function" else asyncio.run(wrapped(*args))
        self.assertEqual((out, results, stats, log), ("ok", [3.0], {"steps": 1}, ["done"]))
        fallback_results, fallback_stats, fallback_nested, fallback_log = seen[-1]
        self.assertIs(fallback_results, results)
        self.assertIs(fallback_stats, stats)
        self.assertIsNot(fallback_nested, nested)  # a container holding a tensor to move is rebuilt...
        self.assertIs(fallback_log, log)  # ...but not the containers in it that hold none
        self.assertIs(fallback_nested["cpu"][0], cpu_t)
        self.assertEqual(fallback_nested["gpu"].device.type, "cpu")
        self.assertNotIn("added", nested)


class TestSafeRunCompile(FakeGPU, TestCase):
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


class TestSafeRunFindings(FakeGPU, TestCase):
    def test_cpu_oom_propagates_without_ladder(self):
        # No autocast retry and no "ran on the CPU" warning when the CPU itself ran out.
        flaky = FlakyOOM(1, error=lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
        fn, seen = collect(flaky)
        with warnings.catch_warnings(record=True) as w, self.assertRaisesRegex(RuntimeError, "DefaultCPUAllocator"):
            fn(torch.ones(2))
        self.assertEqual((len(flaky.calls), w, self.autocast_devices), (1, [], []))
        self.assertEqual([(i["device"], i["next_action"]) for _, i in seen], [(torch.device("cpu"), "give_up")])

    @parametrize("dtype", [torch.float32, torch.float64], name_fn=lambda d: str(d).split(".")[1])
    def test_autocast_retry_restores_output_dtype(self, dtype):
        # The caller sees the dtype a normal call returns, whichever attempt succeeded.
        calls = []

        def fn(x, model):
            calls.append(1)
            if len(calls) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return {"y": x @ x, "ids": torch.arange(2), "z": [model(x)]}

        x, model = torch.ones(2, 2, dtype=dtype), torch.nn.Linear(2, 2, dtype=dtype)
        out = torch.cuda.safe_run(fn)(x, model)
        self.assertEqual([t.dtype for t in torch.utils._pytree.tree_leaves(out)], [dtype, torch.int64, dtype])
        calls.clear()
        kept = torch.cuda.safe_run(fn, restore_dtype=False)(x, model)
        # Autocast leaves float64 alone; float32 work comes out in the autocast dtype.
        low = self.autocast_devices[0][1] if dtype == torch.float32 else dtype
        self.assertEqual([t.dtype for t in torch.utils._pytree.tree_leaves(kept)], [low, torch.int64, low])

    def test_restore_dtype_without_floating_inputs(self):
        calls = []

        def fn(ids):
            calls.append(1)
            if len(calls) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory")
            w = torch.ones(2, 2)
            return w @ w + ids

        self.assertEqual(torch.cuda.safe_run(fn)(torch.arange(2)).dtype, torch.get_default_dtype())

    @parametrize("how", ["set_default_device", "device_context"])
    def test_cpu_fallback_runs_with_cpu_default_device(self, how):
        # "meta" stands in for the GPU that ran out; factories in fn must not allocate there.
        devices = []

        def fn():
            devices.append(torch.empty(1).device.type)
            if len(devices) < 3:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return torch.zeros(1)

        scope = torch.device("meta") if how == "device_context" else contextlib.nullcontext()
        if how == "set_default_device":
            torch.set_default_device("meta")
        try:
            with scope, warnings.catch_warnings(record=True):
                out = torch.cuda.safe_run(fn)()
                self.assertEqual(torch.empty(1).device.type, "meta")  # restored afterwards
        finally:
            torch.set_default_device(None)
        self.assertEqual(devices, ["meta", "meta", "cpu"])
        self.assertEqual(out.device.type, "cpu")

    def test_cpu_fallback_turns_off_the_failing_devices_autocast(self):
        from torch.cuda._safe_run import _on_cpu

        with torch.autocast("cpu", dtype=torch.bfloat16):
            with _on_cpu(torch.device("cpu")):
                self.assertFalse(torch.is_autocast_enabled("cpu"))
                self.assertEqual(torch.empty(1).device.type, "cpu")
            self.assertTrue(torch.is_autocast_enabled("cpu"))

    def test_autocast_dtype_read_on_the_failing_device(self):
        # bf16 support of the device that ran out (cuda:1 here), not of the current device (cuda:0).
        from torch.cuda._safe_run import _autocast_dtype

        asked = []

        def properties(index):
            asked.append(index)
            return types.SimpleNamespace(major=8 if index == 1 else 7)

        with mock.patch.multiple(torch.cuda, is_initialized=lambda: True, get_device_properties=properties):
            self.assertEqual(_autocast_dtype(torch.device("cuda", 1)), torch.bfloat16)
            self.assertEqual(_autocast_dtype(torch.device("cuda", 0)), torch.float16)
        self.assertEqual(asked, [1, 0])

    def test_retry_runs_under_autocast_of_the_failing_device(self):
        flaky = FlakyOOM(
            1, error=lambda: torch.OutOfMemoryError("CUDA out of memory. GPU 1 has a total capacity of 80 GiB")
        )
        with mock.patch("torch.cuda._safe_run._autocast_dtype", return_value=torch.bfloat16) as dtype_of:
            self.assertEqual(torch.cuda.safe_run(flaky)(), "ok")
        dtype_of.assert_called_once_with(torch.device("cuda", 1))
        self.assertEqual(self.autocast_devices, [(torch.device("cuda", 1), torch.bfloat16)])

    def test_kept_exception_does_not_keep_the_arguments(self):
        # The wrapper's own frame, which holds args, is cut off the kept exception's traceback.
        kept = []
        calls = []

        def step(x):
            calls.append(1)
            if len(calls) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return "ok"

        x = torch.ones(8)
        ref = weakref.ref(x)
        self.assertEqual(torch.cuda.safe_run(step, error_callback=lambda e, i: kept.append(e))(x), "ok")
        del x
        gc.collect()
        self.assertIsNone(ref())
        self.assertIn("in step", "".join(traceback.format_tb(kept[0].__traceback__)))  # the lines are kept

    @parametrize(
        "kwargs, error, message",
        [
            ({"max_cuda_retries": -1}, ValueError, r"safe_run\(\): max_cuda_retries must be >= 0, but got -1"),
            ({"max_cuda_retries": 1.5}, TypeError, r"max_cuda_retries must be an int, but got 1.5 of type float"),
            ({"max_cuda_retries": True}, TypeError, r"max_cuda_retries must be an int, but got True of type bool"),
            ({"error_callback": 5}, TypeError, r"error_callback must be callable or None, but got 5 of type int"),
            ({"restore_dtype": "yes"}, TypeError, r"restore_dtype must be a bool, but got 'yes' of type str"),
        ],
        name_fn=lambda kwargs, error, message: "_".join(f"{k}_{type(v).__name__}" for k, v in kwargs.items())
        + ("_negative" if kwargs.get("max_cuda_retries") == -1 else ""),
    )
    def test_conventions(self, kwargs, error, message):
        # The function, the value and what was expected.
        with self.assertRaisesRegex(error, message):
            torch.cuda.safe_run(**kwargs)


def sync_generator():
    yield 1


async def async_generator():
    yield 1


class TestSafeRunKinds(FakeGPU, TestCase):
    def _flaky_coroutine(self, failures, error=None):
        calls = []

        async def fn(x):
            calls.append(
                {"autocast": torch.is_autocast_enabled("cpu"), "default": torch.empty(1).device.type}
            )
            await asyncio.sleep(0)
            # The state holds across the coroutine's own awaits.
            calls[-1]["after_await"] = torch.is_autocast_enabled("cpu")
            if len(calls) <= failures:
                raise (error or torch.OutOfMemoryError)("CUDA out of memory")
            return x @ x

        return fn, calls

    def test_coroutine_function_wrapper(self):
        fn, calls = self._flaky_coroutine(1)
        wrapped, seen = collect(fn)
        self.assertTrue(inspect.iscoroutinefunction(wrapped))
        out = asyncio.run(wrapped(torch.ones(2, 2)))
        self.assertEqual(out, torch.full((2, 2), 2.0))
        self.assertEqual(out.dtype, torch.float32)  # restored after the autocast retry
        self.assertEqual([(c["autocast"], c["after_await"]) for c in calls], [(False, False), (True, True)])
        self.assertEqual([i["next_action"] for _, i in seen], ["retry_autocast"])

    def test_coroutine_cpu_fallback_and_give_up(self):
        fn, calls = self._flaky_coroutine(2)
        with warnings.catch_warnings(record=True) as w:
            asyncio.run(torch.cuda.safe_run(fn, max_cuda_retries=1)(torch.ones(2, 2)))
        self.assertEqual(len(w), 1)
        self.assertEqual([c["autocast"] for c in calls], [False, True, False])
        fn, calls = self._flaky_coroutine(10)
        with warnings.catch_warnings(record=True), self.assertRaises(torch.OutOfMemoryError):
            asyncio.run(torch.cuda.safe_run(fn, max_cuda_retries=1)(torch.ones(2, 2)))
        self.assertEqual(len(calls), 3)

    def test_coroutine_other_error_propagates(self):
        fn, calls = self._flaky_coroutine(1, error=ValueError)
        with self.assertRaises(ValueError):
            asyncio.run(torch.cuda.safe_run(fn)(torch.ones(2, 2)))
        self.assertEqual(len(calls), 1)

    def test_retry_state_does_not_leak_to_other_tasks(self):
        # Autocast and the CPU default device are thread-local: they must be entered only while the
        # recovering coroutine runs, never while another task of the same loop does.
        fn, calls = self._flaky_coroutine(2)
        observed = []

        async def other_task():
            for _ in range(20):
                observed.append((torch.is_autocast_enabled("cpu"), torch.empty(1).device.type))
                await asyncio.sleep(0)

        async def main():
            torch.set_default_device("meta")
            try:
                return await asyncio.gather(torch.cuda.safe_run(fn)(torch.ones(2, 2, device="cpu")), other_task())
            finally:
                torch.set_default_device(None)

        with warnings.catch_warnings(record=True):
            asyncio.run(main())
        self.assertEqual([(c["autocast"], c["default"]) for c in calls], [(False, "meta"), (True, "meta"), (False, "cpu")])
        self.assertEqual(set(observed), {(False, "meta")})

    def test_coroutine_cancelled_while_retrying(self):
        started = []

        async def fn():
            started.append(torch.is_autocast_enabled("cpu"))
            if len(started) == 1:
                raise torch.OutOfMemoryError("CUDA out of memory")
            await asyncio.sleep(3600)

        async def main():
            task = asyncio.ensure_future(torch.cuda.safe_run(fn)())
            while len(started) < 2:
                await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return torch.is_autocast_enabled("cpu")

        self.assertFalse(asyncio.run(main()))
        self.assertEqual(started, [False, True])

    @parametrize("fn", [sync_generator, async_generator], name_fn=lambda fn: fn.__name__)
    def test_generator_functions_refused_at_decoration(self, fn):
        kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
        with self.assertRaisesRegex(
            TypeError,
            rf"^safe_run\(\): {fn.__name__} is {kind} function; an attempt that already yielded items cannot be "
            r"retried, so wrap the work done for each item \(or the function consuming the generator\) with",
        ):
            torch.cuda.safe_run(fn)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_fullgraph_says_to_decorate_outside(self, backend):
        # Our message, not Dynamo's "marked as skipped ... Please file an issue".
        torch._dynamo.reset()

        @torch.cuda.safe_run
        def step(x):
            return x * 2

        def outer(x):
            return step(x) + 1

        message = r"apply torch.cuda.safe_run outside the compiled region, e.g. torch.cuda.safe_run\(torch.compile"
        for target in (step, outer):
            with self.assertRaisesRegex(torch._dynamo.exc.Unsupported, message):
                torch.compile(target, backend=backend, fullgraph=True)(torch.ones(2))
        # The advice works: the compiled function inside, the policy outside.
        wrapped = torch.cuda.safe_run(torch.compile(step.__wrapped__, backend=backend, fullgraph=True))
        self.assertEqual(wrapped(torch.ones(2)), torch.full((2,), 2.0))


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


    def test_real_oom_names_the_device_and_output_dtype_is_restored(self):
        # On a real device: the allocator's message gives cuda:<index>, the retry runs under that
        # device's autocast, and the output comes back in float32.
        total = torch.cuda.get_device_properties(0).total_memory
        seen, autocast = [], []

        def step(x):
            autocast.append(torch.is_autocast_enabled("cuda"))
            if len(autocast) == 1:
                torch.empty(total, dtype=torch.uint8, device="cuda")
            return x @ x

        out = torch.cuda.safe_run(step, error_callback=lambda e, i: seen.append((i["device"], i["next_action"])))(
            torch.ones(8, 8, device="cuda")
        )
        self.assertEqual(seen, [(torch.device("cuda", 0), "retry_autocast")])
        self.assertEqual(autocast, [False, True])
        self.assertEqual(out.dtype, torch.float32)
        torch.cuda.clear_cache()

    def test_real_oom_cpu_fallback_under_cuda_default_device(self):
        # Factories inside fn follow torch.device("cpu") on the fallback, not the default CUDA device.
        total = torch.cuda.get_device_properties(0).total_memory
        devices = []

        def step():
            devices.append(torch.empty(1).device.type)
            if len(devices) < 3:
                torch.empty(total, dtype=torch.uint8)  # on the default device: CUDA
            return torch.ones(1)

        torch.set_default_device("cuda")
        try:
            with warnings.catch_warnings(record=True):
                out = torch.cuda.safe_run(step)()
        finally:
            torch.set_default_device(None)
        self.assertEqual(devices, ["cuda", "cuda", "cpu"])
        self.assertEqual(out.device.type, "cpu")
        torch.cuda.clear_cache()


instantiate_parametrized_tests(TestSafeRunValidation)
instantiate_parametrized_tests(TestSafeRunOOM)
instantiate_parametrized_tests(TestSafeRunCPUFallback)
instantiate_parametrized_tests(TestSafeRunCompile)
instantiate_parametrized_tests(TestSafeRunFindings)
instantiate_parametrized_tests(TestSafeRunKinds)

if __name__ == "__main__":
    run_tests()
