r"""
Helpers shared by the wrappers of :mod:`torch.cuda`'s memory guards and ``safe_run``.

- :func:`stay_eager` marks a wrapper the way ``torch.compiler.disable(wrapper,
  recursive=False, reason=...)`` does, so that ``torch.compile(fullgraph=True)``
  over it fails with our reason instead of Dynamo's generic "marked as skipped".
- :func:`while_running` runs a coroutine with some thread-local state (autocast,
  the default device) entered only while that coroutine runs, never while it is
  suspended and other tasks of the same thread run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TYPE_CHECKING, TypeVar


if TYPE_CHECKING:
    import contextlib


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


class _WhileRunning:
    def __init__(self, awaitable: Awaitable[Any], state: Callable[[], contextlib.AbstractContextManager[Any]]):
        self.awaitable, self.state = awaitable, state

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self.awaitable.__await__()
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                # Step the coroutine inside the state; hand what it awaits to the event loop outside it.
                with self.state():
                    try:
                        yielded = steps.send(sent) if thrown is None else steps.throw(thrown)
                    except StopIteration as stop:
                        return stop.value
                sent, thrown = None, None
                try:
                    sent = yield yielded
                except BaseException as e:  # cancellation, or close() of this awaitable
                    thrown = e
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()


def while_running(awaitable: Awaitable[Any], state: Callable[[], contextlib.AbstractContextManager[Any]]) -> Any:
    """An awaitable that runs ``awaitable`` with ``state()`` entered around each of its steps.

    Thread-local state entered around a whole ``await`` would also apply to every other task that runs
    in the same thread while this one is suspended.
    """
    return _WhileRunning(awaitable, state)
