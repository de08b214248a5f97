"""The upstream PR stack: which files of this repository make up which pull request.

The patch set lands in ``pytorch/pytorch`` as a stack of reviewable PRs, one
commit each (``ghstack``-friendly).  :data:`STACK` lists them in landing order;
each claims files by glob, relative to this repository's root:

- ``torch_overlay/torch/...`` new files (exported as ``torch/...``),
- ``patches/NNNN-*.patch`` edits of existing upstream files (exported applied),
- ``test/test_*.py`` (exported as ``test/...``),
- ``docs/source/*`` pages (exported as ``docs/source/...``).

Every such file must be claimed by exactly one PR: ``tools/check.py`` names any
file that no PR (or more than one) claims.  A PR that claims no file yet is
skipped by the exporter, so a component lands in the stack by adding its files
under the globs below (or by adding a glob here).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import patchset


__all__ = ["PR", "STACK", "StackError", "assign", "inventory"]


class StackError(ValueError):
    """A file of the patch set that is not claimed by exactly one PR."""


@dataclass(frozen=True)
class PR:
    """One pull request of the stack."""

    name: str
    title: str
    summary: str
    globs: tuple[str, ...]

    def claims(self, rel: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, g) for g in self.globs)

    def message(self, tests: list[str]) -> str:
        """The commit message: PyTorch style, summary line, body, test plan."""
        plan = "\n".join(f"    python {t}" for t in tests) or "    (no test file)"
        return f"{self.title}\n\n{self.summary.strip()}\n\nTest Plan:\n\n{plan}\n"


def _utils(*stems: str) -> tuple[str, ...]:
    """Globs for ``torch.utils.<stem>`` (module or package), its private helpers, tests and docs pages."""
    out: list[str] = []
    for s in stems:
        out += [
            f"torch_overlay/torch/utils/{s}.py",
            f"torch_overlay/torch/utils/{s}/*",
            # private helpers: _dashboard.py, _dashboard_page.py, _dashboard/...
            f"torch_overlay/torch/utils/_{s}*",
            f"test/test_utils_{s}*.py",
            f"docs/source/torch.utils.{s}.*",
        ]
    return tuple(out)


# Patches are claimed by number: a component's patches are named 000N-... by
# its issue number (0001 is the foundation's lazy import of torch._accelerator).
STACK: list[PR] = [
    PR(
        "amp",
        "[amp] Choose autocast defaults per device",
        """
Mixed precision without per-device special cases: torch.amp picks the
autocast dtype each device supports (bf16 where available, else fp16; bf16 on
CPU), so the same training loop runs on every accelerator.  GradScaler gains
for_autocast() (a scaler only where float16 needs one) and last_step_skipped.
First in the stack: DeviceContext(amp=True) uses the same dtype choice.
""",
        (
            "torch_overlay/torch/amp/*",
            "patches/0005-*",
            "test/test_amp*.py",
            "docs/source/torch.amp.*",
        ),
    ),
    PR(
        "device",
        "[accelerator] Add torch._accelerator device selection",
        """
Device selection that works the same on every accelerator: `set_device` and
`current_device` accept whatever configurations hold (an index, "cuda:1", a
torch.device) and fail with a clear error instead of silently doing nothing;
`get_best_device` picks the least loaded device without creating a context on
every GPU; `DeviceContext` scopes device, autocast dtype and tensorization.
Memory thresholds ("4GiB", "512 MB", a fraction of the device) are parsed by
torch.utils._memory_size, the one parser every API taking a size uses.  Built
on torch.accelerator; `torch._accelerator` is imported lazily, so `import
torch` is unchanged.
""",
        (
            "torch_overlay/torch/_accelerator/*",
            # get_best_device(min_free_memory=...) is the first user of the size parser.
            "torch_overlay/torch/utils/_memory_size.py",
            "test/test_utils_memory_size*.py",
            # DeviceContext is the first decorator applied step by step to coroutines and generators.
            "torch_overlay/torch/utils/_stepwise.py",
            "test/test_utils_stepwise*.py",
            "patches/0001-*",
            "patches/0003-*",
            "test/test_accelerator*.py",
            "docs/source/torch._accelerator.*",
        ),
    ),
    PR(
        "memory",
        "[cuda] Add memory guards, safe_run and torch.utils.error_callback",
        """
