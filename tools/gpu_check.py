#!/usr/bin/env python3
"""Validate every GPU path of the patch set on this machine, with one command, and write a report.

    python3 tools/gpu_check.py --out DIR [--budget SECONDS] [--only NAME,...] [--no-tests] [--pytest-args "..."]
    python3 tools/gpu_check.py --require-gpu      # step 1 only: exit 2 unless a GPU is usable

1. Refuses at once (exit 2), still writing the report, when torch is missing, is
   not a CUDA build, or sees no GPU (driver too old, ``CUDA_VISIBLE_DEVICES``
   empty, no device): the reason is the report's first line.
2. Installs the patch set into the installed torch in develop mode (as
   ``tools/run_tests.py --installed`` does: no pip, no network) and restores that
   torch exactly at the end, also on failure, Ctrl-C or SIGTERM.
3. Runs the GPU probes and benchmarks of ``tools/_gpu_probes.py`` (one per GPU
   behaviour checked, each in its own process with a timeout, so a crash or a
   hang costs that probe only), then ``test/`` with pytest, where the
   ``TEST_CUDA`` / ``@onlyCUDA`` cases run.
4. Writes ``DIR/report.json`` (everything measured) and ``DIR/report.md`` (the
   same, for people), updated after every step; per-probe logs in ``DIR/logs/``.

Exit status: 0 every probe passed (or only reports figures) and the tests passed;
1 a probe failed, crashed or timed out, or a test failed; 2 refused;
128+N interrupted by signal N.  The whole run keeps within ``--budget``
seconds (default 450: one GPU, 16 cores).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import run_installed  # noqa: E402

PROBES_MODULE = ROOT / "tools" / "_gpu_probes.py"
TAIL = 3000  # characters of a log kept in the report

_PREFLIGHT = r"""
import importlib.metadata, json, sys, warnings

def version(*names):
    for n in names:
        try:
            return importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None

out = {"cupy": version("cupy-cuda13x", "cupy-cuda12x", "cupy"), "expecttest": version("expecttest"),
       "pytest": version("pytest"), "hypothesis": version("hypothesis"), "numpy": version("numpy")}
try:
    import torch
