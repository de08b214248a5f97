"""The patch set as data: overlay files + ``patches/series``, planned against a torch tree.

One patch set serves every supported torch release.  ``patches/series``
names the patch files in order; ``patches/releases`` lists the supported
releases, each with the variant folders searched before ``patches/`` itself
for a patch whose upstream file differs in that release (e.g.
``patches/2.11/0003-....patch``).  A patch that applies to every release
stays one file; only the differing ones have variants, and every variant
applies exactly (no fuzz).  The release is read from the target's
``torch/version.py`` (``2.14.1+cu130`` is release ``2.14.1``).

A *plan* is computed entirely in memory before anything is written: every
overlay file and every hunk is checked first, so a mismatch anywhere leaves
the target untouched.  The same planner serves ``tools/apply.py`` (a folder on
disk), ``setup.py develop`` (site-packages, overlay linked) and the wheel
builder (a zip read in place), through the small :class:`Tree` interface.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import unidiff


ROOT = Path(__file__).resolve().parent.parent
OVERLAY = ROOT / "torch_overlay"
PATCHES = ROOT / "patches"
TESTS = ROOT / "test"
DOCS = ROOT / "docs"

#: The PyTorch release the patch set is written against (``patches/*.patch``
#: apply to it as they are); the default base wheel of the tools.
BASE_VERSION = "2.13.0"
#: Bumped whenever the patch set changes what it installs; ends up in the
#: wheel's local version label ``+<base local>.torchtool<REVISION>``.
REVISION = 1


class PatchSetError(RuntimeError):
    """The patch set cannot be applied to (or reversed from) a target."""


class Tree(Protocol):
    """Read access to the files of a torch tree, by path relative to its root."""

    def read(self, rel: str) -> bytes | None: ...

    def describe(self) -> str: ...


class DirTree:
    """A folder holding ``torch/`` (site-packages, unpacked wheel, source checkout)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def read(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def describe(self) -> str:
        return str(self.root)

    def is_source_checkout(self) -> bool:
        # A PyTorch checkout has its own setup.py and test/ beside torch/;
        # site-packages and unpacked wheels have neither.
        return (self.root / "setup.py").is_file() and (self.root / "test").is_dir()


def release_of(version: str) -> str:
    """The release of a torch version: ``2.14.1+cu130`` -> ``2.14.1`` (the local label stripped)."""
    return version.split("+", 1)[0].strip()


def torch_version(tree: Tree) -> str:
    """The version a torch tree declares, for error messages ("unknown" if none)."""
    text = tree.read("torch/version.py")
    if text is not None:
        m = re.search(rb"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
        if m:
            return m.group(1).decode()
    text = tree.read("version.txt")
    return text.decode().strip() if text else "unknown"


# --------------------------------------------------------------------------
# What the patch set consists of
# --------------------------------------------------------------------------


def _lines(name: str) -> list[tuple[int, list[str]]]:
    out = []
    for lineno, line in enumerate((PATCHES / name).read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if words:
            out.append((lineno, words))
    return out


def releases() -> dict[str, tuple[str, ...]]:
    """Every supported release -> its variant folders under ``patches/``, as ``patches/releases`` lists them."""
    out: dict[str, tuple[str, ...]] = {}
    for lineno, (release, *folders) in _lines("releases"):
        for folder in folders:
            if not (PATCHES / folder).is_dir():
                raise PatchSetError(f"patches/releases:{lineno}: variant folder patches/{folder}/ does not exist")
        out[release] = tuple(folders)
    return out


def supported_releases() -> list[str]:
    """The torch releases the patch set supports, oldest first."""
    return sorted(releases(), key=lambda r: tuple(int(x) if x.isdigit() else -1 for x in r.split(".")))


def select_release(version: str, where: str = "") -> str:
    """The supported release of a torch ``version``; :class:`PatchSetError` naming the supported ones if none."""
    release = release_of(version)
    if release not in releases():
        raise PatchSetError(
            f"torch {version}{f' in {where}' if where else ''} is not supported by the patch set; "
            f"supported releases: {', '.join(supported_releases())}. Nothing was changed."
        )
    return release


def series_names() -> list[str]:
    """The patch file names in application order, as ``patches/series`` lists them."""
    return [words[0] for _, words in _lines("series")]


def series(release: str = BASE_VERSION) -> list[Path]:
    """The patch files of ``release`` in application order: each name of ``patches/series``
    from the first of the release's variant folders that has it, else from ``patches/``."""
    folders = releases().get(release_of(release))
    if folders is None:
        select_release(release)
    out = []
    for lineno, (name, *_) in _lines("series"):
        path = next((PATCHES / f / name for f in folders if (PATCHES / f / name).is_file()), PATCHES / name)
        if not path.is_file():
            raise PatchSetError(f"patches/series:{lineno}: {name} does not exist")
        out.append(path)
    return out


def file_patches(release: str = BASE_VERSION) -> list[tuple[Path, unidiff.FilePatch]]:
    """Every per-file patch of the release's series, with the patch file it came from."""
    out = []
    for path in series(release):
        for fp in unidiff.parse(path.read_bytes(), source=str(path.relative_to(ROOT))):
            out.append((path, fp))
    return out


def _files_under(base: Path, prefix: str = "") -> dict[str, Path]:
    found = {}
    if base.is_dir():
        for p in sorted(base.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                found[prefix + p.relative_to(base).as_posix()] = p
    return found


def overlay_files(*, source_checkout: bool = False) -> dict[str, Path]:
    """New files of the patch set: target-relative path -> file in this repo.

    Every target gets ``torch/...``; a PyTorch source checkout also gets the
    tests (``test/...``) and docs pages (``docs/source/...``).
    """
    files = _files_under(OVERLAY)
    if source_checkout:
        files.update(_files_under(TESTS, "test/"))
        files.update(_files_under(DOCS / "source", "docs/source/"))
    return files


# --------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------


@dataclass
class Change:
    """One file of the target: its bytes now and the bytes it must have."""

    rel: str
    before: bytes | None  # None: the file does not exist
    after: bytes | None  # None: the file must not exist
    link: Path | None = None  # for develop mode: make ``rel`` a symlink to this


@dataclass
class Plan:
    changes: list[Change]
    unchanged: list[str]  # already in the requested state
    release: str = BASE_VERSION  # whose series was planned

    @property
    def is_noop(self) -> bool:
        return not self.changes


def _is_our_link(tree: Tree, rel: str, src: Path) -> bool:
    root = getattr(tree, "root", None)
    if root is None:
        return False
    p = Path(root) / rel
    return p.is_symlink() and Path(os.readlink(p)) == src


def plan(tree: Tree, *, reverse: bool = False, link: bool = False, source_checkout: bool = False) -> Plan:
    """Work out every change needed to apply (or reverse) the patch set.

    Raises :class:`PatchSetError` naming the file, the hunk and the torch
    version found when the tree is neither in the original nor the patched
    state for some file.
    """
    version = torch_version(tree)
    release = select_release(version, tree.describe())
    where = f"{tree.describe()} (torch {version})"
    changes: list[Change] = []
    unchanged: list[str] = []

    for rel, src in overlay_files(source_checkout=source_checkout).items():
        want = src.read_bytes()
        have = tree.read(rel)
        ours = _is_our_link(tree, rel, src)
        if reverse:
            if have is None and not ours:
                unchanged.append(rel)
            elif have == want or ours:
                changes.append(Change(rel, have, None))
            else:
                raise PatchSetError(
                    f"cannot reverse: {rel} in {where} differs from {src.relative_to(ROOT)}; "
                    "it was changed after the patch set was applied. Nothing was changed."
                )
        else:
            if ours or (have == want and not link):
                unchanged.append(rel)
            elif have is None or link:
                # develop mode links over any copy of an overlay file (e.g. an older
                # one from an installed patched wheel): the base never has these paths.
                changes.append(Change(rel, have, want, link=src if link else None))
            else:
                raise PatchSetError(
                    f"cannot apply: {rel} already exists in {where} with other contents; "
                    "the overlay only adds new files. Nothing was changed."
                )

    applicable = [fp for fp in file_patches(release) if source_checkout or fp[1].path.startswith("torch/")]
    # Several patch files may touch one file: fold them in series order.
    by_file: dict[str, list[tuple[Path, unidiff.FilePatch]]] = {}
    for patch_file, fp in applicable:
        by_file.setdefault(fp.path, []).append((patch_file, fp))
    for rel, fps in by_file.items():
        have = tree.read(rel)
        if have is None:
            raise PatchSetError(
                f"cannot {'reverse' if reverse else 'apply'} {fps[0][0].relative_to(ROOT).as_posix()}: {rel} does not exist in {where}. "
                "Nothing was changed."
            )
        try:
            pristine = _unapply(have, fps)
        except unidiff.HunkError as err:
            patch_file = next(pf for pf, fp in fps if fp.path == err.path)
            raise PatchSetError(
                f"cannot {'reverse' if reverse else 'apply'} {patch_file.relative_to(ROOT).as_posix()}: {err} "
                f"in {where}. Nothing was changed."
            ) from None
        target = pristine if reverse else _apply_all(pristine, fps)
        if have == target:
            unchanged.append(rel)
        else:
            changes.append(Change(rel, have, target))
    return Plan(changes, unchanged, release)


def _apply_all(content: bytes, fps: list[tuple[Path, unidiff.FilePatch]], *, reverse: bool = False) -> bytes:
    order = reversed(fps) if reverse else fps
    for _, fp in order:
        content = unidiff.apply_file_patch(content, fp.reversed() if reverse else fp)
    return content


def _unapply(have: bytes, fps: list[tuple[Path, unidiff.FilePatch]]) -> bytes:
    """The original bytes of a file, whether ``have`` is original or fully patched.

    Raises the :class:`unidiff.HunkError` of the forward application when
    ``have`` is neither.
    """
    try:
        original = _apply_all(have, fps, reverse=True)
        # Only trust the reversal if patching it again gives back what is there.
        if _apply_all(original, fps) == have:
            return original
    except unidiff.HunkError:
        pass
    _apply_all(have, fps)
    return have


# --------------------------------------------------------------------------
# Executing a plan on a folder
# --------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode if mode is not None else 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _remove(root: Path, rel: str) -> None:
    path = root / rel
    path.unlink()
    # Bytecode of a removed module must not outlive it.
    cache = path.parent / "__pycache__"
    for pyc in cache.glob(f"{path.stem}.*.pyc") if path.suffix == ".py" else ():
        pyc.unlink()
    # Remove folders the overlay created, once empty (base folders are not
    # empty; the roots the overlay installs into are kept even if they are).
    keep = {root, root / "torch", root / "test", root / "docs", root / "docs" / "source"}
    parent = path.parent
    while parent not in keep:
        pycache = parent / "__pycache__"
        if pycache.is_dir() and not any(pycache.iterdir()):
            pycache.rmdir()
        if any(parent.iterdir()):
            break
        parent.rmdir()
        parent = parent.parent


def execute(root: Path, p: Plan, *, progress: Callable[[str], None] | None = None) -> None:
    """Write a plan to the folder ``root``; on any OS error, undo what was written."""
    done: list[Change] = []
    try:
        for ch in p.changes:
            path = root / ch.rel
            mode = path.stat().st_mode & 0o777 if path.exists() and not path.is_symlink() else None
            if ch.after is None:
                _remove(root, ch.rel)
            elif ch.link is not None:
                if path.exists() or path.is_symlink():
                    path.unlink()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.symlink_to(ch.link)
            else:
                _write_atomic(path, ch.after, mode)
            done.append(ch)
            if progress:
                progress(f"{'removed' if ch.after is None else 'wrote'} {ch.rel}")
    except BaseException:
        for ch in reversed(done):
            path = root / ch.rel
            if ch.before is None:
                if path.exists() or path.is_symlink():
                    _remove(root, ch.rel)
            else:
                if path.is_symlink():
                    path.unlink()
                _write_atomic(path, ch.before, None)
        raise
