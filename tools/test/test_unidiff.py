"""tools/unidiff.py: the strict patch engine behind apply and the wheel build."""

import difflib

import pytest
from hypothesis import given, settings, strategies as st

import unidiff


def _diff(old: bytes, new: bytes, path: str = "torch/x.py", n: int = 3) -> bytes:
    lines = difflib.unified_diff(
        old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True), f"a/{path}", f"b/{path}", n=n
    )
    return "".join(lines).encode()


def test_roundtrip_simple():
    old = b"".join(b"line %d\n" % i for i in range(20))
    new = old.replace(b"line 5\n", b"line five\n").replace(b"line 15\n", b"")
    (fp,) = unidiff.parse(_diff(old, new))
    assert fp.path == "torch/x.py"
    assert len(fp.hunks) == 2
    assert unidiff.apply_file_patch(old, fp) == new
    assert unidiff.apply_file_patch(new, fp.reversed()) == old


def test_hunk_found_at_an_offset():
    old = b"".join(b"line %d\n" % i for i in range(20))
    new = old.replace(b"line 10\n", b"line ten\n")
    (fp,) = unidiff.parse(_diff(old, new))
    shifted = b"new header\n" * 7 + old
    assert unidiff.apply_file_patch(shifted, fp) == b"new header\n" * 7 + new


def test_mismatch_names_path_and_hunk():
    old = b"".join(b"line %d\n" % i for i in range(20))
    new = old.replace(b"line 2\n", b"two\n").replace(b"line 17\n", b"seventeen\n")
    (fp,) = unidiff.parse(_diff(old, new))
    with pytest.raises(unidiff.HunkError, match=r"torch/x.py: hunk #2 \(@@ -15,6 \+15,6 @@\) does not match"):
        unidiff.apply_file_patch(old.replace(b"line 16\n", b"line 16 edited\n"), fp)


def test_no_newline_at_end_of_file():
    old, new = b"a\nb\nc", b"a\nB\nc"
    text = b"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n\\ No newline at end of file\n"
    (fp,) = unidiff.parse(text)
    assert unidiff.apply_file_patch(old, fp) == new
    assert unidiff.apply_file_patch(new, fp.reversed()) == old


def test_crlf_preserved():
    old = b"a\r\nb\r\nc\r\n"
    text = b"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\r\n-b\r\n+B\r\n c\r\n"
    (fp,) = unidiff.parse(text)
    assert unidiff.apply_file_patch(old, fp) == b"a\r\nB\r\nc\r\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (b"hello\n", "not a unified diff"),
        (b"--- /dev/null\n+++ b/torch/new.py\n@@ -0,0 +1 @@\n+x\n", "may only modify existing files"),
        (b"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n", "truncated"),
        (b"--- a/f\n+++ b/f\n@@ nonsense @@\n", "malformed hunk header"),
        (b"--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n?b\n", "unexpected line"),
        (b"--- a/f\nfoo\n", "without a '\\+\\+\\+' line"),
    ],
)
def test_malformed(text, message):
    with pytest.raises(ValueError, match=message):
        unidiff.parse(text, source="p.patch")


_lines = st.lists(st.sampled_from([b"a\n", b"b\n", b"c\n", b"def f():\n", b"    pass\n", b"\n"]), max_size=30)


@settings(max_examples=200, deadline=None)
@given(old=_lines, new=_lines, n=st.integers(0, 4))
def test_difflib_roundtrip(old, new, n):
    old_b, new_b = b"".join(old), b"".join(new)
    if old_b == new_b:
        return
    text = _diff(old_b, new_b, n=n)
    (fp,) = unidiff.parse(text)
    assert unidiff.apply_file_patch(old_b, fp) == new_b
    assert unidiff.apply_file_patch(new_b, fp.reversed()) == old_b
