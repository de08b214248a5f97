# Owner(s): ["module: amp (automated mixed precision)"]

import contextlib
import pickle
import types
import unittest
import warnings
from unittest import mock

import torch
from torch._dynamo.testing import CompileCounterWithBackend, EagerAndRecordGraphs
from torch.amp import _defaults
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


def _no_accelerator():
    return mock.patch.object(torch.accelerator, "current_accelerator", lambda check_available=False: None)


def _fake_accelerator(device_type, module):
    """Make ``device_type`` the current accelerator, served by the fake ``module``."""
    real_get_device_module = torch.get_device_module

    def get_device_module(device=None):
        if torch.device(device).type == device_type:
            return module
        return real_get_device_module(device)

    patches = [
        mock.patch.object(
            torch.accelerator, "current_accelerator", lambda check_available=False: torch.device(device_type)
        ),
        mock.patch.object(torch, "get_device_module", get_device_module),
        mock.patch.object(torch.accelerator, "device_count", lambda: 1),
        mock.patch.object(torch.accelerator, "current_device_index", lambda: 0),
    ]

    class _Both:
        def __enter__(self):
            for p in patches:
                p.start()

        def __exit__(self, *exc):
            for p in reversed(patches):
                p.stop()

    return _Both()


def _fake_cuda(bf16_native):
    """A CUDA GPU with (sm_90) or without (sm_70) native bfloat16; ``calls``: the devices asked about."""
    calls = []

    def get_device_properties(index):
        calls.append(index)
        return types.SimpleNamespace(major=9 if bf16_native else 7)

    module = types.SimpleNamespace(get_device_properties=get_device_properties)
    return _fake_accelerator("cuda", module), calls


def _mm(x, w):
    return torch.mm(x, w)


