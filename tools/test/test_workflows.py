"""The CI workflows run the commands the README and CONTRIBUTING document."""

import re

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


def _jobs(text):
    """``{job: its lines}`` of a workflow (two-space indented job ids under ``jobs:``), without a YAML parser."""
    jobs, current = {}, None
    for line in text.split("jobs:\n", 1)[1].splitlines():
        m = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if m:
            current = jobs.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in jobs.items()}


def _step_index(job, needle):
    steps = job.split("\n      - ")
    found = [i for i, s in enumerate(steps) if needle in s]
    assert found, needle
    return found[0]


def test_gpu_workflow_cuda13_cupy_and_gpu_required_before_tests():
    gpu = (WORKFLOWS / "gpu.yml").read_text()
    jobs = _jobs(gpu)
    assert set(jobs) == {"test-cuda", "test-preinstalled"}
    pip = jobs["test-cuda"]
    assert "TORCH_INDEX: https://download.pytorch.org/whl/cu130" in pip and "whl/cu128" not in gpu
    assert "cupy-cuda13x" in pip
    for name, job in jobs.items():
        check = _step_index(job, "tools/gpu_check.py --require-gpu")
        assert _step_index(job, "nvidia-smi") < check, name
        for later in ("tools/run_tests.py", "gpu_check.py --out gpu-report"):
            assert check < _step_index(job, later), (name, later)
        assert "actions/upload-artifact" in job and "path: gpu-report/" in job and "if: always()" in job


def test_gpu_workflow_never_runs_fork_pull_requests():
    gpu = (WORKFLOWS / "gpu.yml").read_text()
    jobs = _jobs(gpu)
    on = gpu.split("\njobs:", 1)[0]
    assert "pull_request_target" not in on  # would run fork code with this repository's secrets
    fork_guard = "github.event.pull_request.head.repo.full_name == github.repository"
    for name, job in jobs.items():
        condition = job.split("runs-on:", 1)[0]
        assert fork_guard in condition or "github.event_name == 'workflow_dispatch'" in condition, name
    assert "permissions:\n  contents: read" in gpu


def test_gpu_workflow_preinstalled_variant_uses_the_installed_torch():
    gpu = (WORKFLOWS / "gpu.yml").read_text()
    job = _jobs(gpu)["test-preinstalled"]
    assert "inputs.torch == 'preinstalled'" in job and "options: [pip, preinstalled]" in gpu
    assert "python3 tools/run_tests.py --installed" in job and "python3 tools/gpu_check.py --out gpu-report" in job
    assert "pip install" not in job and "setup-python" not in job  # nothing downloaded on such a runner


def test_readme_and_contributing_document_the_gpu_commands():
    for doc in ("README.md", "CONTRIBUTING.md"):
        text = (patchset.ROOT / doc).read_text()
        assert "python3 tools/run_tests.py --installed" in text, doc
        assert "python3 tools/gpu_check.py --out" in text, doc


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
