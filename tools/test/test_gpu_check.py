"""tools/gpu_check.py, end to end on a machine without a GPU: the refusal, and the orchestration with fake probes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import snapshot

import _gpu_probes
import gpu_check
import patchset

GPU_CHECK = patchset.ROOT / "tools" / "gpu_check.py"
OVERLAY_FILE = "torch/utils/retry.py"

FAKE_PROBES = textwrap.dedent(f"""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {str(patchset.ROOT / "tools")!r})
    from _gpu_probes import Probe

    def ok():
        measured = {{"per_call_us": 1.5, "devices": [{{"free_mib": 3.0}}]}}
        return {{"status": "pass", "summary": "fine", "measured": measured}}

    def fails():
        return {{"status": "fail", "summary": "the behaviour is broken", "measured": {{"contexts": [0, 1]}}}}

    def crashes():
        raise ValueError("boom in the probe")

    def aborts():
        print("about to abort", flush=True)
        os.abort()

    def hangs():
        Path(os.environ["FAKE_MARKER"]).write_text(str(os.getpid()))
        time.sleep(600)

    def sees_patch_set():
        linked = (Path(os.environ["FAKE_SITE"]) / {OVERLAY_FILE!r}).is_symlink()
        status = "pass" if linked else "fail"
        return {{"status": status, "summary": "patch set installed", "measured": {{"linked": linked}}}}

    PROBES = [
        Probe("ok", "no context left on GPU 0", "a figure", ok, 60),
        Probe("fails", "timings kept across a stream switch", "a broken behaviour", fails, 60),
        Probe("crashes", "the probe | runs", "an exception", crashes, 60),
        Probe("aborts", "the process lives", "a dead process", aborts, 60),
        Probe("hangs", "", "a hang", hangs, float(os.environ.get("FAKE_HANG_TIMEOUT", "3")), "benchmark"),
        Probe("sees_patch_set", "", "develop mode during the probes", sees_patch_set, 60),
    ]