class TestAutocastDefaults(TestCase):
    def _state(self, ctx):
        return ctx.device, ctx.fast_dtype, ctx._enabled

    def test_no_arguments_without_accelerator_is_cpu_bfloat16(self):
        with _no_accelerator():
            ctx = torch.autocast()
        self.assertEqual(self._state(ctx), ("cpu", torch.bfloat16, True))
        x = torch.randn(4, 4)
        with ctx:
            self.assertTrue(torch.is_autocast_enabled("cpu"))
            self.assertEqual(torch.mm(x, x).dtype, torch.bfloat16)
        self.assertFalse(torch.is_autocast_enabled("cpu"))

    def test_torch_autocast_and_amp_autocast_are_the_same(self):
        self.assertIs(torch.autocast, torch.amp.autocast)
        with _no_accelerator():
            self.assertEqual(self._state(torch.amp.autocast()), self._state(torch.autocast()))

    def test_dtype_only(self):
        with _no_accelerator():
            ctx = torch.autocast(dtype=torch.float16)
        self.assertEqual(self._state(ctx), ("cpu", torch.float16, True))
        with ctx:
            self.assertEqual(torch.mm(torch.randn(2, 2), torch.randn(2, 2)).dtype, torch.float16)

    def test_enabled_false_without_device_type(self):
        with _no_accelerator():
            ctx = torch.autocast(enabled=False)
        self.assertEqual(self._state(ctx), ("cpu", torch.bfloat16, False))
        with torch.autocast("cpu"), ctx:
            self.assertFalse(torch.is_autocast_enabled("cpu"))
            self.assertEqual(torch.mm(torch.randn(2, 2), torch.randn(2, 2)).dtype, torch.float32)

    def test_decorator_without_arguments(self):
        @torch.autocast()
        def f(x):
            return torch.mm(x, x)

        with _no_accelerator():
            self.assertEqual(f(torch.randn(2, 2)).dtype, torch.bfloat16)

    def test_current_accelerator_with_native_bfloat16(self):
        fake, calls = _fake_cuda(bf16_native=True)
        with fake:
            self.assertEqual(_defaults.autocast_defaults(None, None), ("cuda", torch.bfloat16))
        self.assertEqual(calls, [0])

    def test_current_accelerator_without_native_bfloat16_is_float16(self):
        # Emulated bfloat16 (e.g. a V100) is slower than float16: only native support counts.
        fake, calls = _fake_cuda(bf16_native=False)
        with fake:
            self.assertEqual(_defaults.autocast_defaults(None, None), ("cuda", torch.float16))
        self.assertEqual(calls, [0])

    def test_explicit_dtype_is_kept_on_accelerator(self):
        fake, calls = _fake_cuda(bf16_native=True)
        with fake:
            self.assertEqual(_defaults.autocast_defaults(None, torch.float16), ("cuda", torch.float16))
        self.assertEqual(calls, [])

    def test_device_module_without_bf16_query_uses_autocast_default(self):
        with _fake_accelerator("mps", types.SimpleNamespace(is_available=lambda: True)):
            self.assertEqual(_defaults.autocast_defaults(None, None), ("mps", torch.get_autocast_dtype("mps")))

    def test_bf16_query_without_emulation_parameter(self):
        module = types.SimpleNamespace(is_available=lambda: True, is_bf16_supported=lambda: False)
        with _fake_accelerator("xpu", module):
            self.assertEqual(_defaults.autocast_defaults(None, None), ("xpu", torch.float16))

    def test_dtype_of_a_given_device(self):
        # Asked of the device given, not of the current one (a V100 next to an H100).
        fake, calls = _fake_cuda(bf16_native=True)
        with fake:
            self.assertEqual(_defaults.default_dtype("cuda", 3), torch.bfloat16)
        self.assertEqual(calls, [3])
        current = []

        @contextlib.contextmanager
        def device_index(index):
            current.append(index)
            yield

        module = types.SimpleNamespace(is_bf16_supported=lambda including_emulation=True: current == [1])
        with _fake_accelerator("xpu", module), mock.patch.object(torch.accelerator, "device_index", device_index):
            self.assertEqual(_defaults.default_dtype("xpu", 1), torch.bfloat16)
        self.assertEqual(current, [1])

    def test_rocm_is_bfloat16(self):
        fake, calls = _fake_cuda(bf16_native=False)
        with fake, mock.patch.object(torch.version, "hip", "6.4"):
            self.assertEqual(_defaults.default_dtype("cuda"), torch.bfloat16)
        self.assertEqual(calls, [])

    @parametrize("supported", [(torch.float16,), (torch.bfloat16, torch.float16)])
    def test_privateuse1_backend_declares_its_dtypes(self, supported):
        backend = types.SimpleNamespace(get_amp_supported_dtype=lambda: list(supported))
        with (
            mock.patch.object(torch._C, "_get_privateuse1_backend_name", lambda: "fakeamp"),
            mock.patch.object(torch, "fakeamp", backend, create=True),
        ):
            expected = torch.bfloat16 if torch.bfloat16 in supported else torch.float16
            self.assertEqual(_defaults.default_dtype("fakeamp"), expected)

    def test_explicit_device_type_keeps_its_default_dtype(self):
        # autocast("cuda") defaults to float16 even where bfloat16 is native: unchanged.
        fake, calls = _fake_cuda(bf16_native=True)
        with fake:
            self.assertEqual(_defaults.autocast_defaults("cuda", None), ("cuda", None))
            self.assertEqual(_defaults.autocast_defaults("cpu", None), ("cpu", None))
        self.assertEqual(calls, [])

    def test_unsupported_inferred_device_raises(self):
        with _fake_accelerator("meta", types.SimpleNamespace(is_available=lambda: True)):
            with self.assertRaisesRegex(RuntimeError, "unsupported autocast device_type 'meta'"):
                torch.autocast(dtype=torch.float16)


