"""tools/stack.py claims every file exactly once; tools/check.py's public-API rules mirror test_public_bindings."""

import types

import pytest

import check
import stack


def test_every_file_of_the_patch_set_belongs_to_one_pr():
    groups = stack.assign()
    owned = [rel for files in groups.values() for rel in files]
    assert sorted(owned) == sorted(stack.inventory())
    assert groups["device"], "the first PR of the stack is on main"


@pytest.mark.parametrize(
    ("rel", "pr"),
    [
        ("torch_overlay/torch/_accelerator/_best.py", "device"),
        ("patches/0003-accelerator-x.patch", "device"),
        ("torch_overlay/torch/cuda/_memory_guard.py", "memory"),
        ("test/test_cuda_safe_run.py", "memory"),
        ("patches/0005-amp-defaults.patch", "amp"),
        ("test/test_amp_defaults.py", "amp"),
        ("torch_overlay/torch/utils/timeout.py", "timeout-retry"),
        ("test/test_utils_retry.py", "timeout-retry"),
        ("torch_overlay/torch/utils/telemetry/__init__.py", "telemetry"),
        ("docs/source/torch.utils.dashboard.rst", "telemetry"),
        ("torch_overlay/torch/utils/_dashboard_page.py", "telemetry"),
        ("test/test_utils_dashboard.py", "telemetry"),
        ("torch_overlay/torch/amp/_defaults.py", "amp"),
        ("patches/0005-dynamo-autocast-defaults.patch", "amp"),
        ("torch_overlay/torch/_accelerator/_device_context.py", "device"),
        ("test/test_accelerator_best_device.py", "device"),
        ("test/test_cuda_memory.py", "memory"),
        ("torch_overlay/torch/utils/dry_run.py", "tensorize"),
        ("test/test_utils_auto_tensorize.py", "tensorize"),
        ("torch_overlay/torch/utils/_patch_numpy.py", "tensorize"),
        ("patches/0008-as-tensor-doc.patch", "tensorize"),
    ],
)
def test_components_being_built_land_in_their_pr(rel, pr):
    assert stack.assign([rel]) == {p.name: [rel] if p.name == pr else [] for p in stack.STACK}


def test_a_file_outside_every_pr_is_named():
    with pytest.raises(stack.StackError, match=r"^torch_overlay/torch/utils/misc\.py belongs to no PR of the upstream stack"):
        stack.assign(["torch_overlay/torch/utils/misc.py"])


def test_a_stray_file_in_test_is_named(monkeypatch, tmp_path):
    """Everything under test/ lands in a PyTorch checkout, so a leftover file is an error, not ignored."""
    import patchset

    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_utils_dashboard.py.bak").write_text("")
    monkeypatch.setattr(patchset, "ROOT", tmp_path)
    monkeypatch.setattr(patchset, "TESTS", tmp_path / "test")
    for attr in ("OVERLAY", "DOCS", "PATCHES"):
        monkeypatch.setattr(patchset, attr, tmp_path / "absent")
    assert stack.inventory() == ["test/test_utils_dashboard.py.bak"]
    with pytest.raises(stack.StackError, match=r"^test/test_utils_dashboard\.py\.bak belongs to no PR"):
        stack.assign()


def test_a_file_claimed_twice_is_named():
    twice = [stack.PR("a", "A", ("test/*",)), stack.PR("b", "B", ("test/test_x*",))]
    with pytest.raises(stack.StackError, match=r"test/test_x\.py is claimed by several PRs \(a, b\)"):
        stack.assign(["test/test_x.py"], twice)


def test_commit_message_is_pytorch_style():
    msg = next(pr for pr in stack.STACK if pr.name == "device").message(["test/test_accelerator_device.py"])
    title, blank, *body = msg.splitlines()
    assert title.startswith("[accelerator] ") and blank == ""
    assert "Test Plan:" in body and "    python test/test_accelerator_device.py" in body


def _module(name="torch.fake"):
    mod = types.ModuleType(name)

    def good():
        """Do it.

        Example::

            >>> good()
        """

    def leaked():
        """Example:: nothing"""

    def _private():
        pass

    for fn in (good, leaked, _private):
        fn.__module__ = name
        setattr(mod, fn.__name__, fn)
    mod.OrderedDict = __import__("collections").OrderedDict  # imported: not this module's
    mod.types = types  # imported module
    mod.__all__ = ["good"]
    return mod


def test_public_api_conforming_module_passes():
    mod = _module()
    del mod.leaked
    assert check.check_public_names(mod) == []


def test_public_api_leak_is_reported():
    assert check.check_public_names(_module()) == [
        "torch.fake.leaked looks public (no leading underscore, defined in torch.fake) but is not in "
        "torch.fake.__all__: add it to __all__ or rename it to _leaked"
    ]


