# Owner(s): ["module: accelerator"]

import ctypes
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from unittest import mock

from hypothesis import given, settings, strategies as st

import torch
import torch._accelerator
from torch._accelerator import _device_probe, _nvml
from torch._accelerator._nvml import NvmlDevice
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
    run_tests,
    TEST_CUDA,
    TestCase,
)


GiB = 1 << 30
_ENV_VARS = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "LOCAL_RANK", "TORCH_BEST_DEVICE")


def gpu(n, free_gib, total_gib=80, name="NVIDIA H100 80GB HBM3", mig=None, error=None):
    """A fake NVML GPU on PCI bus ``n`` whose UUID starts with ``GPU-<n>``; ``mig``: its MIG instances if in MIG mode."""
    return NvmlDevice(
        uuid=f"GPU-{n}{n}{n}{n}{n}{n}{n}{n}-1111-2222-3333-444455556666",
        name=name,
        pci_bus_id=(0, n, 0),
        free=int(free_gib * GiB),
        total=int(total_gib * GiB),
        mig_devices=mig or (),
        mig_enabled=mig is not None,
        error=error,
    )


def cuda_uuids(*devices):
    """What ``torch.cuda.get_device_properties(i).uuid`` prints for these NVML devices, in CUDA's order."""
    return [d.uuid.split("-", 1)[1] for d in devices]


def mig(gpu_n, slot, free_gib, total_gib=10):
    return NvmlDevice(
        uuid=f"MIG-{gpu_n}{slot}{gpu_n}{slot}{gpu_n}{slot}{gpu_n}{slot}-aaaa-bbbb-cccc-ddddeeeeffff",
        name="",
        pci_bus_id=(0, gpu_n, 0),
        free=int(free_gib * GiB),
        total=int(total_gib * GiB),
    )


class FakeNvml:
    """A CUDA machine whose GPUs NVML describes as ``devices`` (in NVML's order).

    Patches the accelerator to ``cuda`` and :func:`torch._accelerator._nvml.query_devices`,
    sets the given environment (clearing every variable ``get_best_device`` reads),
    and makes the context-creating fallback fail loudly so a test notices if it is taken.
    """

    def __init__(self, devices, env=None, fallback=None):
        self.devices = devices
        self.env = {k: v for k, v in (env or {}).items() if v is not None}
        self.fallback = fallback
        self.fallback_calls = []

    def _get_memory_info(self, index):
        self.fallback_calls.append(index)
        if self.fallback is None:
            raise AssertionError("the context-creating fallback was taken")
        return self.fallback[index]

    def __enter__(self):
        count = len(self.fallback) if self.fallback is not None else len(self.devices or ())
        env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
        env.update(self.env)
        self._patches = [
            mock.patch.dict(os.environ, env, clear=True),
            mock.patch.object(
                torch.accelerator, "current_accelerator", lambda check_available=False: torch.device("cuda")
            ),
            mock.patch.object(torch.accelerator, "device_count", lambda: count),
            mock.patch.object(torch.accelerator, "get_memory_info", self._get_memory_info),
            mock.patch.object(_nvml, "query_devices", lambda: self.devices),
        ]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc_info):
        for p in reversed(self._patches):
            p.stop()


def best(**kwargs):
    return torch._accelerator.get_best_device(**kwargs)