except Exception as e:
    out["torch_error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
    sys.exit(0)
out.update(torch=torch.__version__, torch_file=torch.__file__, cuda_build=torch.version.cuda)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out["available"] = bool(torch.version.cuda) and torch.cuda.is_available()
out["warnings"] = [str(w.message).strip() for w in caught]
out["devices"] = []
if out["available"]:
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out["devices"].append({"index": i, "name": p.name, "capability": list(torch.cuda.get_device_capability(i)),
                               "total_mib": round(p.total_memory / 2**20)})
    get_driver = getattr(torch._C, "_cuda_getDriverVersion", None)
    out["driver_cuda_version"] = get_driver() if get_driver else None
print(json.dumps(out))
"""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def tail(text: str, n: int = TAIL) -> str:
    return text if len(text) <= n else "..." + text[-n:]


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


class Report:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.t0 = time.monotonic()
        self.data: dict = {
            "tool": "tools/gpu_check.py",
            "started": now(),
            "finished": None,
            "duration_s": None,
            "status": "running",
            "exit_code": None,
            "reason": None,
            "environment": {},
            "install": None,
            "probes": [],
            "tests": None,
            "restore": None,
        }

    def write(self) -> None:
        self.data["duration_s"] = round(time.monotonic() - self.t0, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / ".report.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        os.replace(tmp, self.out / "report.json")
        (self.out / "report.md").write_text(markdown(self.data))

    def finish(self, status: str, code: int, reason: str | None = None) -> int:
        self.data.update(status=status, exit_code=code, finished=now())
        if reason:
            self.data["reason"] = reason
        self.write()
        return code


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def markdown(d: dict) -> str:
    lines = [f"# GPU check: {d['status'].upper()}", ""]
    if d.get("reason"):
        lines += [f"**{d['reason']}**", ""]
    lines += [f"Started {d['started']}, {d['duration_s']} s, exit status {d['exit_code']}.", ""]
    if d["probes"]:
        counts: dict[str, int] = {}
        for p in d["probes"]:
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        tests = d.get("tests") or {}
        lines += [
            "Probes: "
            + ", ".join(f"{n} {s}" for s, n in counts.items())
            + (
                f". Tests: {tests.get('status')}, {tests.get('passed', '?')} passed, "
                f"{tests.get('failed', '?')} failed, "
                f"{tests.get('cuda_cases_run', '?')} CUDA cases run."
                if tests
                else "."
            ),
            "",
        ]
    env = d.get("environment") or {}
    if env:
        lines += ["## Environment", "", "| | |", "|---|---|"]
        for k, v in env.items():
            if k not in ("nvidia_smi",):
                lines.append(f"| {k} | {_fmt(v) if not isinstance(v, list) else '; '.join(_fmt(x) for x in v)} |")
        if env.get("nvidia_smi"):
            lines += ["", "```", env["nvidia_smi"].rstrip(), "```"]
        lines.append("")
    if d.get("install"):
        lines += ["## Patch set", "", f"{d['install']['status']}: {d['install'].get('message', '')}".rstrip(": "), ""]
    if d["probes"]:
        lines += ["## Probes and benchmarks", "", "| probe | checks | status | result |", "|---|---|---|---|"]
        for p in d["probes"]:
            summary = ((p.get("summary") or "").splitlines() or [""])[0].replace("|", "\\|")
            checks = (p.get("checks") or "-").replace("|", "\\|")
            lines.append(f"| {p['name']} ({p['kind']}) | {checks} | {p['status']} | {summary} |")
        lines.append("")
        for p in d["probes"]:
            lines += [f"### {p['name']}", "", f"{p['what']} ({p.get('duration_s')} s)", ""]
            for k, v in (p.get("measured") or {}).items():
                if isinstance(v, list) and v and isinstance(v[0], dict):
                    lines.append(f"- {k}:")
                    lines += [f"  - {_fmt(x)}" for x in v]
                else:
                    lines.append(f"- {k}: {_fmt(v)}")
            if p.get("error"):
                lines += ["", "```", p["error"].rstrip(), "```"]
            lines.append("")
    t = d.get("tests")
    if t:
        lines += ["## Tests (test/, CUDA-gated cases included)", ""]
        lines.append(
            ", ".join(
                f"{k} {t[k]}"
                for k in (
                    "status",
                    "exit_code",
                    "tests",
                    "passed",
                    "failed",
                    "errors",
                    "skipped",
                    "cuda_cases_run",
                    "duration_s",
                )
                if k in t
            )
        )
        lines.append("")
        for f in t.get("failures", []):
            lines.append(f"- {f}")
        if t.get("output_tail") and t.get("status") != "pass":
            lines += ["", "```", t["output_tail"].rstrip(), "```"]
        lines.append("")
    if d.get("restore"):
        lines += ["## Restore", "", f"{d['restore']['status']}: {d['restore'].get('message', '')}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


def preflight(fake_gpu: bool) -> dict:
    """What this interpreter's torch sees, from a child process (a hung driver cannot hang the check)."""
    env: dict = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            r = subprocess.run([smi], capture_output=True, text=True, timeout=30)
            env["nvidia_smi"] = tail(r.stdout or r.stderr, 4000)
        except subprocess.TimeoutExpired:
            env["nvidia_smi"] = "nvidia-smi did not answer within 30 s"
    else:
        env["nvidia_smi"] = None
    try:
        r = subprocess.run(
            [sys.executable, "-c", _PREFLIGHT], capture_output=True, text=True, timeout=120, cwd=tempfile.gettempdir()
        )
        env.update(
            json.loads(r.stdout.strip().splitlines()[-1])
            if r.returncode == 0 and r.stdout.strip()
            else {"torch_error": f"the torch query failed (exit {r.returncode}): {tail(r.stderr, 1500)}"}
        )
    except subprocess.TimeoutExpired:
        env["torch_error"] = "the torch query did not finish within 120 s (a hung driver?)"
    if fake_gpu:  # tests of this tool only: pretend a GPU is there
        env.pop("torch_error", None)
        env.update(
            fake_gpu=True,
            cuda_build="fake",
            available=True,
            devices=[{"index": 0, "name": "fake GPU", "capability": [9, 0], "total_mib": 1024}],
        )
    return env


def refusal(env: dict) -> str | None:
    """Why this machine cannot run the check, or None."""
    if env.get("torch_error"):
        return f"refused: no usable torch for {env.get('executable')}: {env['torch_error']}"
    if not env.get("cuda_build"):
        return (
            f"refused: torch {env.get('torch')} is not a CUDA build (torch.version.cuda is None): "
            "the GPU check needs a CUDA build of torch and an NVIDIA GPU"
        )
    if not env.get("available") or not env.get("devices"):
        why = "; ".join(env.get("warnings") or []) or "torch.cuda.is_available() is False"
        where = (
            f"CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')!r}, "
            if env.get("CUDA_VISIBLE_DEVICES") is not None
            else ""
        )
        smi = "nvidia-smi found" if env.get("nvidia_smi") else "no nvidia-smi on PATH"
        return (
            f"refused: no GPU visible to torch {env.get('torch')} (CUDA {env.get('cuda_build')}): {why} ({where}{smi})"
        )
    driver, build = env.get("driver_cuda_version"), str(env.get("cuda_build") or "")
    if isinstance(driver, int) and driver > 0 and build[:1].isdigit() and driver // 1000 < int(build.split(".")[0]):
        return (
            f"refused: the NVIDIA driver supports CUDA {driver // 1000}.{driver % 1000 // 10}, older than the CUDA "
            f"{build} that torch {env.get('torch')} was built with: update the driver"
        )
    return None


def load_probes(path: Path) -> list:
    spec = importlib.util.spec_from_file_location("_gpu_probes_under_check", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load probes from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return list(module.PROBES)


def run_one_probe(module_path: str, name: str, out_path: str) -> int:
    """In the probe's own process: run it and write its result as JSON (``--run-probe``)."""
    t = time.perf_counter()
    try:
        probe = next(p for p in load_probes(Path(module_path)) if p.name == name)
        res = dict(probe.fn() or {})
        res.setdefault("status", "info")
        res.setdefault("summary", "")
        res.setdefault("measured", {})
    except BaseException as e:
        res = {
            "status": "error",
            "summary": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            "measured": {},
            "error": tail(traceback.format_exc()),
        }
    res["duration_s"] = round(time.perf_counter() - t, 2)
    Path(out_path).write_text(json.dumps(res, default=str))
    return 0


def run_probes(
    report: Report, module_path: Path, only: set[str] | None, deadline: float, logs: Path, env: dict
) -> None:
    try:
        probes = load_probes(module_path)
    except Exception:
        report.data["probes"].append(
            {
                "name": "load_probes",
                "checks": "",
                "kind": "probe",
                "what": str(module_path),
                "status": "error",
                "summary": "the probes module failed to load",
                "error": tail(traceback.format_exc()),
            }
        )
        return
    logs.mkdir(parents=True, exist_ok=True)
    for p in probes:
        if only and p.name not in only:
            continue
        entry = {"name": p.name, "checks": p.checks, "kind": p.kind, "what": p.what}
        left = deadline - time.monotonic()
        if left < 5:
            entry.update(status="error", summary="not run: the time budget was spent")
            report.data["probes"].append(entry)
            report.write()
            continue
        timeout = min(p.timeout_s, left)
        out_json = logs / f"{p.name}.json"
        out_json.unlink(missing_ok=True)
        log = logs / f"{p.name}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--run-probe", str(module_path), p.name, str(out_json)]
        t = time.monotonic()
        checks = f": {p.checks}" if p.checks else ""
        print(f"==> {p.kind} {p.name}{checks} (timeout {timeout:.0f} s)", file=sys.stderr, flush=True)
        with open(log, "w") as f:
            try:
                rc = run_installed.run_child(
                    cmd, timeout=timeout, stdout=f, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir(), env=env
                )
                timed_out = False
            except subprocess.TimeoutExpired:
                rc, timed_out = None, True
        text = log.read_text(errors="replace")
        if timed_out:
            entry.update(status="error", summary=f"timed out after {timeout:.0f} s (killed)", error=tail(text))
        elif out_json.exists():
            entry.update(json.loads(out_json.read_text()))
            if rc != 0:
                entry.update(status="error", summary=f"exit {rc} after writing its result", error=tail(text))
        else:
            entry.update(
                status="error", summary=f"the probe process died (exit {rc}) before writing a result", error=tail(text)
            )
        entry.setdefault("duration_s", round(time.monotonic() - t, 2))
        print(f"    {entry['status']}: {entry.get('summary', '')}", file=sys.stderr, flush=True)
        report.data["probes"].append(entry)
        report.write()


def run_tests(report: Report, cmd: list[str], junit: Path | None, timeout: float, logs: Path, env: dict) -> None:
    t = time.monotonic()
    log = logs / "tests.log"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"==> tests: {shlex.join(cmd)} (timeout {timeout:.0f} s)", file=sys.stderr, flush=True)
    cwd = tempfile.mkdtemp(prefix="torch-tool-gpu-check-")
    try:
        with open(log, "w") as f:
            try:
                rc = run_installed.run_child(cmd, timeout=timeout, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env)
            except subprocess.TimeoutExpired:
                rc = None
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    res: dict = {
        "command": shlex.join(cmd),
        "exit_code": rc,
        "duration_s": round(time.monotonic() - t, 1),
        "output_tail": tail(log.read_text(errors="replace")),
    }
    if junit is not None and junit.exists():
        try:
            res.update(junit_summary(junit))
        except ET.ParseError as e:
            res["junit_error"] = str(e)
    res["status"] = "timeout" if rc is None else ("pass" if rc == 0 else "fail")
    report.data["tests"] = res
    report.write()


