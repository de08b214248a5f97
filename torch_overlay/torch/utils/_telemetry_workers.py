"""DataLoader workers' telemetry, spooled to the parent process (private to :mod:`torch.utils.telemetry`).

A DataLoader worker that records a figure starts, once, a daemon thread that writes the raw figures of
the worker every :data:`INTERVAL` seconds, and a :class:`multiprocessing.util.Finalize` that writes them
when the worker exits, to ``<tempdir>/torch-telemetry-<parent pid>/<worker pid>-<token>.json`` (written
to a temporary file, then renamed: a reader never sees half a file).  The timed calls pay nothing more.
The parent reads the directory at each snapshot and removes it at exit; whoever creates a spool directory
also removes those of parents that no longer run (killed before their exit handlers ran).  A worker's
file always holds its cumulative figures: ``reset`` in the parent only takes, per file, the figures it
holds at that moment as a baseline that later reads subtract, so no call a worker records after a reset
is ever dropped (only those recorded since its last write before the reset count as after it).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import threading
from typing import Any


_log = logging.getLogger("torch.utils.telemetry")

INTERVAL = 1.0
_PREFIX = "torch-telemetry-"

# Worker side: the file this process writes, and the process that started its thread.
_path: str | None = None
_started_in: int | None = None
# Parent side, per spool file name: {name: the figures the file held at the latest reset of name}.
# Replaced (never mutated) by reset(), so a snapshot in another thread reads a consistent one.
_baselines: dict[str, dict[str, dict[str, Any]]] = {}


def spool_dir(pid: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"{_PREFIX}{pid}")


def _write_json(path: str, value: Any) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _sweep() -> None:
    """Remove the spool directories of parents that no longer run."""
    base = tempfile.gettempdir()
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(_PREFIX) and entry[len(_PREFIX) :].isdigit():
            path = os.path.join(base, entry)
            try:
                if os.stat(path).st_uid == os.getuid() and not _alive(int(entry[len(_PREFIX) :])):
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def start_worker_spool() -> None:
    """In a DataLoader worker: spool this process's figures to the parent from now on (idempotent)."""
    global _path, _started_in
    if _started_in == os.getpid():
        return
    _started_in = os.getpid()
    directory = spool_dir(os.getppid())
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.stat(directory).st_uid != os.getuid():
            raise PermissionError(f"{directory} belongs to another user")
        _sweep()
    except OSError as e:
        _log.warning("telemetry: this DataLoader worker cannot spool its figures to its parent (%s)", e)
        return
    _path = os.path.join(directory, f"{os.getpid()}-{secrets.token_hex(4)}.json")
    import multiprocessing.util

    # Runs when the worker process exits normally (multiprocessing's exit path runs finalizers, not atexit).
    multiprocessing.util.Finalize(None, flush, exitpriority=100)
    threading.Thread(target=_loop, name="torch.utils.telemetry worker spool", daemon=True).start()


def _loop() -> None:
    event = threading.Event()
    while True:
        event.wait(INTERVAL)
        try:
            flush()
        except Exception:  # never let the thread die: report and go on
            _log.exception("telemetry: DataLoader worker could not spool its figures")


def flush() -> None:
    """Write this worker's cumulative figures to its spool file."""
    path = _path
    if path is None or _started_in != os.getpid():
        return
    states = sys.modules["torch.utils.telemetry"]._own_states()
    try:
        # Never recreate the directory: once the parent removed it at exit, writing stops.
        _write_json(path, states)
    except FileNotFoundError:
        pass


def _read_files() -> dict[str, dict[str, dict[str, Any]]]:
    """In the parent: ``{spool file name: {name: cumulative raw figures}}``."""
    directory = spool_dir(os.getpid())
    try:
        entries = os.listdir(directory)
    except OSError:
        return {}
    out = {}
    for entry in sorted(entries):
        if not entry.endswith(".json"):
            continue
        try:
            states = _read_json(os.path.join(directory, entry))
        except (OSError, ValueError):
            continue  # removed meanwhile
        for state in states.values():
            state["buckets"] = {int(i): n for i, n in state["buckets"].items()}
        out[entry] = states
    return out


def read() -> dict[int, dict[str, dict[str, Any]]]:
    """In the parent: ``{worker pid: {name: raw figures since the latest reset}}`` of this process's workers."""
    since = sys.modules["torch.utils.telemetry"]._since
    baselines = _baselines
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for entry, states in _read_files().items():
        base = baselines.get(entry, {})
        kept = {}
        for name, state in states.items():
            state = since(state, base[name]) if name in base else state
            if state is not None:
                kept[name] = state
        out.setdefault(int(entry.split("-", 1)[0]), {}).update(kept)
    return out


def reset(name: str | None) -> None:
    """In the parent: from now on, count only what the workers record after this, for ``name`` (every name if None)."""
    global _baselines
    files = _read_files()
    if name is None:
        _baselines = files
    else:
        baselines = dict(_baselines)
        for entry, states in files.items():
            base = dict(baselines.get(entry, {}))
            if name in states:
                base[name] = states[name]
            else:
                base.pop(name, None)
            baselines[entry] = base
        _baselines = baselines


def _remove_own_spool() -> None:
    shutil.rmtree(spool_dir(os.getpid()), ignore_errors=True)


atexit.register(_remove_own_spool)
