"""Memory sizes as users write them: ``4 << 30``, ``"4GiB"``, ``"512 MB"``, ``0.25`` of the total.

Shared by :func:`torch.cuda.assert_free_memory`, :func:`torch.cuda.min_free_vram`
and :func:`torch._accelerator.get_best_device`, so every API that takes a memory
requirement accepts exactly the same forms.

Accepted forms:

* ``int``: a number of bytes (``>= 0``).
* ``str``: a number (``"4"``, ``"1.5"``, ``"2e9"``) followed by an optional unit,
  case-insensitive, spaces allowed: ``B``; decimal ``KB MB GB TB PB`` (powers
  of 1000); binary ``KiB MiB GiB TiB PiB`` (powers of 1024); and the short
  forms ``K M G T P`` which, as in Slurm, Docker and ``ulimit``, are *binary*.
  ``"1.5G"`` is 1.5 GiB.  A fractional result is rounded down to whole bytes.
* ``float`` in ``(0, 1]``: a fraction of the device's total memory
  (``0.25`` is a quarter); requires the total to be known.

Everything else raises: ``bool`` and non-numeric types ``TypeError``;
negative, NaN, infinite, zero or >1 fractions, empty strings and unknown
units ``ValueError``; every message names the value and the accepted forms.
"""

from __future__ import annotations

import math
import re


__all__ = ["format_memory_size", "parse_memory_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
    "p": 1 << 50,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "pib": 1 << 50,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_FORMS = "an int number of bytes, a size string such as '4GiB', '512 MB' or '1.5G', or a fraction of total memory in (0, 1]"


def parse_memory_size(value: int | float | str, *, total: int | None = None, name: str = "size") -> int:
    """Return ``value`` in bytes; see the module docstring for the accepted forms.

    Args:
        value: the size as the user wrote it.
        total: total memory of the device in bytes, needed for fractions.
        name: the argument's name, used in error messages.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{name} must be {_FORMS}; got {value!r} of type {type(value).__name__}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be {_FORMS}; got a negative byte count {value}")
        return value
    if isinstance(value, float):
        if not (0.0 < value <= 1.0):  # also rejects NaN
            raise ValueError(
                f"{name} must be {_FORMS}; got the float {value!r} (a float is a fraction of total memory, "
                f"so it must be in (0, 1]; pass bytes as an int)"
            )
        if total is None:
            raise ValueError(f"{name}={value!r} is a fraction of total memory, but the total is not known here")
        return int(total * value)
    m = _SIZE_RE.match(value)
    if m is None:
        raise ValueError(f"{name} must be {_FORMS}; got {value!r}")
    number, unit = m.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(
            f"{name}: unknown unit {unit!r} in {value!r}; expected one of B, KB, MB, GB, TB, PB (powers of 1000), "
            f"KiB, MiB, GiB, TiB, PiB or K, M, G, T, P (powers of 1024)"
        )
    size = float(number) * factor
    if not math.isfinite(size):
        raise ValueError(f"{name}: {value!r} is too large")
    # Exact for integral numbers however large; floats only for the fractional part.
    if "." not in number and "e" not in number.lower():
        return int(number) * factor
    return int(size)


def format_memory_size(num_bytes: int | float) -> str:
    """``1536 * 2**20`` -> ``'1.50 GiB'``: binary units, two decimals, for messages."""
    size, unit = float(num_bytes), "B"
    for larger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024:
            break
        size, unit = size / 1024, larger
    return f"{int(size)} B" if unit == "B" else f"{size:.2f} {unit}"