def junit_summary(path: Path) -> dict:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = failed = errors = skipped = cuda = 0
    failures = []
    for s in suites:
        for case in s.iter("testcase"):
            tests += 1
            name = f"{case.get('classname')}::{case.get('name')}"
            kinds = {c.tag for c in case}
            if "skipped" in kinds:
                skipped += 1
                continue
            if "failure" in kinds or "error" in kinds:
                bad = case.find("failure") if "failure" in kinds else case.find("error")
                failed += "failure" in kinds
                errors += "error" in kinds
                failures.append(
                    f"{name}: {(bad.get('message') or '').splitlines()[0][:300] if bad is not None else ''}"
                )
            elif "cuda" in name.lower():
                cuda += 1
    return {
        "tests": tests,
        "passed": tests - failed - errors - skipped,
        "failed": failed,
        "errors": errors,
        "skipped": skipped,
        "cuda_cases_run": cuda,
        "failures": failures[:50],
    }


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-probe"]:
        return run_one_probe(*argv[1:4])
    ap = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="folder for report.json, report.md and logs/")
    ap.add_argument(
        "--require-gpu",
        action="store_true",
        help="only check that torch is a CUDA build, a GPU is visible and the driver is new enough (exit 2 if not)",
    )
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (default 450)")
    ap.add_argument("--only", help="comma-separated probe names to run (default: all)")
    ap.add_argument("--no-tests", action="store_true", help="run the probes only")
    ap.add_argument("--pytest-args", default="", help='extra pytest arguments for the test step, e.g. "-k cuda"')
    # For the tests of this tool only: a GPU that is not there, other probes, another test command.
    ap.add_argument("--fake-gpu", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--probes-module", type=Path, default=PROBES_MODULE, help=argparse.SUPPRESS)
    ap.add_argument("--tests-command", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.require_gpu:
        env = preflight(args.fake_gpu)
        why = refusal(env)
        if why:
            print(f"error: {why}", file=sys.stderr)
            return 2
        devices = "; ".join(
            f"cuda:{d['index']} {d['name']} (sm_{''.join(map(str, d['capability']))}, {d['total_mib']} MiB)"
            for d in env["devices"]
        )
        print(
            f"torch {env.get('torch')}, CUDA {env.get('cuda_build')}, "
            f"driver CUDA {env.get('driver_cuda_version')}: {devices}"
        )
        return 0
    if args.out is None:
        ap.error("--out DIR is required")

    out = args.out.resolve()
    report = Report(out)
    deadline = report.t0 + args.budget
    logs = out / "logs"
    try:
        with run_installed.interruptible():
            print("==> preflight: torch, CUDA, GPUs", file=sys.stderr, flush=True)
            env = report.data["environment"] = preflight(args.fake_gpu)
            report.write()
            why = refusal(env)
            if why:
                print(f"error: {why}", file=sys.stderr)
                return report.finish("refused", 2, why)
            try:
                already = run_installed.develop_state(run_installed.site_of_torch()) == "develop"
                with run_installed.patch_set_installed() as site:
                    report.data["install"] = {
                        "status": "already in develop mode" if already else "installed",
                        "message": f"develop mode {'of this checkout, left so' if already else 'into'} {site}",
                    }
                    report.data["restore"] = {"status": "pending"}
                    report.write()
                    child_env = run_installed.test_env()
                    only = set(args.only.split(",")) if args.only else None
                    run_probes(
                        report,
                        args.probes_module.resolve(),
                        only,
                        deadline - (0 if args.no_tests else 60),
                        logs,
                        child_env,
                    )
                    if not args.no_tests:
                        junit = None
                        if args.tests_command:
                            cmd = shlex.split(args.tests_command)
                        else:
                            junit = out / "tests.junit.xml"
                            cmd = [
                                sys.executable,
                                "-m",
                                "pytest",
                                "-p",
                                "no:cacheprovider",
                                "--rootdir",
                                str(ROOT),
                                str(ROOT / "test"),
                                "-q",
                                "-rfE",
                                f"--junitxml={junit}",
                                *shlex.split(args.pytest_args),
                            ]
                        run_tests(report, cmd, junit, max(30.0, deadline - time.monotonic() - 15), logs, child_env)
                report.data["restore"] = {
                    "status": "left in develop mode" if already else "restored",
                    "message": f"the torch in {site} is as before" + ("" if already else " (develop --uninstall)"),
                }
            except run_installed.Refused as e:
                report.data["install"] = {"status": "refused", "message": str(e)}
                print(f"error: {e}", file=sys.stderr)
                return report.finish("refused", 2, f"refused: the patch set cannot be installed into this torch: {e}")
            except RuntimeError as e:
                if "could not be restored" not in str(e):
                    raise
                report.data["restore"] = {"status": "failed", "message": str(e)}
                return report.finish("error", 1, str(e))
    except run_installed.Interrupted as e:
        if report.data.get("restore", {}) and report.data["restore"].get("status") == "pending":
            report.data["restore"] = {"status": "restored", "message": "after the interruption"}
        return report.finish("interrupted", 128 + e.signum, f"interrupted by {e}")
    except Exception:
        return report.finish("error", 1, f"gpu_check itself failed: {tail(traceback.format_exc())}")
    bad = [p["name"] for p in report.data["probes"] if p["status"] in ("fail", "error")]
    tests = report.data["tests"]
    failed_tests = tests is not None and tests["status"] != "pass"
    if bad or failed_tests:
        why = ", ".join(
            filter(None, [f"probes {bad}" if bad else "", f"tests {tests['status']}" if failed_tests else ""])
        )
        print(f"==> FAIL: {why}; report in {out}", file=sys.stderr)
        return report.finish("fail", 1, f"failed: {why}")
    print(f"==> PASS; report in {out}", file=sys.stderr)
    return report.finish("pass", 0)


if __name__ == "__main__":
    sys.exit(main())