class TestAutocastUnchanged(TestCase):
    """Every call form that names a device type behaves exactly as in PyTorch 2.13.0."""

    @parametrize(
        "args, kwargs, expected",
        [
            (("cpu",), {}, ("cpu", torch.bfloat16, True)),
            ((), {"device_type": "cpu"}, ("cpu", torch.bfloat16, True)),
            (("cpu", torch.float16), {}, ("cpu", torch.float16, True)),
            (("cpu",), {"enabled": False}, ("cpu", torch.bfloat16, False)),
            (("cpu",), {"dtype": torch.float32, "enabled": False}, ("cpu", torch.float32, False)),
        ],
        name_fn=lambda args, kwargs, expected: "_".join(
            [*map(str, args), *(f"{k}_{v}" for k, v in kwargs.items())]
        ).replace(".", "_"),
    )
    def test_call_forms(self, args, kwargs, expected):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ctx = torch.autocast(*args, **kwargs)
        self.assertEqual(caught, [])
        self.assertEqual((ctx.device, ctx.fast_dtype, ctx._enabled), expected)

    def test_explicit_device_follows_set_autocast_dtype(self):
        prev = torch.get_autocast_dtype("cpu")
        torch.set_autocast_dtype("cpu", torch.float16)
        try:
            self.assertEqual(torch.autocast("cpu").fast_dtype, torch.float16)
        finally:
            torch.set_autocast_dtype("cpu", prev)

    def test_unsupported_dtype_warns_and_disables(self):
        with self.assertWarnsRegex(UserWarning, "In CPU autocast, but the target dtype is not supported"):
            ctx = torch.autocast("cpu", dtype=torch.float32)
        self.assertFalse(ctx._enabled)

    def test_torch_device_is_still_rejected(self):
        with self.assertRaises(ValueError) as cm:
            torch.autocast(torch.device("cpu"))
        self.assertExpectedInline(
            str(cm.exception), """Expected `device_type` of type `str`, got: `<class 'torch.device'>`"""
        )

    def test_invalid_device_type(self):
        with self.assertRaisesRegex(RuntimeError, "Invalid device string: 'not a real device'"):
            torch.autocast("not a real device")

    def test_cpu_amp_autocast(self):
        with self.assertWarnsRegex(FutureWarning, r"`torch.cpu.amp.autocast\(args...\)` is deprecated"):
            ctx = torch.cpu.amp.autocast()
        self.assertEqual((ctx.device, ctx.fast_dtype, ctx._enabled), ("cpu", torch.bfloat16, True))

    @unittest.skipIf(TEST_CUDA, "checks the warning of a machine without CUDA")
    def test_cuda_without_cuda_warns_and_disables(self):
        with self.assertWarnsRegex(UserWarning, "CUDA is not available or torch_xla is imported"):
            ctx = torch.autocast("cuda")
        self.assertEqual((ctx.device, ctx.fast_dtype, ctx._enabled), ("cuda", torch.float16, False))

    def test_torchscript_with_device_type(self):
        def f(x):
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                return torch.mm(x, x)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            f = torch.jit.script(f)

        self.assertEqual(f(torch.randn(2, 2)).dtype, torch.bfloat16)


