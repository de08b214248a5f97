"""The docs pages of docs/source/ are valid reStructuredText and their examples run."""

import re
import subprocess
import sys

import pytest

pytest.importorskip("docutils", reason="the docs page checks need docutils (requirements/test.txt)")

import docutils.core  # noqa: E402
import docutils.nodes  # noqa: E402
from docutils.parsers.rst import Directive, directives, roles  # noqa: E402

import check  # noqa: E402
import patchset  # noqa: E402


#: The module pages (index pages, which only link them, are tested below).
PAGES = sorted(check._docs_pages().values())
INDEXES = sorted(check.index_pages().values())


class _SphinxDirective(Directive):
    """Stands in for the Sphinx directives (autosummary, automodule, ...): accepts their arguments and options."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {
        "toctree": directives.unchanged,
        "nosignatures": directives.flag,
        "members": directives.unchanged,
        "maxdepth": directives.unchanged,
        "caption": directives.unchanged,
    }

    def run(self):
        return []


for _name in ("automodule", "currentmodule", "autosummary", "autofunction", "autoclass", "autodata", "toctree"):
    directives.register_directive(_name, _SphinxDirective)
for _role in ("func", "class", "mod", "meth", "attr", "data", "exc", "ref"):
    roles.register_generic_role(_role, docutils.nodes.literal)


def test_every_public_module_has_a_page():
    assert PAGES
    assert check.check_docs_pages() == []


def test_every_page_is_linked_from_an_index_page():
    """As in PyTorch's docs/source/index.rst: each module page is in a toctree, so the built docs reach it."""
    assert [p.name for p in INDEXES] == ["utilities.rst"]
    linked = [e for p in INDEXES for e in check.toctree_entries(p.read_text())]
    assert sorted(linked) == sorted(p.stem for p in PAGES)
    for index in INDEXES:
        docutils.core.publish_doctree(
            index.read_text(), source_path=str(index), settings_overrides={"halt_level": 2, "report_level": 2}
        )


def test_a_page_outside_every_index_is_named(monkeypatch, tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n    torch.utils.a\n    gone\n")
    (tmp_path / "source" / "torch.utils.a.rst").write_text(".. currentmodule:: torch.utils.a\n")
    (tmp_path / "source" / "torch.utils.b.rst").write_text(".. currentmodule:: torch.utils.b\n")
    monkeypatch.setattr(patchset, "DOCS", tmp_path)
    errors = [e for e in check.check_docs_pages() if "index" in e]
    assert errors == [
        "docs/source/index.rst: the toctree lists gone, which is no page of docs/source/",
        "docs/source/torch.utils.b.rst is linked from no index page: add it to a toctree of docs/source/index.rst",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_is_valid_rst(page):
    # halt_level 2: any warning (bad underline, unknown directive, broken markup) fails.
    docutils.core.publish_doctree(
        page.read_text(), source_path=str(page), settings_overrides={"halt_level": 2, "report_level": 2}
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_lists_its_module_api(page, base_wheel):
    assert check.check_docs_installed(base_wheel) == []
    assert check._autosummary_entries(page.read_text())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page):
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", page.read_text(), re.M)
    assert blocks, f"{page.name} has no '.. code-block:: python' example"
    for block in blocks:
        code = "\n".join(line[4:] for line in block.splitlines())
        r = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr


def test_generated_page_follows_the_pattern_and_validates():
    import docs_page

    text = docs_page.page("torch.utils.error_callback")
    assert text.startswith("torch.utils.error_callback\n==========================\n\n.. automodule:: torch.utils.error_callback\n")
    assert check._autosummary_entries(text) == ["error_callback", "register", "report"]
    docutils.core.publish_doctree(text, settings_overrides={"halt_level": 2, "report_level": 2})
    code = text.split(".. code-block:: python\n\n", 1)[1].split("\n\n", 1)[0]
    assert ">>>" not in code and "import torch.utils.error_callback" in code


def test_example_extraction_stops_at_a_skip_directive():
    import docs_page

    doc = """Do it.

    Example::

        >>> x = 1
        >>> # xdoctest: +SKIP("requires CUDA")
        >>> torch.ones(1, device="cuda")
        tensor([1.], device='cuda:0')
    """
    assert docs_page._example(doc) == ["x = 1"]
