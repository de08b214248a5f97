"""tools/check.py keeps the repository self-contained: no reference to files outside it or to internal planning."""

import pytest

import check
import patchset

# Built from pieces: this file is tracked too, and must pass the check it tests.
CONTRACT = "SP" + "EC"
NOTES = "PRIOR" + "-ART"
FOUND = "FIND" + "INGS"
SECTION = "\u00a7"
ISSUE = "iss" + "ue"
G, S, C = "G", "S", "C"  # finding id letters, kept apart from their numbers


@pytest.mark.parametrize(
    "line",
    [
        f"# as {CONTRACT} {SECTION}6 requires",
        f"see {CONTRACT}.md",
        f"cited in {NOTES}.md",
        f"{FOUND} C10: compile over a wrapper",
        f"reproduced in ../{'shared'}/notes.md",
        f"/{'work'}/shared/x.md",
        f"the contract's {SECTION} 5",
        f"fixed in {ISSUE} 6",
        f"({ISSUE}s 17 and 18)",
        f"see {ISSUE.title()} #7",
        f"the finding {S}4 shows",
        f"# {G}12: per call on CUDA",
        f"wrong without a word ({S}4–{S}7, {C}7, {C}8)",
        f"no context is created ({G}3, {G}4)",
        f"# Probe {G}12 + benchmark: per call on CUDA",
        f'    Probe("ok", "{G}1", "a figure", ok, 60),',
        f"a mixed-GPU machine is needed to show {G}15",
        f"def {G.lower()}15_bf16_per_device() -> dict:",
    ],
    ids=lambda s: "".join(c if c.isalnum() else "_" for c in s)[:40],
)
def test_internal_references_are_found(line, tmp_path):
    f = tmp_path / "note.md"
    f.write_text(f"first line\n{line}\n")
    errors = check.check_self_contained([f])
    assert len(errors) >= 1 and all(e.startswith(f"{f}:2: ") for e in errors), errors
    assert "cite the public source" in errors[0]


@pytest.mark.parametrize(
    "line",
    [
        "memory held by the traceback (pytorch/pytorch#27600, #18853)",
        "huggingface/accelerate#3684 and Lightning-AI/pytorch-lightning#19789",
        "late exceptions (python/cpython#139622; CPython issue 139622)",
        "ruff's `C4` and `SIM` rules",
        "importlib.util.find_spec(name)",
        "a prior art table; the specification of the format",
        "issues a warning after 3 attempts",
        "Python 3.10 (B1 of nothing: not a reference)",
        "16 GiB, 80 GB, a 5G modem, GPU0 and sm_90",
        "log1p, fp16, bf16_per_device, cuda:10",
    ],
    ids=lambda s: "".join(c if c.isalnum() else "_" for c in s)[:40],
)
def test_public_citations_and_ordinary_words_pass(line, tmp_path):
    f = tmp_path / "note.md"
    f.write_text(line + "\n")
    assert check.check_self_contained([f]) == []


def test_binary_files_are_skipped(tmp_path):
    f = tmp_path / "image.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + CONTRACT.encode())
    assert check.check_self_contained([f]) == []


def test_the_repository_is_self_contained():
    files = check.tracked_text_files()
    assert any(p.name == "RFC.md" for p in files) and all(p.is_relative_to(patchset.ROOT) for p in files)
    assert check.check_self_contained() == []