class TestAutocastCompile(TestCase):
    def setUp(self):
        super().setUp()
        torch._dynamo.reset()

    def tearDown(self):
        torch._dynamo.reset()
        super().tearDown()

    @parametrize("backend", ["eager", "aot_eager"])
    @parametrize("dtype", [None, torch.float16])
    def test_no_device_type_traces_fullgraph(self, backend, dtype):
        def f(x, w):
            with torch.amp.autocast(dtype=dtype):
                return torch.mm(x, w).relu()

        x, w = torch.randn(4, 4), torch.randn(4, 4)
        counter = CompileCounterWithBackend(backend)
        out = torch.compile(f, backend=counter, fullgraph=True)(x, w)
        self.assertEqual(counter.frame_count, 1)
        self.assertEqual(out, f(x, w))
        self.assertEqual(out.dtype, dtype or torch.bfloat16)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_decorated_function_traces_fullgraph(self, backend):
        @torch.autocast()
        def f(x):
            return torch.mm(x, x)

        x = torch.randn(4, 4)
        out = torch.compile(f, backend=backend, fullgraph=True)(x)
        self.assertEqual(out, f(x))
        self.assertEqual(out.dtype, torch.bfloat16)

    @parametrize("backend", ["eager", "aot_eager"])
    def test_graph_break_inside_region(self, backend):
        # The region is re-entered after the break from the recorded defaults.
        def f(x):
            with torch.autocast():
                y = torch.mm(x, x)
                torch._dynamo.graph_break()
                return torch.mm(y, y)

        x = torch.randn(4, 4)
        counter = CompileCounterWithBackend(backend)
        out = torch.compile(f, backend=counter)(x)
        self.assertEqual(counter.frame_count, 2)
        self.assertEqual(out, f(x))
        self.assertEqual(out.dtype, torch.bfloat16)

    def test_export_no_device_type(self):
        class M(torch.nn.Module):
            def forward(self, x):
                with torch.autocast():
                    return torch.mm(x, x)

        x = torch.randn(4, 4)
        ep = torch.export.export(M(), (x,))
        self.assertEqual(ep.module()(x), M()(x))
        self.assertEqual(ep.module()(x).dtype, torch.bfloat16)

    def test_graph_records_resolved_defaults(self):
        def f(x):
            with torch.autocast():
                return torch.mm(x, x)

        backend = EagerAndRecordGraphs()
        with _no_accelerator():
            torch.compile(f, backend=backend, fullgraph=True)(torch.randn(2, 2))
        self.assertIn("_enter_autocast('cpu', torch.bfloat16, True, None)", backend.graphs[0].code)

    def test_explicit_device_graph_unchanged(self):
        def f(x):
            with torch.autocast("cpu"):
                return torch.mm(x, x)

        backend = EagerAndRecordGraphs()
        torch.compile(f, backend=backend, fullgraph=True)(torch.randn(2, 2))
        self.assertIn("_enter_autocast('cpu', None, True, None)", backend.graphs[0].code)


