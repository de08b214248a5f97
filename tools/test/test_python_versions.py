"""The overlay and its tests run on Python 3.10, the oldest Python the supported torch releases support.

vermin (pinned in requirements/test.txt) finds any construct or standard-library API newer than 3.10
that is used without a version guard: ``asyncio.timeout``, ``asyncio.TaskGroup``, ``ExceptionGroup``,
``except*``, ``typing.Self``...  It cannot see ``exc.add_note(...)`` (it does not know ``exc`` is an
exception), so a second check requires every ``.add_note(`` call to sit under a version or ``hasattr``
guard.
"""

import ast
import importlib.metadata
import re
import subprocess
import sys

import patchset

TREES = ("torch_overlay", "test")
# Not --violations: with it, a file that does not parse (newer syntax) passes.
VERMIN_FLAGS = ("--no-config-file", "--target=3.10-", "--no-tips", "--pessimistic", "--eval-annotations")


def _vermin(*args, cwd):
    code = "import sys; from vermin import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *VERMIN_FLAGS, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_vermin_is_the_pinned_version():
    pins = re.findall(r"^vermin==(\S+)$", (patchset.ROOT / "requirements" / "test.txt").read_text(), re.MULTILINE)
    assert len(pins) == 1, "requirements/test.txt must pin vermin exactly once"
    assert importlib.metadata.version("vermin") == pins[0], "run: pip install -r requirements/test.txt"


def test_vermin_refuses_newer_constructs(tmp_path):
    # The flags above fail on what 3.10 lacks, so a clean run below means something.
    for source in (
        "import asyncio\nasync def f():\n    async with asyncio.timeout(1):\n        pass\n",
        "try:\n    pass\nexcept* ValueError:\n    pass\n",
        "from typing import Self\n",
        "def f[T](x: T) -> T:\n    return x\n",  # 3.12 syntax: fails to parse on 3.11 (--pessimistic)
    ):
        (tmp_path / "new.py").write_text(source)
        r = _vermin("new.py", cwd=tmp_path)
        assert r.returncode == 1, (source, r.stdout, r.stderr)
    (tmp_path / "new.py").write_text("import sys\nx: int | None = None\nmatch sys.argv:\n    case _:\n        pass\n")
    assert _vermin("new.py", cwd=tmp_path).returncode == 0


def test_overlay_and_tests_need_at_most_python_3_10():
    r = _vermin(*TREES, cwd=patchset.ROOT)
    if r.returncode != 0:
        lines = _vermin("--violations", "-vvv", *TREES, cwd=patchset.ROOT)  # names the lines
        raise AssertionError(r.stdout + r.stderr + lines.stdout + lines.stderr)


def _guarded(stack):
    for node in stack:
        if isinstance(node, (ast.If, ast.IfExp)):
            test = ast.unparse(node.test)
            if "version_info" in test or "add_note" in test:
                return True
    return False


def _unguarded_add_note_calls(tree):
    found = []

    def visit(node, stack):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_note"
            and not _guarded(stack)
        ):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, [*stack, node])

    visit(tree, [])
    return found


def test_add_note_is_guarded():
    # BaseException.add_note is new in 3.11: guard it (sys.version_info / hasattr) or look it up with getattr.
    offenders = []
    for path in sorted((patchset.ROOT / "torch_overlay").rglob("*.py")):
        for line in _unguarded_add_note_calls(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(patchset.ROOT)}:{line}")
    assert not offenders, offenders


def test_add_note_check_sees_an_unguarded_call():
    assert _unguarded_add_note_calls(ast.parse("def f(e):\n    e.add_note('x')\n")) == [2]
    guarded = "import sys\ndef f(e):\n    if sys.version_info >= (3, 11):\n        e.add_note('x')\n"
    assert _unguarded_add_note_calls(ast.parse(guarded)) == []
