"""Build the patched torch wheel from a base wheel without recompressing it.

The base wheel is ~190 MB compressed and ~700 MB unpacked, and the patch set
touches a handful of files.  So instead of unpack + repack, every untouched
member is copied *as its raw compressed bytes* (local header included) in a few
large contiguous copies; the base ``.dist-info`` members move to the new
version's folder with only their names rewritten; only patched files, overlay
files, METADATA and RECORD are compressed anew.  RECORD keeps the base's
hashes for every untouched file and gets fresh ones for the rest.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import patchset
from rawzip import RawZip, RawZipWriter


__all__ = ["ZipTree", "build", "fetch_base_wheel", "local_version"]


class ZipTree:
    """A :class:`patchset.Tree` read straight out of a wheel (nothing extracted)."""

    def __init__(self, zf: RawZip) -> None:
        self.zf = zf
        self.names = zf.by_name.keys()

    def read(self, rel: str) -> bytes | None:
        return self.zf.read(rel) if rel in self.names else None

    def describe(self) -> str:
        return str(self.zf.path)


def local_version(base_version: str, revision: int = patchset.REVISION) -> str:
    """The base wheel's version with ``torchtool<revision>`` added to its local label.

    ``2.13.0+cpu`` -> ``2.13.0+cpu.torchtool1``; ``2.15.0`` (PyPI's wheel) ->
    ``2.15.0+torchtool1``; ``2.14.1+cu130`` (the CUDA index's) -> ``2.14.1+cu130.torchtool1``.
    """
    sep = "." if "+" in base_version else "+"
    return f"{base_version}{sep}torchtool{revision}"


def fetch_base_wheel(cache: Path, spec: str = f"torch=={patchset.BASE_VERSION}") -> Path:
    """The base wheel ``spec`` (``torch==<release>``) names, resolved by pip into ``cache`` (once)."""
    release = spec.split("==", 1)[1] if "==" in spec else patchset.BASE_VERSION

    def found() -> list[Path]:
        return sorted(w for w in cache.glob(f"torch-{release}*.whl") if patchset.release_of(w.name.split("-")[1]) == release)

    if not found():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"resolving base wheel {spec} with pip into {cache} ...", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(cache), spec],
            check=True,
        )
    wheels = found()
    if len(wheels) != 1:
        raise patchset.PatchSetError(f"expected exactly one base wheel in {cache}, found {[w.name for w in wheels]}")
    return wheels[0]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


class _Progress:
    """A one-line progress report for steps that take seconds."""

    def __init__(self, label: str, total: int, stream=sys.stderr) -> None:
        self.label, self.total, self.done, self.stream = label, total, 0, stream
        self.tty = stream.isatty()
        self.last = -1

    def __call__(self, n: int) -> None:
        self.done += n
        pct = 100 * self.done // max(self.total, 1)
        step = 1 if self.tty else 25
        if pct // step != self.last // step:
            self.last = pct
            end = "\r" if self.tty and pct < 100 else "\n"
            print(f"{self.label}: {pct:3d}% ({self.done >> 20} / {self.total >> 20} MiB)", end=end, file=self.stream, flush=True)


def build(base_wheel: Path, dist_dir: Path, *, revision: int = patchset.REVISION, quiet: bool = False) -> Path:
    """Write the patched wheel into ``dist_dir`` and return its path."""
    t0 = time.perf_counter()
    base_wheel = Path(base_wheel)
    with RawZip(base_wheel) as zf:
        m = re.match(r"^(torch-([^/]+))\.dist-info/", next((e.name for e in zf.entries if ".dist-info/" in e.name), ""))
        if m is None:
            raise patchset.PatchSetError(f"{base_wheel} is not a torch wheel (no torch-*.dist-info/)")
        old_di, base_version = m.group(1) + ".dist-info/", m.group(2)
        if "torchtool" in base_version:
            raise patchset.PatchSetError(f"{base_wheel} is already a patched wheel ({base_version}); build from the original base")
        version = local_version(base_version, revision)
        new_di = f"torch-{version}.dist-info/"

        planned = patchset.plan(ZipTree(zf))
        new_files = {ch.rel: ch.after for ch in planned.changes if ch.after is not None}
        rewritten = {old_di + "METADATA", old_di + "RECORD"}
        metadata = re.sub(rb"^Version: .*$", f"Version: {version}".encode(), zf.read(old_di + "METADATA"), count=1, flags=re.M)
        new_files[new_di + "METADATA"] = metadata

        record_lines = []
        for line in zf.read(old_di + "RECORD").decode().splitlines():
            path = line.rsplit(",", 2)[0]
            if path in new_files or path in rewritten:
                continue
            # Other dist-info members (WHEEL, licenses, entry points) move unchanged.
            record_lines.append(new_di + line[len(old_di) :] if path.startswith(old_di) else line)

        kept = [e for e in zf.entries if e.name not in new_files and not e.name.startswith(old_di)]
        moved = [e for e in zf.entries if e.name.startswith(old_di) and e.name not in rewritten]

        tags = base_wheel.name[: -len(".whl")].split("-")[-3:]  # python, abi, platform
        out_path = Path(dist_dir) / f"torch-{version}-{'-'.join(tags)}.whl"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = out_path.with_name(out_path.name + ".part")
        total = zf.directory_offset  # what is copied: nearly every member's bytes, for the progress line
        tick = (lambda n: None) if quiet else _Progress(f"copying unchanged members of {base_wheel.name}", total)
        try:
            with open(tmp_path, "wb", buffering=0) as dst:
                out = RawZipWriter(dst)
                out.copy(zf, kept, tick)
                for e in moved:
                    out.copy_renamed(zf, e, new_di + e.name[len(old_di) :], tick)
                for rel, data in sorted(new_files.items()):
                    out.add(rel, data)
                    record_lines.append(f"{rel},{_record_hash(data)},{len(data)}")
                record_lines.append(f"{new_di}RECORD,,")
                out.add(new_di + "RECORD", ("\n".join(record_lines) + "\n").encode())
                out.close()
            os.replace(tmp_path, out_path)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()
    if not quiet:
        print(
            f"built {out_path.name} (torch {planned.release}'s series) in {time.perf_counter() - t0:.2f} s "
            f"({len(kept) + len(moved)} members copied raw, {len(new_files)} written)",
            file=sys.stderr,
        )
    return out_path