class TestGradScalerForAutocast(TestCase):
    def _for_autocast(self, *args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scaler = torch.amp.GradScaler.for_autocast(*args, **kwargs)
        self.assertEqual([str(w.message) for w in caught], [])
        return scaler

    def test_default_without_accelerator_is_disabled(self):
        # autocast() on the CPU is bfloat16, which needs no scaling.
        with _no_accelerator():
            scaler = self._for_autocast()
        self.assertFalse(scaler.is_enabled())
        self.assertEqual(scaler._device, "cpu")

    @parametrize("device_type", ["cpu", "cuda"])
    def test_bfloat16_is_disabled(self, device_type):
        self.assertFalse(self._for_autocast(device_type, torch.bfloat16).is_enabled())

    def test_cpu_float16_is_enabled(self):
        scaler = self._for_autocast("cpu", torch.float16, init_scale=8.0, growth_interval=3)
        self.assertTrue(scaler.is_enabled())
        self.assertEqual(scaler.get_scale(), 8.0)
        self.assertEqual(scaler.get_growth_interval(), 3)

    def test_enabled_false_is_honoured(self):
        self.assertFalse(self._for_autocast("cpu", torch.float16, enabled=False).is_enabled())

    def test_float32_is_disabled(self):
        self.assertFalse(self._for_autocast("cpu", torch.float32).is_enabled())

    @unittest.skipIf(TEST_CUDA, "checks a machine without CUDA")
    def test_cuda_without_cuda_is_disabled_silently(self):
        with self.assertWarnsRegex(UserWarning, "CUDA is not available.  Disabling"):
            self.assertFalse(torch.amp.GradScaler("cuda").is_enabled())
        for args in [("cuda",), ("cuda", torch.float16)]:
            scaler = self._for_autocast(*args)
            self.assertFalse(scaler.is_enabled())
            self.assertEqual(scaler._device, "cuda")

    def test_matches_autocast_on_accelerator(self):
        for bf16_native, enabled in [(True, False), (False, True)]:
            fake, _ = _fake_cuda(bf16_native)
            with (
                fake,
                mock.patch.object(_defaults, "has_grad_scaler", lambda device_type: True),
                mock.patch.object(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False),
            ):
                scaler = self._for_autocast()
            self.assertEqual((scaler._device, scaler.is_enabled()), ("cuda", enabled))

    def test_explicit_device_type_uses_its_autocast_dtype(self):
        # autocast("cuda") is float16, so its scaler is needed wherever CUDA is.
        with mock.patch.object(_defaults, "has_grad_scaler", lambda device_type: True):
            with mock.patch.object(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False):
                self.assertTrue(self._for_autocast("cuda").is_enabled())
            self.assertFalse(self._for_autocast("cpu").is_enabled())

    def test_returns_an_instance_of_the_subclass(self):
        class MyScaler(torch.amp.GradScaler):
            pass

        scaler = MyScaler.for_autocast("cpu", torch.float16)
        self.assertIs(type(scaler), MyScaler)
        self.assertTrue(scaler.is_enabled())

    @unittest.skipIf(not torch.distributed.is_available(), "requires torch.distributed")
    def test_fsdp_sharded_grad_scaler(self):
        # ShardedGradScaler keeps GradScaler's constructor, so for_autocast builds it too.
        import torch.distributed as dist
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        try:
            self.assertFalse(ShardedGradScaler.for_autocast("cpu").is_enabled())
            scaler = ShardedGradScaler.for_autocast("cpu", torch.float16)
            self.assertIs(type(scaler), ShardedGradScaler)
            p = torch.nn.Parameter(torch.ones(3))
            opt = torch.optim.SGD([p], lr=1.0)
            scaler.scale((p * float("inf")).sum()).backward()
            scaler.step(opt)
            scaler.update()
            self.assertTrue(scaler.last_step_skipped)
            self.assertEqual(p, torch.ones(3))
        finally:
            dist.destroy_process_group()

    def test_deprecated_subclass_without_device_argument(self):
        # torch.cuda.amp.GradScaler hard-codes its device: a clear TypeError, not a misplaced argument.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'device'"):
                torch.cpu.amp.GradScaler.for_autocast("cpu", torch.float16)

    def test_bad_arguments(self):
        with self.assertRaises(TypeError) as cm:
            torch.amp.GradScaler.for_autocast(torch.device("cpu"))
        self.assertExpectedInline(
            str(cm.exception),
            """for_autocast(): expected device_type to be a str such as 'cuda' or None, \
but got device(type='cpu') of type device""",
        )
        with self.assertRaises(TypeError) as cm:
            torch.amp.GradScaler.for_autocast("cpu", "float16")
        self.assertExpectedInline(
            str(cm.exception),
            """for_autocast(): expected dtype to be a torch.dtype or None, but got 'float16' of type str""",
        )
        with self.assertRaises(RuntimeError) as cm:
            torch.amp.GradScaler.for_autocast("meta")
        self.assertExpectedInline(
            str(cm.exception), """for_autocast(): autocast is not available for device_type 'meta'"""
        )

    # Needs the for_autocast_arguments version of patches/0005-amp-gradscaler-for-autocast.patch.
    def test_device_is_an_alias_of_device_type(self):
        scaler = self._for_autocast(device="cpu", dtype=torch.float16)
        self.assertEqual((scaler._device, scaler.is_enabled()), ("cpu", True))
        self.assertFalse(self._for_autocast(device="cpu").is_enabled())
        with self.assertRaises(TypeError) as cm:
            torch.amp.GradScaler.for_autocast("cpu", torch.float16, device="cpu")
        self.assertExpectedInline(
            str(cm.exception),
            """for_autocast(): got both device_type='cpu' and device='cpu'; \
pass one of them (device is an alias of device_type)""",
        )

    @parametrize("dtype", [torch.int8, torch.int32, torch.bool, torch.complex64], name_fn=lambda d: str(d)[6:])
    def test_non_floating_dtype_is_refused_not_disabled(self, dtype):
        with self.assertRaisesRegex(
            ValueError,
            rf"^for_autocast\(\): dtype={dtype} is not an autocast dtype; expected a floating-point low-precision "
            r"dtype such as torch.float16 or torch.bfloat16$",
        ):
            torch.amp.GradScaler.for_autocast("cpu", dtype)

    @parametrize("enabled", ["maybe", 1, None], name_fn=lambda e: type(e).__name__)
    def test_enabled_must_be_a_bool(self, enabled):
        with self.assertRaisesRegex(
            TypeError, rf"^for_autocast\(\): expected enabled to be a bool, but got {enabled!r} of type"
        ):
            torch.amp.GradScaler.for_autocast("cpu", torch.float16, enabled=enabled)

    def test_arguments_helper(self):
        self.assertEqual(
            _defaults.for_autocast_arguments("cpu", torch.float16, {"init_scale": 4.0}),
            {"init_scale": 4.0, "device": "cpu", "enabled": True},
        )
        self.assertEqual(
            _defaults.for_autocast_arguments(None, None, {"device": "cpu", "enabled": False}),
            {"device": "cpu", "enabled": False},
        )

    def test_has_grad_scaler(self):
        self.assertTrue(_defaults.has_grad_scaler("cpu"))
        self.assertEqual(_defaults.has_grad_scaler("cuda"), TEST_CUDA)


class TestGradScalerLastStepSkipped(TestCase):
    def _case(self, optimizer_kwargs=None, n_params=1):
        params = [torch.nn.Parameter(torch.ones(3)) for _ in range(n_params)]
        opt = torch.optim.Adam(params, lr=0.1, **(optimizer_kwargs or {}))
        return params, opt

    def _backward(self, scaler, params, bad):
        loss = sum((p * (float("inf") if bad else 1.0)).sum() for p in params)
        scaler.scale(loss).backward()

    def test_false_before_any_step(self):
        self.assertFalse(torch.amp.GradScaler("cpu").last_step_skipped)
        self.assertFalse(torch.amp.GradScaler("cpu", enabled=False).last_step_skipped)

    @parametrize("optimizer_kwargs", [{}, {"foreach": True}, {"fused": True}], name_fn=lambda kw: "_".join(kw) or "default")
    def test_skip_then_step(self, optimizer_kwargs):
        (p,), opt = self._case(optimizer_kwargs)
        scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
        before = p.detach().clone()

        self._backward(scaler, [p], bad=True)
        scaler.step(opt)
        self.assertTrue(scaler.last_step_skipped)
        scaler.update()
        self.assertTrue(scaler.last_step_skipped)
        self.assertEqual(p, before)
        self.assertEqual(scaler.get_scale(), 2.0)
        opt.zero_grad()

        self._backward(scaler, [p], bad=False)
        scaler.step(opt)
        scaler.update()
        self.assertFalse(scaler.last_step_skipped)
        self.assertNotEqual(p, before)

    def test_explicit_unscale_then_step(self):
        (p,), opt = self._case()
        scaler = torch.amp.GradScaler("cpu")
        self._backward(scaler, [p], bad=True)
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p], 1.0)
        scaler.step(opt)
        self.assertTrue(scaler.last_step_skipped)

    def test_disabled_scaler_never_skips(self):
        (p,), opt = self._case()
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        p.grad = torch.full_like(p, float("nan"))
        scaler.step(opt)
        self.assertFalse(scaler.last_step_skipped)
        self.assertTrue(p.isnan().all())

    def test_refers_to_the_last_step_of_several_optimizers(self):
        (p1,), opt1 = self._case()
        (p2,), opt2 = self._case()
        scaler = torch.amp.GradScaler("cpu")
        scaler.scale(p1.sum() + (p2 * float("inf")).sum()).backward()
        # opt1 is registered first: update() accumulates the other flags into its own.
        scaler.unscale_(opt1)
        scaler.step(opt2)
        self.assertTrue(scaler.last_step_skipped)
        scaler.step(opt1)
        self.assertFalse(scaler.last_step_skipped)
        scaler.update()
        self.assertFalse(scaler.last_step_skipped)

    def test_survives_pickling(self):
        (p,), opt = self._case()
        scaler = torch.amp.GradScaler("cpu")
        self._backward(scaler, [p], bad=True)
        scaler.step(opt)
        scaler.update()
        clone = pickle.loads(pickle.dumps(scaler))
        self.assertTrue(clone.last_step_skipped)
        self.assertEqual(clone.get_scale(), scaler.get_scale())

    def test_state_dict_unchanged(self):
        scaler = torch.amp.GradScaler("cpu")
        self.assertEqual(
            sorted(scaler.state_dict()), ["_growth_tracker", "backoff_factor", "growth_factor", "growth_interval", "scale"]
        )

    def test_scaler_unpickled_from_older_version(self):
        # A scaler pickled by PyTorch 2.13.0 has no flag in its __dict__.
        scaler = torch.amp.GradScaler("cpu")
        state = scaler.__getstate__()
        state.pop("_last_step_found_inf", None)
        old = torch.amp.GradScaler.__new__(torch.amp.GradScaler)
        old.__setstate__(state)
        self.assertFalse(old.last_step_skipped)


