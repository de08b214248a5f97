"""RFC.md stays an upstream RFC a reviewer reads in 15 minutes; each PR of the stack has its design note."""

import re

import pytest

import patchset
import stack

RFC = patchset.ROOT / "RFC.md"
MAX_WORDS = 4000

#: The sections of the pytorch/rfcs template (RFC-0000-template.md), in order, plus our Measurements.
SECTIONS = [
    "Summary",
    "Motivation",
    "Proposed Implementation",
    "Measurements",
    "Metrics",
    "Drawbacks",
    "Alternatives",
    "Prior Art",
    "How we teach this",
    "Compatibility",
    "Unresolved questions",
    "Resolution",
]


def words(text: str) -> int:
    return len(text.split())


def test_rfc_is_at_most_4000_words():
    n = words(RFC.read_text(encoding="utf-8"))
    assert n <= MAX_WORDS, f"RFC.md has {n} words, over {MAX_WORDS}: move details into the PRs' design notes (docs/design/)"


def test_rfc_follows_the_template_sections_in_order():
    headings = [h.strip("* ") for h in re.findall(r"^## (.+)$", RFC.read_text(encoding="utf-8"), re.M)]
    assert headings == SECTIONS


def test_rfc_names_every_pr_of_the_stack_in_order():
    text = RFC.read_text(encoding="utf-8")
    positions = [text.find(f"`{pr.title}`") for pr in stack.STACK]
    assert -1 not in positions, [pr.title for pr, p in zip(stack.STACK, positions) if p == -1]
    assert positions == sorted(positions)


def test_rfc_keeps_an_empty_needs_gpu_table_until_a_gpu_run():
    section = RFC.read_text(encoding="utf-8").split("## **Measurements**", 1)[1].split("\n## ", 1)[0]
    assert "No GPU run has happened yet" in section
    assert "| what (needs GPU) |" in section


@pytest.mark.parametrize("pr", stack.STACK, ids=lambda pr: pr.name)
def test_each_pr_has_a_design_note_in_pytorch_pr_format(pr):
    title, body = stack.read_note(pr.note)
    assert title == pr.title
    assert body.startswith("Summary:\n")
    # Test Plan is last: the exporter appends the PR's test commands to it.
    assert body.rsplit("\nTest Plan:\n", 1)[1].count("\n## ") == 0
    msg = pr.message(["test/test_x.py"])
    assert msg.startswith(f"{pr.title}\n\nSummary:\n") and msg.endswith("\n    python test/test_x.py\n")


def test_a_note_without_summary_or_test_plan_is_refused(tmp_path):
    note = tmp_path / "x.md"
    note.write_text("[x] Title\n=========\n\nSome text.\n\nTest Plan:\n")
    with pytest.raises(stack.StackError, match="starts with a 'Summary:' line"):
        stack.read_note(note)
    note.write_text("[x] Title\n=========\n\nSummary:\n\nText.\n")
    with pytest.raises(stack.StackError, match="ends with a 'Test Plan:' section"):
        stack.read_note(note)
    with pytest.raises(stack.StackError, match="is missing"):
        stack.read_note(tmp_path / "absent.md")


def test_a_note_whose_title_differs_from_the_pr_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(stack, "NOTES", tmp_path)
    (tmp_path / "a.md").write_text("[a] Other\n=========\n\nSummary:\n\nText.\n\nTest Plan:\n")
    with pytest.raises(stack.StackError, match=r"title '\[a\] Other' is not the PR's title '\[a\] Title'"):
        stack.PR("a", "[a] Title", ("x",)).message([])