class TestGetBestDevice(TestCase):
    def test_most_free_memory(self):
        with FakeNvml([gpu(0, 10), gpu(1, 70), gpu(2, 30)]):
            self.assertEqual(best(), torch.device("cuda", 1))

    def test_tie_goes_to_lowest_index(self):
        with FakeNvml([gpu(0, 10), gpu(1, 50), gpu(2, 50), gpu(3, 50)]):
            self.assertEqual(best(), torch.device("cuda", 1))

    def test_nvml_order_is_sorted_by_pci_bus(self):
        # NVML may enumerate in any order; CUDA numbers identical GPUs by PCI bus.
        with FakeNvml([gpu(2, 5), gpu(0, 70), gpu(1, 30)]):
            self.assertEqual(best(), torch.device("cuda", 0))
            self.assertEqual(
                [d.free // GiB for d in _device_probe.probe_devices()], [70, 30, 5]
            )

    @parametrize(
        "visible, expected",
        [
            ("2,0,1", 1),  # physical GPU 0 (most free) is cuda:1
            ("3,1", 0),  # physical 3 is cuda:0
            ("1", 0),
            ("1,2,9,0", 1),  # stops at the first index that does not exist: physical 0 is not visible
            ("GPU-2222,GPU-0000", 1),  # UUID prefixes
            ("GPU-33333333-1111-2222-3333-444455556666,GPU-00000000-1111-2222-3333-444455556666", 1),
        ],
        name_fn=lambda visible, expected: visible.replace(",", "_").replace("-", "")[:20],
    )
    def test_cuda_visible_devices(self, visible, expected):
        with FakeNvml([gpu(0, 70), gpu(1, 20), gpu(2, 30), gpu(3, 40)], {"CUDA_VISIBLE_DEVICES": visible}):
            self.assertEqual(best(), torch.device("cuda", expected))

    def test_cuda_visible_devices_counts(self):
        devices = [gpu(0, 70), gpu(1, 20), gpu(2, 30), gpu(3, 40)]
        for visible, count in [("", 0), ("0,0", 0), ("-1", 0), ("2,x,1", 1), ("GPU-9999", 0), ("GPU-1,GPU-2", 2)]:
            with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": visible}):
                self.assertEqual(len(_device_probe.probe_devices()), count, visible)

    def test_nothing_visible_gives_cpu(self):
        with FakeNvml([gpu(0, 70)], {"CUDA_VISIBLE_DEVICES": ""}):
            self.assertEqual(best(), torch.device("cpu"))

    def test_mig_uuids(self):
        devices = [gpu(0, 1, mig=(mig(0, 0, 2), mig(0, 1, 9))), gpu(1, 1, mig=(mig(1, 0, 5),))]
        for visible, free in [("MIG-0101", 9), ("MIG-1010", 5), ("MIG-0000,MIG-1010,MIG-0101", 2)]:
            with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": visible}):
                # A CUDA process enumerates a single MIG instance, the first one named.
                probed = _device_probe.probe_devices()
                self.assertEqual([d.free // GiB for d in probed], [free])
                self.assertEqual(best(), torch.device("cuda", 0))

    def test_mig_mode_without_instances_is_not_a_device(self):
        # CUDA sees no device on a GPU in MIG mode without instances; NVML's count is wrong.
        devices = [gpu(0, 70, mig=()), gpu(1, 40)]
        with FakeNvml(devices, fallback=[(40 * GiB, 80 * GiB)]) as fake:
            self.assertEqual(best(), torch.device("cuda", 0))
            self.assertEqual(fake.fallback_calls, [0])

    def test_mig_instance_readable_when_the_parent_is_not(self):
        # In unprivileged containers the parent GPU's memory is NO_PERMISSION.
        devices = [gpu(0, 0, 0, mig=(mig(0, 0, 3),), error="nvmlDeviceGetMemoryInfo: NVML_ERROR_NO_PERMISSION (4)")]
        with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": "MIG-0000"}):
            self.assertEqual(best(min_free_memory="2GiB", allow_cpu=False), torch.device("cuda", 0))

    def test_unreadable_device_is_skipped_not_the_nvml_path(self):
        # One device NVML may not read is never picked; the others still come from NVML.
        lost = "nvmlDeviceGetMemoryInfo: NVML_ERROR_GPU_IS_LOST (15)"
        devices = [gpu(0, 0, 0, error=lost), gpu(1, 30), gpu(2, 20)]
        with FakeNvml(devices) as fake:
            self.assertEqual(best(), torch.device("cuda", 1))
            with FakeNvml(devices, {"LOCAL_RANK": "0"}):
                self.assertEqual(best(), torch.device("cpu"))
            with self.assertRaises(RuntimeError) as cm:
                best(min_free_memory="40GiB", allow_cpu=False)
            self.assertEqual(fake.fallback_calls, [])
        self.assertIn(f"; cuda:0: unreadable: {lost}; cuda:1: 30.00 GiB free of 80.00 GiB (below 40.00 GiB)",
                      str(cm.exception))

    def test_unidentifiable_device_by_index_falls_back(self):
        # Without its PCI bus id the GPU's place in CUDA's order is unknown; by UUID it does not matter.
        devices = [NvmlDevice("", "", (-1, -1, 0), 0, 0, error="nvmlDeviceGetPciInfo_v3: NVML_ERROR_GPU_IS_LOST"),
                   gpu(1, 30)]
        with FakeNvml(devices, fallback=[(1 * GiB, 8 * GiB), (6 * GiB, 8 * GiB)]) as fake:
            self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual(fake.fallback_calls, [0, 1])
        with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": devices[1].uuid}) as fake:
            self.assertEqual(best(), torch.device("cuda", 0))
            self.assertEqual(fake.fallback_calls, [])

    def test_mig_by_index_falls_back(self):
        # CUDA sees a MIG-mode GPU as its instances; NVML's GPU memory would be wrong.
        devices = [gpu(0, 1, mig=(mig(0, 0, 2),)), gpu(1, 40)]
        with FakeNvml(devices, fallback=[(2 * GiB, 10 * GiB), (40 * GiB, 80 * GiB)]) as fake:
            self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual(fake.fallback_calls, [0, 1])

    def test_device_order(self):
        mixed = [gpu(0, 70, name="NVIDIA A100"), gpu(1, 20, name="NVIDIA H100")]
        with FakeNvml(mixed, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1,0"}) as fake:
            self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual(fake.fallback_calls, [])
        # FASTEST_FIRST over different models: only CUDA knows the order.  It is
        # read from CUDA's own UUIDs (CUDA initialized, no context), not by a context on every GPU.
        asked = []

        def uuids(initialize):
            asked.append(initialize)
            return cuda_uuids(mixed[1], mixed[0]) if initialize else None

        with FakeNvml(mixed) as fake, mock.patch.object(_device_probe, "_cuda_uuids", uuids):
            self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual([d.free // GiB for d in _device_probe.probe_devices()], [20, 70])
            self.assertEqual(fake.fallback_calls, [])
        self.assertEqual(asked, [False, True, False, True])
        # Without usable CUDA there, the context-creating fallback remains.
        with FakeNvml(mixed, fallback=[(20 * GiB, 80 * GiB), (70 * GiB, 80 * GiB)]) as fake:
            with mock.patch.object(_device_probe, "_cuda_uuids", lambda initialize: None):
                self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual(fake.fallback_calls, [0, 1])

    def test_uuids_in_cuda_visible_devices_need_no_order(self):
        # With UUIDs CUDA's order is the list's, CUDA_DEVICE_ORDER plays no part.
        mixed = [gpu(0, 70, name="NVIDIA A100"), gpu(1, 20, name="NVIDIA H100")]
        with FakeNvml(mixed, {"CUDA_VISIBLE_DEVICES": f"{mixed[1].uuid},{mixed[0].uuid}"}) as fake:
            self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual(fake.fallback_calls, [])

    def test_once_cuda_is_initialized_its_own_order_wins(self):
        # CUDA_VISIBLE_DEVICES changed after CUDA was initialized no longer applies;
        # CUDA's UUIDs give the exact mapping.
        devices = [gpu(0, 10), gpu(1, 70), gpu(2, 30)]
        initialized = lambda initialize: cuda_uuids(devices[2], devices[0])  # noqa: E731
        with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": "1"}), mock.patch.object(
            _device_probe, "_cuda_uuids", initialized
        ):
            self.assertEqual([d.free // GiB for d in _device_probe.probe_devices()], [30, 10])
            self.assertEqual(best(), torch.device("cuda", 0))

    def test_without_nvml_uses_get_memory_info(self):
        with FakeNvml(None, fallback=[(1 * GiB, 8 * GiB), (6 * GiB, 8 * GiB)]) as fake:
            self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual(fake.fallback_calls, [0, 1])

    def test_release_without_accelerator_get_memory_info(self):
        # torch.accelerator.get_memory_info is recent: the device module's mem_get_info otherwise.
        with FakeNvml(None, fallback=[(1 * GiB, 8 * GiB), (6 * GiB, 8 * GiB)]) as fake, mock.patch.object(
            torch.accelerator, "get_memory_info", None
        ), mock.patch.object(torch.cuda, "mem_get_info", fake._get_memory_info):
            self.assertEqual(best(), torch.device("cuda", 1))
            self.assertEqual(fake.fallback_calls, [0, 1])

    def test_other_accelerator_uses_get_memory_info(self):
        with FakeNvml(None, fallback=[(3 * GiB, 8 * GiB), (1 * GiB, 8 * GiB)]) as fake:
            with mock.patch.object(
                torch.accelerator, "current_accelerator", lambda check_available=False: torch.device("xpu")
            ), mock.patch.object(_nvml, "query_devices", side_effect=AssertionError("NVML asked for XPU")):
                self.assertEqual(best(), torch.device("xpu", 0))
            self.assertEqual(fake.fallback_calls, [0, 1])

    @parametrize("exclude", [(1,), ["cuda:1"], [torch.device("cuda", 1)], {1, 3}, (i for i in [1])])
    def test_exclude(self, exclude):
        with FakeNvml([gpu(0, 10), gpu(1, 70), gpu(2, 30), gpu(3, 20)]):
            self.assertEqual(best(exclude=exclude), torch.device("cuda", 2))

    def test_exclude_none_is_no_exclusion(self):
        with FakeNvml([gpu(0, 10), gpu(1, 70)]):
            self.assertEqual(best(exclude=None), torch.device("cuda", 1))

    def test_exclude_everything(self):
        with FakeNvml([gpu(0, 10), gpu(1, 70)]):
            self.assertEqual(best(exclude=[0, 1]), torch.device("cpu"))

    @parametrize(
        "min_free, expected",
        [
            (None, 1),
            (20 * GiB, 1),
            ("20GiB", 1),
            ("20 G", 1),
            ("60000 MB", 1),
            (0.5, 1),  # half of each device's own total
            (0.9, 0),  # 9 of 10 GiB free on cuda:0, 70 of 80 on cuda:1
            ("71GiB", "cpu"),
            (1.0, "cpu"),
        ],
        name_fn=lambda min_free, expected: str(min_free).replace(" ", "_").replace(".", "_"),
    )
    def test_min_free_memory(self, min_free, expected):
        with FakeNvml([gpu(0, 9, total_gib=10), gpu(1, 70)]):
            device = torch.device("cpu") if expected == "cpu" else torch.device("cuda", expected)
            self.assertEqual(best(min_free_memory=min_free), device)

    def test_no_device_qualifies_message(self):
        with FakeNvml([gpu(0, 1.5), gpu(1, 70), gpu(2, 4)]):
            with self.assertRaises(RuntimeError) as cm:
                best(min_free_memory="8GiB", exclude=[1], allow_cpu=False)
        self.assertExpectedInline(
            str(cm.exception),
            """get_best_device(): no cuda device qualifies (min_free_memory='8GiB', exclude=[1]) and allow_cpu=False; cuda:0: 1.50 GiB free of 80.00 GiB (below 8.00 GiB); cuda:1: 70.00 GiB free of 80.00 GiB (excluded); cuda:2: 4.00 GiB free of 80.00 GiB (below 8.00 GiB)""",  # noqa: B950
        )

    def test_no_accelerator_and_no_cpu(self):
        with FakeNvml([gpu(0, 1)], {"CUDA_VISIBLE_DEVICES": ""}):
            with self.assertRaisesRegex(RuntimeError, "no accelerator device is available and allow_cpu=False"):
                best(allow_cpu=False)

    @unittest.skipIf(torch.accelerator.is_available(), "needs a machine without an accelerator")
    def test_cpu_only_machine(self):
        self.assertEqual(best(), torch.device("cpu"))
        with self.assertRaisesRegex(RuntimeError, "no accelerator device is available"):
            best(allow_cpu=False)

    @parametrize(
        "kwargs, error, pattern",
        [
            ({"min_free_memory": "lots"}, ValueError, "min_free_memory must be"),
            ({"min_free_memory": 1.5}, ValueError, "fraction of total memory"),
            ({"min_free_memory": -1}, ValueError, "negative"),
            ({"min_free_memory": True}, TypeError, "min_free_memory must be"),
            ({"exclude": 1}, TypeError, "iterable of devices"),
            ({"exclude": "cuda:1"}, TypeError, "iterable of devices"),
            ({"exclude": 1.5}, TypeError, "get_best_device.*got 1.5 of type float"),
            ({"exclude": [1.0]}, TypeError, "got 1.0 of type float"),
            ({"exclude": [True]}, TypeError, "got True of type bool"),
            ({"exclude": [-1]}, ValueError, "negative index -1"),
            ({"exclude": ["gpu"]}, ValueError, "'gpu', which is not a device"),
            ({"exclude": ["cpu"]}, ValueError, "allow_cpu=False"),
            ({"exclude": ["xpu:0"]}, ValueError, "not a 'cuda' device"),
            ({"exclude": ["cuda"]}, ValueError, "name an index"),
            ({"allow_cpu": 0}, TypeError, "allow_cpu must be a bool"),
        ],
        name_fn=lambda kwargs, error, pattern: "_".join(f"{k}_{type(v).__name__}" for k, v in kwargs.items())
        + "_"
        + "".join(c for c in pattern if c.isalnum())[:12],
    )
    def test_bad_arguments(self, kwargs, error, pattern):
        with FakeNvml([gpu(0, 10)]):
            with self.assertRaisesRegex(error, pattern):
                best(**kwargs)


class TestGetBestDeviceProperties(TestCase):
    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.integers(min_value=0, max_value=80), min_size=1, max_size=8).flatmap(
            lambda free: st.tuples(
                st.just(free),
                st.permutations(range(len(free))).flatmap(
                    lambda perm: st.integers(min_value=1, max_value=len(perm)).map(lambda k: perm[:k])
                ),
                st.booleans(),
                st.sets(st.integers(min_value=0, max_value=7)),
            )
        )
    )
    def test_matches_a_reference_over_any_layout(self, case):
        free, visible, as_uuids, exclude = case
        # NVML lists the GPUs in reverse bus order; CUDA_VISIBLE_DEVICES names a permuted subset.
        devices = [gpu(n, f) for n, f in reversed(list(enumerate(free)))]
        value = ",".join(devices[-1 - i].uuid if as_uuids else str(i) for i in visible)
        with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": value}):
            probed = _device_probe.probe_devices()
            result = best(exclude=exclude)
        self.assertEqual([d.free for d in probed], [free[i] * GiB for i in visible])
        candidates = [(-free[p], ordinal) for ordinal, p in enumerate(visible) if ordinal not in exclude]
        expected = torch.device("cuda", min(candidates)[1]) if candidates else torch.device("cpu")
        self.assertEqual(result, expected)


class TestGetBestDeviceEnvironment(TestCase):
    @parametrize("value, expected", [("cuda:2", ("cuda", 2)), ("2", ("cuda", 2)), (" cpu ", ("cpu",))])
    def test_override_wins(self, value, expected):
        with FakeNvml([gpu(0, 70), gpu(1, 1), gpu(2, 1)], {"TORCH_BEST_DEVICE": value, "LOCAL_RANK": "1"}):
            # Wins over the free memory, exclusions, the threshold and LOCAL_RANK.
            self.assertEqual(best(exclude=[2], min_free_memory="1TiB"), torch.device(*expected))

    @parametrize(
        "value, error, pattern",
        [
            ("gpu0", ValueError, "'gpu0' is not a device"),
            ("cuda", ValueError, "must name an index"),
            ("cuda:5", ValueError, "out of range; this machine has 3 cuda devices"),
            ("xpu:0", ValueError, "does not name a device of the available accelerator \\(cuda\\)"),
        ],
        name_fn=lambda value, error, pattern: value.replace(":", "_"),
    )
    def test_bad_override(self, value, error, pattern):
        with FakeNvml([gpu(0, 70), gpu(1, 1), gpu(2, 1)], {"TORCH_BEST_DEVICE": value}):
            with self.assertRaisesRegex(error, pattern):
                best()

    def test_override_cpu_with_allow_cpu_false(self):
        with FakeNvml([gpu(0, 70)], {"TORCH_BEST_DEVICE": "cpu"}):
            with self.assertRaisesRegex(RuntimeError, "TORCH_BEST_DEVICE='cpu' asks for the CPU, but allow_cpu=False"):
                best(allow_cpu=False)

    def test_empty_override_is_ignored(self):
        with FakeNvml([gpu(0, 1), gpu(1, 70)], {"TORCH_BEST_DEVICE": ""}):
            self.assertEqual(best(), torch.device("cuda", 1))

    def test_local_rank_spreads_in_index_order(self):
        devices = [gpu(0, 10), gpu(1, 70), gpu(2, 30), gpu(3, 40)]
        for rank, expected in [(0, 0), (1, 2), (2, 3), (3, 0), (4, 2)]:
            with FakeNvml(devices, {"LOCAL_RANK": str(rank)}):
                # cuda:1 is excluded; the others are taken in index order, wrapping around.
                self.assertEqual(best(exclude=[1]), torch.device("cuda", expected), rank)

    def test_local_rank_indexes_first_then_checks_min_free_memory(self):
        # Ranks that filtered first could disagree (free memory changes between
        # their calls) and share a GPU; the rank's own device is fixed, then checked.
        devices = [gpu(0, 1), gpu(1, 70), gpu(2, 30)]
        for rank, expected in [(0, ("cpu",)), (1, ("cuda", 1)), (2, ("cuda", 2)), (3, ("cpu",))]:
            with FakeNvml(devices, {"LOCAL_RANK": str(rank)}):
                self.assertEqual(best(min_free_memory="8GiB"), torch.device(*expected), rank)
        with FakeNvml(devices, {"LOCAL_RANK": "3"}):
            with self.assertRaises(RuntimeError) as cm:
                best(min_free_memory="8GiB", allow_cpu=False)
        self.assertExpectedInline(
            str(cm.exception),
            """get_best_device(): the device of LOCAL_RANK=3 (cuda:0) (min_free_memory='8GiB', exclude=[]) \
and allow_cpu=False; cuda:0: 1.00 GiB free of 80.00 GiB (below 8.00 GiB)""",
        )

    @parametrize("value", ["-1", "one", ""])
    def test_bad_local_rank(self, value):
        with FakeNvml([gpu(0, 1)], {"LOCAL_RANK": value}):
            with self.assertRaisesRegex(ValueError, f"LOCAL_RANK={value!r} is not a non-negative integer"):
                best()


_LOCAL_RANK_WORKER = textwrap.dedent(
    """
    # One process per local rank, as torchrun starts them; the ranks then compare
    # their choices over gloo.
    import datetime, os, sys
    from unittest import mock
    import torch
    import torch.distributed as dist
    from torch._accelerator import _nvml
    init_file, rank = sys.argv[1], int(os.environ["LOCAL_RANK"])
    gpus = [_nvml.NvmlDevice(f"GPU-{i}", "H100", (0, i, 0), free << 30, 80 << 30)
            for i, free in enumerate([10, 70, 30])]
    with mock.patch.object(torch.accelerator, "current_accelerator",
                           lambda check_available=False: torch.device("cuda")), \\
         mock.patch.object(_nvml, "query_devices", lambda: gpus):
        device = torch._accelerator.get_best_device()
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    choices = [None, None]
    dist.all_gather_object(choices, str(device))
    dist.destroy_process_group()
    print(",".join(choices))
    """
)


class TestGetBestDeviceProcesses(TestCase):
    def test_local_rank_two_processes(self):
        env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
        with tempfile.TemporaryDirectory() as tmp:
            workers = [
                subprocess.Popen(
                    [sys.executable, "-c", _LOCAL_RANK_WORKER, os.path.join(tmp, "init")],
                    env=dict(env, LOCAL_RANK=str(rank)),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for rank in range(2)
            ]
            try:
                results = [w.communicate(timeout=120)[0].strip() for w in workers]
            finally:
                for w in workers:
                    w.kill()
                    w.wait()
        self.assertEqual([w.returncode for w in workers], [0, 0])
        self.assertEqual(results, ["cuda:0,cuda:1", "cuda:0,cuda:1"])

    def test_does_not_initialize_cuda_or_poison_fork(self):
        script = textwrap.dedent(
            """
            import os
            from unittest import mock
            import torch
            from torch._accelerator import _nvml
            gpus = [_nvml.NvmlDevice("GPU-0", "H100", (0, 0, 0), 1 << 30, 8 << 30),
                    _nvml.NvmlDevice("GPU-1", "H100", (0, 1, 0), 5 << 30, 8 << 30)]
            with mock.patch.object(torch.accelerator, "current_accelerator",
                                   lambda check_available=False: torch.device("cuda")), \\
                 mock.patch.object(_nvml, "query_devices", lambda: gpus):
                assert torch._accelerator.get_best_device() == torch.device("cuda", 1)
            assert not torch.cuda.is_initialized()
            assert not torch.cuda._is_in_bad_fork()
            pid = os.fork()
            if pid == 0:
                os._exit(0 if not torch.cuda._is_in_bad_fork() else 1)
            _, status = os.waitpid(pid, 0)
            assert status == 0, status
            print("ok")
            """
        )
        env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
        out = subprocess.check_output([sys.executable, "-c", script], text=True, env=env, timeout=120)
        self.assertEqual(out.strip(), "ok")


class FakeNvmlLibrary:
    """The NVML C functions ``_nvml`` calls, filling the ctypes arguments as libnvidia-ml does.

    ``gpus`` maps a UUID to ``(name, bus, free_gib, total_gib, mig)``, where ``mig``
    is ``None`` (no MIG support) or a list of slots, each ``None`` (empty) or
    ``(uuid, free_gib, total_gib)``.
    """

    def __init__(self, gpus):
        self.gpus = list(gpus.items())
        self.handles = {}
        self.shutdowns = 0

    def _handle(self, out, record):
        out._obj.value = 0x1000 + len(self.handles)
        self.handles[out._obj.value] = record
        return 0

    def nvmlInit_v2(self):
        return 0

    def nvmlShutdown(self):
        self.shutdowns += 1
        return 0

    def nvmlDeviceGetCount_v2(self, count):
        count._obj.value = len(self.gpus)
        return 0

    def nvmlDeviceGetHandleByIndex_v2(self, index, handle):
        uuid, (name, bus, free, total, mig) = self.gpus[index.value]
        return self._handle(handle, (uuid, name, bus, free, total, mig))

    def nvmlDeviceGetPciInfo_v3(self, handle, pci):
        pci._obj.domain, pci._obj.bus, pci._obj.device = 0, self.handles[handle.value][2], 0
        return 0

    def nvmlDeviceGetMemoryInfo(self, handle, memory):
        record = self.handles[handle.value]
        memory._obj.free, memory._obj.total = record[3] * GiB, record[4] * GiB
        memory._obj.used = memory._obj.total - memory._obj.free
        return 0

    def nvmlDeviceGetUUID(self, handle, buf, size):
        buf.value = self.handles[handle.value][0].encode()
        return 0

    def nvmlDeviceGetName(self, handle, buf, size):
        buf.value = self.handles[handle.value][1].encode()
        return 0

    def nvmlDeviceGetMigMode(self, handle, current, pending):
        mig = self.handles[handle.value][5]
        if mig is None:
            return 3  # NVML_ERROR_NOT_SUPPORTED
        current._obj.value = pending._obj.value = 1 if mig else 0
        return 0

    def nvmlDeviceGetMaxMigDeviceCount(self, handle, count):
        count._obj.value = len(self.handles[handle.value][5])
        return 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index, mig_handle):
        gpu = self.handles[handle.value]
        slot = gpu[5][index.value]
        if slot is None:
            return 6  # NVML_ERROR_NOT_FOUND
        uuid, free, total = slot
        return self._handle(mig_handle, (uuid, "", gpu[2], free, total, None))


class TestNvml(TestCase):
    def setUp(self):
        super().setUp()
        # Each test loads its own library: forget the process's NVML.
        patch = mock.patch.multiple(_nvml, _initialized_in=None, _library=None)
        patch.start()
        self.addCleanup(patch.stop)

    def test_reads_devices_through_ctypes(self):
        lib = FakeNvmlLibrary(
            {
                "GPU-b": ("NVIDIA A100", 0x41, 30, 40, None),
                "GPU-a": ("NVIDIA A100", 0x01, 12, 40, []),  # MIG-capable, MIG off
                "GPU-c": ("NVIDIA A100", 0x81, 1, 40, [("MIG-c0", 9, 10), None, ("MIG-c2", 4, 20)]),
            }
        )
        with mock.patch.object(ctypes, "CDLL", return_value=lib):
            devices = _nvml.query_devices()
        self.assertEqual(lib.shutdowns, 0)
        self.assertEqual(
            devices,
            [
                NvmlDevice("GPU-b", "NVIDIA A100", (0, 0x41, 0), 30 * GiB, 40 * GiB),
                NvmlDevice("GPU-a", "NVIDIA A100", (0, 0x01, 0), 12 * GiB, 40 * GiB),
                NvmlDevice(
                    "GPU-c",
                    "NVIDIA A100",
                    (0, 0x81, 0),
                    1 * GiB,
                    40 * GiB,
                    (
                        NvmlDevice("MIG-c0", "", (0, 0x81, 0), 9 * GiB, 10 * GiB),
                        NvmlDevice("MIG-c2", "", (0, 0x81, 0), 4 * GiB, 20 * GiB),
                    ),
                    mig_enabled=True,
                ),
            ],
        )
        with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": "MIG-c2,MIG-c0"}):
            self.assertEqual([d.free // GiB for d in _device_probe.probe_devices()], [4])
        with FakeNvml(devices, {"CUDA_VISIBLE_DEVICES": "1,0"}):
            # In PCI order GPU-a is 0 and GPU-b is 1.
            self.assertEqual(best(), torch.device("cuda", 0))

    def test_missing_library(self):
        with mock.patch.object(ctypes, "CDLL", side_effect=OSError("libnvidia-ml.so.1: cannot open")):
            self.assertIsNone(_nvml.query_devices())

    def test_failed_init(self):
        lib = mock.Mock()
        lib.nvmlInit_v2.return_value = 9  # NVML_ERROR_DRIVER_NOT_LOADED
        with mock.patch.object(ctypes, "CDLL", return_value=lib):
            self.assertIsNone(_nvml.query_devices())
            self.assertIsNone(_nvml.query_devices())
        self.assertEqual(lib.nvmlInit_v2.call_count, 2)  # tried again, in case the driver came up

    def test_failed_count(self):
        lib = mock.Mock()
        lib.nvmlInit_v2.return_value = 0
        lib.nvmlDeviceGetCount_v2.return_value = 999  # NVML_ERROR_UNKNOWN
        with mock.patch.object(ctypes, "CDLL", return_value=lib):
            self.assertIsNone(_nvml.query_devices())

    def test_initialized_once_per_process(self):
        # nvmlInit/nvmlShutdown per call costs up to seconds without persistence mode.
        lib = FakeNvmlLibrary({"GPU-a": ("NVIDIA A100", 0x01, 12, 40, None)})
        lib.nvmlInit_v2 = mock.Mock(return_value=0)
        with mock.patch.object(ctypes, "CDLL", return_value=lib) as cdll:
            for _ in range(3):
                self.assertEqual(len(_nvml.query_devices()), 1)
            self.assertEqual((cdll.call_count, lib.nvmlInit_v2.call_count, lib.shutdowns), (1, 1, 0))
            # A forked child initializes NVML for itself.
            with mock.patch.object(_nvml.os, "getpid", return_value=-1):
                _nvml.query_devices()
            self.assertEqual(lib.nvmlInit_v2.call_count, 2)

    @parametrize(
        "failing, error",
        [
            ("nvmlDeviceGetMemoryInfo", 4),  # NVML_ERROR_NO_PERMISSION on SLURM/cgroup nodes
            ("nvmlDeviceGetName", 15),  # NVML_ERROR_GPU_IS_LOST
            ("nvmlDeviceGetPciInfo_v3", 15),
            ("nvmlDeviceGetHandleByIndex_v2", 15),
        ],
        name_fn=lambda failing, error: failing,
    )
    def test_one_device_error_skips_that_device(self, failing, error):
        # An error on one GPU is recorded on it; the others are still read.
        lib = FakeNvmlLibrary(
            {"GPU-a": ("NVIDIA A100", 0x01, 12, 40, None), "GPU-b": ("NVIDIA A100", 0x02, 30, 40, None)}
        )
        real = getattr(lib, failing)
        calls = []

        def fail_on_first_gpu(*args):
            calls.append(args)
            return error if len(calls) == 1 else real(*args)

        setattr(lib, failing, fail_on_first_gpu)
        with mock.patch.object(ctypes, "CDLL", return_value=lib):
            first, second = _nvml.query_devices()
        self.assertIn(f"{failing}: {_nvml._ERROR_NAMES[error]} ({error})", first.error)
        self.assertEqual(second, NvmlDevice("GPU-b", "NVIDIA A100", (0, 0x02, 0), 30 * GiB, 40 * GiB))
        with FakeNvml([first, second], {"CUDA_VISIBLE_DEVICES": "GPU-b"}) as fake:
            self.assertEqual(best(), torch.device("cuda", 0))
        self.assertEqual(fake.fallback_calls, [])

    @unittest.skipIf(not TEST_CUDA, "requires CUDA")
    def test_real_nvml_matches_cuda(self):
        devices = _nvml.query_devices()
        self.assertIsNotNone(devices)
        self.assertEqual(len(_device_probe.probe_devices()), torch.cuda.device_count())
        for d in devices:
            self.assertTrue(d.uuid.startswith("GPU-"), d.uuid)
            self.assertLessEqual(d.free, d.total)


_CONTEXTS_SCRIPT = textwrap.dedent(
    """
    import ctypes
    import torch
    best = torch._accelerator.get_best_device()
    assert not torch.cuda.is_initialized(), "get_best_device initialized CUDA"
    torch.zeros(1, device=best)
    # cuDevicePrimaryCtxGetState reads a device's primary context without creating one.
    cuda = ctypes.CDLL("libcuda.so.1")
    active = []
    for i in range(torch.cuda.device_count()):
        dev, flags, state = ctypes.c_int(), ctypes.c_uint(), ctypes.c_int()
        assert cuda.cuDeviceGet(ctypes.byref(dev), i) == 0
        assert cuda.cuDevicePrimaryCtxGetState(dev, ctypes.byref(flags), ctypes.byref(state)) == 0
        if state.value:
            active.append(i)
    print(best.index, active)
    """
)


class TestGetBestDeviceCUDA(TestCase):
    @unittest.skipIf(not TEST_CUDA, "requires CUDA")
    def test_real_device(self):
        device = best()
        self.assertEqual(device.type, "cuda")
        self.assertLess(device.index, torch.cuda.device_count())
        free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
        # Other processes may allocate in between; the choice is at least plausible.
        self.assertGreater(free[device.index], 0)

    @unittest.skipIf(not TEST_CUDA, "requires CUDA")
    def test_context_only_on_chosen_device(self):
        env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
        out = subprocess.check_output([sys.executable, "-c", _CONTEXTS_SCRIPT], text=True, env=env, timeout=120)
        index, active = out.split(maxsplit=1)
        self.assertEqual(active.strip(), f"[{index}]")

    @unittest.skipIf(not TEST_CUDA, "requires CUDA")
    def test_cuda_visible_devices_real(self):
        env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS}
        env["CUDA_VISIBLE_DEVICES"] = str(torch.cuda.device_count() - 1)
        script = "import torch; print(torch._accelerator.get_best_device())"
        out = subprocess.check_output([sys.executable, "-c", script], text=True, env=env, timeout=120)
        self.assertEqual(out.strip(), "cuda:0")


instantiate_parametrized_tests(TestGetBestDevice)
instantiate_parametrized_tests(TestGetBestDeviceEnvironment)
instantiate_parametrized_tests(TestNvml)

if __name__ == "__main__":
    run_tests()
