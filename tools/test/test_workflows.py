"""The CI workflows run the commands the README and CONTRIBUTING document."""

import patchset


WORKFLOWS = patchset.ROOT / ".github" / "workflows"


def test_cpu_workflow_runs_the_readme_test_command():
    cpu = (WORKFLOWS / "cpu.yml").read_text()
    assert "python3 tools/run_tests.py" in (patchset.ROOT / "README.md").read_text()
    # One job per tested release; .ci/run runs both releases in one command.
    assert "run: python3 tools/run_tests.py --torch ${{ matrix.torch }}\n" in cpu
    assert 'torch: ["2.13.0", "2.14.1"]' in cpu
    assert "python3 tools/check.py --base-wheel build/base-$v/" in cpu and "for v in 2.11.0 2.15.0" in cpu
    assert "exec python3 tools/run_tests.py" in (patchset.ROOT / ".ci" / "run").read_text()
    assert "python3 tools/export_upstream.py" in cpu and "build/docs/html" in cpu


def test_gpu_workflow_patches_the_cuda_build():
    gpu = (WORKFLOWS / "gpu.yml").read_text()
    assert "torch==2.13.0 -d build/base-cuda" in gpu
    assert "python3 tools/run_tests.py --base-wheel build/base-cuda/" in gpu
    assert "torch.cuda.is_available()" in gpu


def test_contributing_documents_every_command():
    text = (patchset.ROOT / "CONTRIBUTING.md").read_text()
    for cmd in (
        "python3 tools/run_tests.py",
        "python3 tools/check.py",
        "python3 tools/export_upstream.py",
        "python3 tools/build_docs.py",
        "git am --keep-non-patch",
        "ghstack submit",
        "--base-wheel",
        "python3 tools/port_release.py",
        "--torch 2.14.1",
    ):
        assert cmd in text, cmd