""")


def run_check(site, tmp_path, *args, hang_timeout="3", wait=True):
    probes = tmp_path / "fake_probes.py"
    probes.write_text(FAKE_PROBES)
    env = dict(
        os.environ,
        PYTHONPATH=str(site),
        FAKE_SITE=str(site),
        FAKE_MARKER=str(tmp_path / "hanging"),
        FAKE_HANG_TIMEOUT=hang_timeout,
    )
    cmd = [
        sys.executable,
        str(GPU_CHECK),
        "--out",
        str(tmp_path / "out"),
        "--fake-gpu",
        "--probes-module",
        str(probes),
        "--tests-command",
        f"{sys.executable} -c 'import sys; sys.exit(0)'",
        *args,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err, json.loads((tmp_path / "out" / "report.json").read_text())


def test_refuses_in_seconds_without_a_gpu(tmp_path):
    # CUDA_VISIBLE_DEVICES="": also refuses where a CUDA torch and a GPU are present.
    t = time.monotonic()
    r = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
        timeout=300,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - t
    assert r.returncode == 2, r.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "refused" and report["exit_code"] == 2
    assert report["reason"].startswith("refused: ") and (
        "not a CUDA build" in report["reason"] or "no GPU" in report["reason"]
    )
    assert report["reason"] in (tmp_path / "report.md").read_text()
    assert report["reason"] in r.stderr
    assert report["install"] is None and report["probes"] == []  # nothing was installed or run
    assert elapsed < 240, elapsed  # seconds (torch's import), never the run's 8 minutes


@pytest.mark.parametrize(
    "env, reason",
    [
        (
            {"executable": "/py", "torch_error": "ModuleNotFoundError: No module named 'torch'"},
            "no usable torch for /py",
        ),
        ({"torch": "2.13.0+cpu", "cuda_build": None}, "torch 2.13.0+cpu is not a CUDA build"),
        (
            {
                "torch": "2.11.0+cu130",
                "cuda_build": "13.0",
                "available": False,
                "devices": [],
                "nvidia_smi": "x",
                "warnings": ["CUDA initialization: The NVIDIA driver on your system is too old (found version 12020)."],
            },
            "driver on your system is too old",
        ),
        (
            {"torch": "2.11.0+cu130", "cuda_build": "13.0", "available": False, "CUDA_VISIBLE_DEVICES": ""},
            "CUDA_VISIBLE_DEVICES=''",
        ),
        (
            {
                "torch": "2.11.0+cu130",
                "cuda_build": "13.0",
                "available": True,
                "devices": [{"index": 0}],
                "driver_cuda_version": 12080,
            },
            "driver supports CUDA 12.8, older than the CUDA 13.0",
        ),
    ],
    ids=["no_torch", "cpu_build", "old_driver", "no_visible_device", "old_driver_major"],
)
def test_refusal_names_the_reason(env, reason):
    assert reason in gpu_check.refusal(env)


def test_refusal_none_with_a_gpu():
    env = {
        "torch": "2.11.0+cu130",
        "cuda_build": "13.0",
        "available": True,
        "devices": [{"index": 0}],
        "driver_cuda_version": 13010,
    }
    assert gpu_check.refusal(env) is None


def test_require_gpu_only_checks(tmp_path):
    r = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--require-gpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "error: refused: " in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []  # no report, nothing installed
    r = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--require-gpu", "--fake-gpu"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "cuda:0 fake GPU (sm_90, 1024 MiB)" in r.stdout, r.stderr


def test_isolated_probes_report_and_restore(torch_tree, tmp_path):
    before = snapshot(torch_tree)
    rc, out, report = run_check(torch_tree, tmp_path)
    assert rc == 1, out
    assert report["status"] == "fail" and report["environment"]["fake_gpu"] is True
    probes = {p["name"]: p for p in report["probes"]}
    assert list(probes) == ["ok", "fails", "crashes", "aborts", "hangs", "sees_patch_set"]
    assert probes["ok"]["status"] == "pass" and probes["ok"]["measured"]["per_call_us"] == 1.5
    assert probes["ok"]["checks"] == "no context left on GPU 0" and probes["ok"]["duration_s"] >= 0
    assert probes["hangs"]["checks"] == "" and "finding" not in probes["ok"]
    assert probes["fails"]["status"] == "fail" and probes["fails"]["measured"] == {"contexts": [0, 1]}
    assert probes["crashes"]["status"] == "error" and "ValueError: boom in the probe" in probes["crashes"]["error"]
    assert probes["aborts"]["status"] == "error" and "died" in probes["aborts"]["summary"]
    assert "about to abort" in probes["aborts"]["error"]
    assert probes["hangs"]["status"] == "error" and "timed out after 3 s" in probes["hangs"]["summary"]
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "hanging").read_text()), 0)  # killed, not left running
    assert probes["sees_patch_set"]["status"] == "pass"  # the probes ran with the patch set installed
    assert report["tests"]["status"] == "pass" and report["tests"]["exit_code"] == 0
    assert report["install"]["status"] == "installed" and report["restore"]["status"] == "restored"
    assert snapshot(torch_tree) == before
    md = (tmp_path / "out" / "report.md").read_text()
    for name in probes:
        assert f"### {name}" in md
    assert "| ok (probe) | no context left on GPU 0 | pass | fine |" in md
    assert "| hangs (benchmark) | - | error |" in md
    assert "| crashes (probe) | the probe \\| runs | error |" in md and "- per_call_us: 1.5" in md and "boom in the probe" in md
    assert report["reason"] == "failed: probes ['fails', 'crashes', 'aborts', 'hangs']"
    assert "Probes: 2 pass, 1 fail, 3 error. Tests: pass" in md


def test_passing_run_exits_zero(torch_tree, tmp_path):
    rc, out, report = run_check(torch_tree, tmp_path, "--only", "ok,sees_patch_set")
    assert rc == 0, out
    assert report["status"] == "pass" and [p["name"] for p in report["probes"]] == ["ok", "sees_patch_set"]


def test_failing_tests_fail_the_run(torch_tree, tmp_path):
    probes = tmp_path / "fake_probes.py"
    probes.write_text(FAKE_PROBES)
    r = subprocess.run(
        [
            sys.executable,
            str(GPU_CHECK),
            "--out",
            str(tmp_path / "out"),
            "--fake-gpu",
            "--probes-module",
            str(probes),
            "--only",
            "ok",
            "--tests-command",
            f"{sys.executable} -c 'print(\"1 failed\"); raise SystemExit(1)'",
        ],
        env=dict(os.environ, PYTHONPATH=str(torch_tree)),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 1, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tests"]["status"] == "fail" and "1 failed" in report["tests"]["output_tail"]


def test_sigterm_mid_probe_restores_and_still_reports(torch_tree, tmp_path):
    before = snapshot(torch_tree)
    proc = run_check(torch_tree, tmp_path, "--only", "ok,hangs", hang_timeout="300", wait=False)
    deadline = time.monotonic() + 200
    while not (tmp_path / "hanging").exists() or not (tmp_path / "hanging").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "interrupted" and report["reason"] == "interrupted by SIGTERM"
    assert [p["name"] for p in report["probes"]] == ["ok"]
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "hanging").read_text()), 0)
    assert snapshot(torch_tree) == before


def test_install_refusal_is_reported(torch_tree, tmp_path):
    (torch_tree / "torch" / "cuda" / "__init__.py").write_bytes(b"# another release's file\n")
    before = snapshot(torch_tree)
    rc, out, report = run_check(torch_tree, tmp_path)
    assert rc == 2, out
    assert report["install"]["status"] == "refused" and "torch/cuda/__init__.py" in report["install"]["message"]
    assert report["reason"].startswith("refused: the patch set cannot be installed")
    assert report["probes"] == [] and snapshot(torch_tree) == before


def test_junit_summary_counts_cuda_cases(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="test_x.TestMemCUDA" name="test_a_cuda"/>'
        '<testcase classname="test_x.TestMemCPU" name="test_a_cpu"/>'
        '<testcase classname="test_x.TestMemCUDA" name="test_b_cuda"><skipped message="no"/></testcase>'
        '<testcase classname="test_x.T" name="test_c"><failure message="AssertionError: 1 != 2&#10;more"/></testcase>'
        "</testsuite></testsuites>"
    )
    s = gpu_check.junit_summary(xml)
    assert (s["tests"], s["passed"], s["failed"], s["skipped"], s["cuda_cases_run"]) == (4, 2, 1, 1, 1)
    assert s["failures"] == ["test_x.T::test_c: AssertionError: 1 != 2"]


def test_real_probe_set_covers_the_gpu_behaviours():
    probes = gpu_check.load_probes(gpu_check.PROBES_MODULE)  # as the probe processes load it
    assert [p.name for p in probes] == [p.name for p in _gpu_probes.PROBES]
    assert len({p.name for p in probes}) == len(probes)
    names = {p.name for p in probes}
    behaviours = {
        "device_context_exit",
        "snapshot_from_thread",
        "stream_switch",
        "graph_capture",
        "free_memory_guard",
        "fork_poisoning",
        "cpu_fallback_device",
        "oom_classification",
        "telemetry_per_call",
        "bf16_per_device",
    }
    benchmarks = {"rehearse_peak", "get_best_device", "safe_run_oom_recovery", "clear_cache"}
    assert behaviours | benchmarks <= names
    # Each probe says in words which behaviour passing shows: the report's "checks" column.
    for p in probes:
        assert p.checks and p.checks != p.what and len(p.checks) <= 100, p
    assert len({p.checks for p in probes}) == len(probes)
    # Every probe fits in the run's budget on its own, and all of them leave time for the tests.
    assert sum(p.timeout_s for p in probes) < 8 * 60 * 3
    assert all(p.timeout_s <= 150 for p in probes)
