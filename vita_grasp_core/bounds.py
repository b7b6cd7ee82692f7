"""Ranges of the numbers read from configs, checkpoints and parameters (issue 21 item 9).

``x > 0`` is true for ``inf`` and false for nothing that is NaN-safe, so every number a user or
a file can set is checked here: finite, the right kind (``bool`` is no number), and inside a
range with a sane upper bound (an ``output_size`` of 10^6 x 10^6 asked for 186 GiB before any
error). Each config dataclass lists its ranges once (``BOUNDS``) and calls :func:`check_bounds`
from ``__post_init__``.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class Range(NamedTuple):
    """``lo <= x <= hi`` (``lo_open``: ``lo < x``; ``hi_open``: ``x < hi``); ``integer``: whole
    numbers only; ``none``: ``None`` is allowed; ``many``: a list / tuple of such numbers (a
    scalar field refuses lists)."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    none: bool = False
    many: bool = False

    def describe(self) -> str:
        kind = "integer" if self.integer else "finite number"
        interval = (f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        text = (f"a list of {kind}s in {interval}" if self.many
                else f"{'an' if self.integer else 'a'} {kind} in {interval}")
        return text + (" or null" if self.none else "")

    def holds(self, x) -> bool:
        if x is None:
            return self.none
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            return False
        if not math.isfinite(x) or (self.integer and x != int(x)):
            return False
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below


def check_bounds(obj, bounds: dict[str, Range], where: str, error=ValueError,
                 sep: str = ".") -> None:
    """Check the fields ``bounds`` names on ``obj`` (each element of a list / tuple field).
    Command-line options: ``check_bounds(args, BOUNDS, "-", sep="-")`` names ``--field``.

    Raises:
        error: one line, ``<where>.<field> must be a finite number in [lo, hi], got <value>``.
    """
    for name, r in bounds.items():
        value = getattr(obj, name)
        is_list = isinstance(value, (list, tuple))
        items = value if is_list else [value]
        if value is None:
            ok = r.none
        else:
            ok = is_list == r.many and bool(items) and all(r.holds(x) for x in items)
        if not ok:
            prefix = f"{where}{sep}" if where else ""
            raise error(f"{prefix}{name} must be {r.describe()}, got {value!r}")


def count(lo: int = 1, hi: int = 10**9, none: bool = False, many: bool = False) -> Range:
    """An integer range (counts, sizes, seeds)."""
    return Range(lo, hi, integer=True, none=none, many=many)


#: The largest seed accepted (numpy / torch take 64-bit seeds).
MAX_SEED = 2**63 - 1
