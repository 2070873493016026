"""The arithmetic of the formula language on numpy values, shared by every engine that
computes numbers in Python: the pandas engine, the attribution of a change, and the SQL
compiler where it folds constants or judges what a sparse cell contributes. One definition
of ``/``, ``^``, ``!=`` and the scalar functions keeps their missing-value rule
(``formula.MISSING_VALUES``) the same everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

# Every power of ten up to 1e22 is a double, so dividing by one is correctly rounded.
_POWERS_OF_TEN = np.array([10.0**i for i in range(23)])
LOG10_E = 0.4342944819032518  # math.log10(math.e); the SQL engine multiplies by the same


def round_sums(total: np.ndarray, magnitude: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """Sums of ``terms`` numbers (of absolute values adding up to ``magnitude``) rounded to
    the finest power of ten that is coarser than the floating-point error they can carry.

    Binary floating point holds 0.1 and 0.2 only approximately, so 0.1 + 0.2 is 0.3 + 5.6e-17
    and 100.1 - 100 - 0.1 is -5.7e-15: invoice lines in cents would make movements out of
    nothing. Adding ``terms`` doubles and reading each input to the nearest double is off by
    at most ``(terms + 2) * magnitude * 2**-53`` from the exact decimal sum, including the two
    roundings below; rounding to a power of ten ``q`` at least twice that recovers the exact
    decimal sum whenever it is a multiple of ``q`` (every input is), as the double nearest it,
    the same double whatever the order of the additions. So cents stay exact up to about
    4.5e13 / (terms + 2) of magnitude, and integers are never changed; only digits below what
    a double sum can vouch for (its 15th or 16th significant digit) are ever dropped.

    Where that quantum would be 1 or more (magnitudes beyond about 4.5e15 / (terms + 2)) or
    below 1e-22, or a sum has one term, the sum is returned as it is. The SQL engine does the
    same arithmetic (see ``sqlbuild.decimal_sum``) in the same order. Returns a new array.
    """
    total = np.array(total, dtype=float)
    error = magnitude * (terms + 2.0) * 2.0**-52
    with np.errstate(invalid="ignore"):  # NaN and inf totals are left as they are
        rounded = np.flatnonzero((terms > 1) & (error < 1.0) & (error >= 1e-22))
    if rounded.size:
        digits = np.floor(-np.log(error[rounded]) * LOG10_E).astype(np.int64)
        scale = _POWERS_OF_TEN[np.clip(digits, 0, 22)]
        total[rounded] = np.floor(total[rounded] * scale + 0.5) / scale
    return total


def divide(a: Any, b: Any) -> Any:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    shape = np.broadcast_shapes(a.shape, b.shape)
    out = np.full(shape, np.nan)
    np.divide(a, b, out=out, where=(b != 0) & ~np.isnan(b))
    return out if shape else float(out)


def power(a: Any, b: Any) -> Any:
    """``a ^ b``, missing where either side is (numpy's 1 ^ NaN and NaN ^ 0 are 1; SQL's
    POWER and the other operators say missing), where the base is 0 and the exponent
    negative (1 / 0 in disguise, as division by zero), and where a negative base (also -inf,
    which numpy would raise to 0 or inf) has a fractional exponent."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore"):
        fractional = (a < 0) & (b != np.floor(b))
    missing = np.isnan(a) | np.isnan(b) | ((a == 0) & (b < 0)) | fractional
    out = np.where(missing, np.nan, np.power(a, b))
    return out if out.ndim else out[()]


def not_equal(a: Any, b: Any) -> Any:
    return np.not_equal(a, b) & ~np.isnan(a) & ~np.isnan(b)  # missing compares false


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": divide,
    "^": power,
    "=": np.equal,
    "!=": not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "and": np.logical_and,
    "or": np.logical_or,
}


def binary(op: str, a: Any, b: Any) -> Any:
    with np.errstate(all="ignore"):  # overflow and 0/0 become missing values below
        return BINARY[op](a, b)


def coalesce(*xs: Any) -> Any:
    out = xs[-1]
    for x in reversed(xs[:-1]):
        out = np.where(np.isnan(x), out, x)
    return out


def fold(func: Callable, xs: Iterable[Any]) -> Any:
    xs = list(xs)
    out = xs[0]
    for x in xs[1:]:
        out = func(out, x)
    return out


SCALAR_FUNCS: dict[str, Callable[..., Any]] = {
    "if": lambda c, a, b: np.where(c, a, b),
    "abs": np.abs,
    "greatest": lambda *xs: fold(np.fmax, xs),
    "least": lambda *xs: fold(np.fmin, xs),
    "coalesce": coalesce,
}
