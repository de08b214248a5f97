"""Every logger the patch set uses is registered with torch._logging, so TORCH_LOGS turns it on.

PyTorch's components name their loggers in ``torch/_logging/_registrations.py``
(``register_log(name, qualified names)``); ``TORCH_LOGS=name`` and
``torch._logging.set_logs(modules={name: level})`` then work for them, and an
unregistered name in ``TORCH_LOGS`` is an error at ``import torch``.
"""

import ast
import json
import os
import subprocess
import sys

import patchset

REGISTRATIONS = "torch/_logging/_registrations.py"  # the patches adding ``+register_log(...)`` lines


def overlay_loggers() -> dict[str, str]:
    """Logger name -> the overlay file that gets it with ``logging.getLogger(...)``."""
    out = {}
    for rel, path in patchset.overlay_files().items():
        if not rel.endswith(".py"):
            continue
        module = rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger" and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Name) and arg.id == "__name__":
                out[module] = rel
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out[arg.value] = rel
    return out


def registered() -> dict[str, list[str]]:
    """TORCH_LOGS name -> qualified logger names, for each ``register_log`` the patches add."""
    out = {}
    for patch in patchset.series(patchset.BASE_VERSION):
        for line in patch.read_text(encoding="utf-8").splitlines():
            if not line.startswith("+register_log("):
                continue
            call = ast.parse(line[1:]).body[0].value
            name, qnames = (ast.literal_eval(a) for a in call.args[:2])
            out[name] = [qnames] if isinstance(qnames, str) else list(qnames)
    return out


def _covers(qname: str, logger: str) -> bool:
    return logger == qname or logger.startswith(qname + ".")


def test_every_logger_of_the_overlay_is_registered():
    regs = registered()
    assert regs, f"no patch registers a logger in {REGISTRATIONS}"
    loggers = overlay_loggers()
    assert "torch.utils.telemetry" in loggers and "torch.utils.dry_run" in loggers
    missing = {
        logger: rel
        for logger, rel in loggers.items()
        if not any(_covers(q, logger) for qnames in regs.values() for q in qnames)
    }
    assert not missing, (
        f"loggers not registered with torch._logging (TORCH_LOGS cannot turn them on): {missing}; "
        f"log through the public module's logger, or add register_log(...) to a patch of {REGISTRATIONS}"
    )


def test_torch_logs_turns_every_registered_name_on():
    """In a fresh interpreter with the patched torch: TORCH_LOGS=<every name> is accepted and sets the levels."""
    regs = registered()
    code = (
        "import json, logging, sys\n"
        "import torch\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps({q: logging.getLogger(q).getEffectiveLevel() for qs in names.values() for q in qs}))\n"
    )
    env = dict(os.environ, TORCH_LOGS=",".join(regs))
    r = subprocess.run(
        [sys.executable, "-c", code, json.dumps(regs)], env=env, capture_output=True, text=True, timeout=300, cwd="/"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    levels = json.loads(r.stdout.strip().splitlines()[-1])
    assert levels == {q: 20 for qs in regs.values() for q in qs}  # logging.INFO