Out-of-memory handling without copy-pasted retry loops: memory guards that
check free device memory up front (sizes given as bytes, "4GiB" or a fraction
of the device), and
`torch.cuda.safe_run`, which frees cached memory and retries a callable on
OOM.  Every recovering utility reports what it recovered from through
`torch.utils.error_callback`, a registry of scoped callbacks that never lets a
failing callback mask the original error.
""",
        (
            "torch_overlay/torch/cuda/*",
            "torch_overlay/torch/utils/error_callback.py",
            # safe_run is the first wrapper that stays eager under torch.compile.
            "torch_overlay/torch/utils/_eager.py",
            "patches/0004-*",
            "test/test_cuda*.py",
            "test/test_utils_error_callback*.py",
            "docs/source/torch.cuda.*",
            "docs/source/torch.utils.error_callback.*",
        ),
    ),
    PR(
        "timeout-retry",
        "[utils] Add torch.utils.timeout and torch.utils.retry",
        """
Deadlines and retries for flaky steps (data loading, collectives, remote
storage) as context managers and decorators that nest correctly, stop every
timer they start and report each retry and expiry to
torch.utils.error_callback.
""",
        ("patches/0006-*", *_utils("timeout", "retry")),
    ),
    PR(
        "telemetry",
        "[utils] Add torch.utils.telemetry and its live dashboard",
        """
Lightweight telemetry of device memory, utilization and step timings, with an
optional live dashboard served only when asked for (no thread or socket is
started at import).
""",
        ("patches/0007-*", *_utils("telemetry", "dashboard")),
    ),
    PR(
        "tensorize",
        "[utils] Add torch.utils.auto_tensorize, patch_numpy and dry_run",
        """
Moving NumPy-style code onto devices: `auto_tensorize` converts array
arguments to tensors on the current device, `patch_numpy` dispatches NumPy
calls to CuPy/torch where possible, and `dry_run` runs a model on fake tensors
to report shapes and memory before any real allocation.  Also documents how
`torch.as_tensor` shares memory with NumPy arrays.
""",
        ("patches/0008-*", *_utils("auto_tensorize", "tensorize", "patch_numpy", "dry_run")),
    ),
    PR(
        "composability",
        "[test] Test the new utilities under compile, fork, spawn and distributed",
        """
One test file over every component above: torch.compile (eager and
aot_eager; fullgraph where tracing is natural) with the eager result, a child
forked after the parent used them (also DataLoader workers), decorated
functions pickled and run under spawn, two gloo ranks where one runs out of
memory under safe_run and the other times out, and a quiet `import torch`.
Last in the stack: it needs every component.
""",
        ("test/test_utils_composability.py",),
    ),
]


def inventory() -> list[str]:
    """Every file of the patch set, relative to this repository's root.

    That is every file a PyTorch source checkout receives (overlay, ``test/``,
    ``docs/source/``: a stray file there would land upstream too) and every patch.
    """
    files = [
        path.relative_to(patchset.ROOT).as_posix() for path in patchset.overlay_files(source_checkout=True).values()
    ]
    files += [p.relative_to(patchset.ROOT).as_posix() for p in sorted(patchset.PATCHES.glob("*.patch"))]
    return files


def assign(files: list[str] | None = None, stack: list[PR] | None = None) -> dict[str, list[str]]:
    """Map each PR's name to the files it claims, in inventory order.

    Raises :class:`StackError` listing every file claimed by no PR or by
    several, with what to do about it.
    """
    stack = STACK if stack is None else stack
    out: dict[str, list[str]] = {pr.name: [] for pr in stack}
    problems = []
    for rel in inventory() if files is None else files:
        owners = [pr.name for pr in stack if pr.claims(rel)]
        if len(owners) == 1:
            out[owners[0]].append(rel)
        elif not owners:
            problems.append(
                f"{rel} belongs to no PR of the upstream stack; rename it to match a PR's globs "
                f"or add a glob for it in tools/stack.py (PRs: {', '.join(pr.name for pr in stack)})"
            )
        else:
            problems.append(f"{rel} is claimed by several PRs ({', '.join(owners)}); narrow the globs in tools/stack.py")
    if problems:
        raise StackError("\n".join(problems))
    return out