def test_public_api_wrong_module_and_missing_example_are_reported():
    mod = _module()
    del mod.leaked
    mod.good.__module__ = "torch.fake._impl"
    mod.good.__doc__ = "Do it."
    assert check.check_public_names(mod) == [
        "torch.fake.good.__module__ is 'torch.fake._impl', expected 'torch.fake': "
        "set good.__module__ = 'torch.fake' or define it in torch.fake",
        "torch.fake.good has no docstring with an 'Example::' block",
    ]


def test_public_api_missing_all_and_dangling_names():
    mod = _module()
    del mod.leaked
    mod.__all__ = ["good", "gone"]
    assert check.check_public_names(mod) == ["torch.fake.__all__ names 'gone', which does not exist"]
    del mod.__all__
    assert check.check_public_names(mod) == ["torch.fake has no __all__"]


def test_only_names_a_patch_adds_are_checked_in_upstream_modules():
    mod = _module()
    assert check.check_public_names(mod, only={"good"}) == []


def _add_to_amp_all(base_wheel, name):
    """A file patch adding ``name`` to torch.amp.__all__, as a component's patch would."""
    import difflib
    import zipfile

    import unidiff

    with zipfile.ZipFile(base_wheel) as zf:
        before = zf.read("torch/amp/__init__.py").decode()
    after = before.replace('    "custom_fwd",\n', f'    "custom_fwd",\n    "{name}",\n', 1)
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(True), after.splitlines(True), "a/torch/amp/__init__.py", "b/torch/amp/__init__.py"
        )
    )
    return unidiff.parse(diff.encode())[0]


@pytest.mark.parametrize(
    ("module", "doc", "expected"),
    [
        ("torch.amp", "Example::", []),
        ("torch.amp.autocast_mode", "Example::", []),  # a public submodule, as upstream allows
        (
            "torch.amp._defaults",
            "Example::",
            [
                "torch.amp.fake_default.__module__ is 'torch.amp._defaults', expected 'torch.amp': "
                "set fake_default.__module__ = 'torch.amp' or define it in torch.amp"
            ],
        ),
        ("torch.amp", "No example.", ["torch.amp.fake_default has no docstring with an 'Example::' block"]),
    ],
)
def test_names_a_patch_adds_to_an_upstream_module_are_checked(base_wheel, monkeypatch, module, doc, expected):
    import patchset
    import torch.amp

    fp = _add_to_amp_all(base_wheel, "fake_default")
    monkeypatch.setattr(patchset, "file_patches", lambda release=None: [(patchset.PATCHES / "0005-fake.patch", fp)])

    def fake_default():
        pass

    fake_default.__module__ = module
    fake_default.__doc__ = doc
    monkeypatch.setattr(torch.amp, "fake_default", fake_default, raising=False)
    monkeypatch.setattr(torch.amp, "__all__", [*torch.amp.__all__, "fake_default"])
    assert check.check_patched_public_names(base_wheel) == expected


def test_a_name_a_patch_adds_must_exist(base_wheel, monkeypatch):
    import patchset

    fp = _add_to_amp_all(base_wheel, "missing_default")
    monkeypatch.setattr(patchset, "file_patches", lambda release=None: [(patchset.PATCHES / "0005-fake.patch", fp)])
    assert check.check_patched_public_names(base_wheel) == ["torch.amp.__all__ names 'missing_default', which does not exist"]


def test_a_name_a_patch_adds_must_be_on_a_docs_page(base_wheel, monkeypatch):
    import patchset
    import torch.amp

    fp = _add_to_amp_all(base_wheel, "fake_default")
    monkeypatch.setattr(patchset, "file_patches", lambda release=None: [(patchset.PATCHES / "0005-fake.patch", fp)])
    monkeypatch.setattr(torch.amp, "__all__", [*torch.amp.__all__, "fake_default"])
    assert check.check_docs_installed(base_wheel) == [
        "torch.amp.fake_default (added by a patch) is on no docs page: list it in the autosummary of a page "
        "docs/source/torch.amp.<feature>.rst with '.. currentmodule:: torch.amp'"
    ]


def test_long_lines_are_reported_as_upstream_flake8_would(monkeypatch, tmp_path):
    import patchset

    (tmp_path / "test_long.py").write_text("x = 1\n" + "y = '" + "a" * 130 + "'\n" + "z = '" + "a" * 130 + "'  # noqa: B950\n")
    monkeypatch.setattr(patchset, "TESTS", tmp_path)
    monkeypatch.setattr(patchset, "ROOT", tmp_path)
    monkeypatch.setattr(patchset, "overlay_files", dict)
    assert check.check_line_length() == [
        "test_long.py:2: B950 line too long (136 > 120 characters); wrap it or add '# noqa: B950'"
    ]