@unittest.skipIf(not TEST_CUDA, "requires CUDA")
class TestAmpDefaultsCUDA(TestCase):
    def test_autocast_defaults_to_cuda(self):
        ctx = torch.autocast()
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        self.assertEqual((ctx.device, ctx.fast_dtype), ("cuda", expected))
        x = torch.randn(8, 8, device="cuda")
        with ctx:
            self.assertEqual(torch.mm(x, x).dtype, expected)

    def test_explicit_cuda_keeps_float16(self):
        self.assertEqual(torch.autocast("cuda").fast_dtype, torch.float16)

    def test_float16_training_step_skips_on_inf(self):
        model = torch.nn.Linear(8, 8, device="cuda")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler.for_autocast("cuda", torch.float16)
        self.assertTrue(scaler.is_enabled())
        before = model.weight.detach().clone()
        x = torch.randn(4, 8, device="cuda")
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x).float().sum() * float("inf")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        self.assertTrue(scaler.last_step_skipped)
        self.assertEqual(model.weight, before)
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x).float().sum()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        self.assertFalse(scaler.last_step_skipped)

    def test_bfloat16_scaler_disabled(self):
        self.assertFalse(torch.amp.GradScaler.for_autocast("cuda", torch.bfloat16).is_enabled())

    @parametrize("backend", ["eager", "aot_eager", "inductor"])
    def test_compile_no_device_type(self, backend):
        def f(x):
            with torch.autocast():
                return torch.mm(x, x)

        x = torch.randn(8, 8, device="cuda")
        out = torch.compile(f, backend=backend, fullgraph=True)(x)
        self.assertEqual(out, f(x), atol=1e-2, rtol=1e-2)
        self.assertEqual(out.dtype, f(x).dtype)


instantiate_parametrized_tests(TestAutocastDefaults)
instantiate_parametrized_tests(TestAutocastUnchanged)
instantiate_parametrized_tests(TestAutocastCompile)
instantiate_parametrized_tests(TestGradScalerForAutocast)
instantiate_parametrized_tests(TestGradScalerLastStepSkipped)
instantiate_parametrized_tests(TestAmpDefaultsCUDA)


if __name__ == "__main__":
    run_tests()
