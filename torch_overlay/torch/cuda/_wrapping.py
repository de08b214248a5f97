r"""
Helpers shared by the wrappers of :mod:`torch.cuda`'s memory guards and ``safe_run``.

- :func:`stay_eager` marks a wrapper the way ``torch.compiler.disable(wrapper,
  recursive=False, reason=...)`` does, so that ``torch.compile(fullgraph=True)``
  over it fails with our reason instead of Dynamo's generic "marked as skipped".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar




__all__: list[str] = []

W = TypeVar("W", bound=Callable[..., Any])


def stay_eager(wrapper: W, decorator: str) -> W:
    """Mark ``wrapper`` as ``torch.compiler.disable(recursive=False, reason=...)`` marks a function.

    The attributes are set directly rather than through ``torch.compiler.disable``,
    which imports ``torch._dynamo`` (seconds) at decoration time and adds a frame to
    every call.  Dynamo skips the wrapper's own frame anyway (``torch.cuda`` is on its
    skip list) and compiles what it calls; the attributes only give a ``fullgraph=True``
    compilation that reaches the wrapper this reason instead of "Please file an issue".
    """
    wrapper._torchdynamo_disable = True  # type: ignore[attr-defined]
    wrapper._torchdynamo_disable_recursive = False  # type: ignore[attr-defined]
    wrapper._torchdynamo_disable_msg = (  # type: ignore[attr-defined]
        f"{decorator} runs eagerly (host-side policy around the call), so it cannot be traced into a "
        f"fullgraph=True compilation: apply {decorator} outside the compiled region, e.g. "
        f"{decorator}(torch.compile(fn, fullgraph=True)), or compile without fullgraph=True"
    )
    return wrapper
