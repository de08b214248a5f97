r"""
Wrappers that must run eagerly under :func:`torch.compile`.

Host-side policies around a call (timing on the host clock, deadlines, OOM
recovery, memory checks) cannot be traced into a graph.  :func:`stay_eager`
marks such a wrapper the way ``torch.compiler.disable(wrapper, recursive=False,
reason=...)`` marks a function: Dynamo does not trace the wrapper's own frame,
still compiles what it calls, and a ``fullgraph=True`` compilation that reaches
the wrapper fails with a reason of ours (apply the decorator outside the
compiled region) instead of Dynamo's generic "marked as skipped ... Please file
an issue".

Used by :func:`torch.cuda.safe_run`, :func:`torch.cuda.min_free_vram`,
:mod:`torch.utils.telemetry` and :mod:`torch.utils.timeout`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar


__all__: list[str] = []

W = TypeVar("W", bound=Callable[..., Any])


def eager_reason(decorator: str) -> str:
    """The message a ``fullgraph=True`` compilation that reaches a ``decorator`` wrapper fails with."""
    return (
        f"{decorator} runs eagerly (host-side policy around the call), so it cannot be traced into a "
        f"fullgraph=True compilation: apply {decorator} outside the compiled region, e.g. "
        f"{decorator}(torch.compile(fn, fullgraph=True)), or compile without fullgraph=True"
    )


def stay_eager(wrapper: W, decorator: str, reason: str | None = None) -> W:
    """Mark ``wrapper`` as ``torch.compiler.disable(recursive=False, reason=...)`` marks a function.

    The attributes are set directly rather than through ``torch.compiler.disable``,
    which imports ``torch._dynamo`` (seconds) at decoration time and wraps the
    function in one more frame that every call pays for.  Dynamo does not trace
    the wrapper's own frame anyway (it lives in ``torch/``, on Dynamo's skip list)
    and compiles what it calls; the attributes give a ``fullgraph=True``
    compilation that reaches the wrapper ``reason`` (default:
    :func:`eager_reason` of ``decorator``) instead of "Please file an issue".
    """
    marked: Any = wrapper  # a function object takes any attribute; W's type does not declare these
    marked._torchdynamo_disable = True
    marked._torchdynamo_disable_recursive = False
    marked._torchdynamo_disable_msg = eager_reason(decorator) if reason is None else reason
    return wrapper
