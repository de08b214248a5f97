"""The README's API tour runs as written against the installed wheel."""

import re
import subprocess
import sys

import pytest

import patchset

BLOCKS = re.findall(r"```python\n(.*?)```", (patchset.ROOT / "README.md").read_text(), re.S)


def test_readme_has_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    r = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd="/", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
