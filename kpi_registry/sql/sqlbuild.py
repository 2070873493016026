"""Small builders for sqlglot syntax trees, and the few constructs that differ by dialect.

sqlglot does not add parentheses when a tree is built by hand, so the arithmetic builders here
add exactly those the precedence needs. Every other module builds SQL through these helpers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from ..arithmetic import LOG10_E
from .dialects import record
from .spec import PeriodFormat

# Words that must be quoted when used as a column or table name in at least one dialect.
_RESERVED = frozenset(
    """all alter and any array as asc between both by case cast check collate column constraint
    create cross cube current current_date current_time current_timestamp current_user default
    delete desc distinct drop else end except exists extract false fetch filter for foreign from
    full grant group grouping having if ilike in inner insert intersect interval into is join
    lateral leading left like limit natural not null nulls of offset on only or order outer over
    partition primary qualify range recursive references right rollup row rows select session_user
    set some table tablesample then to trailing true union unique unnest update user using values
    when where window with""".split()
)
_SAFE = re.compile(r"^[a-z_][a-z0-9_]*$")
_SAFE_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # unquoted, so folded as SQL folds it


def ident(name: str) -> exp.Identifier:
    """An identifier, quoted only when it has to be (mixed case, spaces, reserved words)."""
    return exp.Identifier(this=name, quoted=not _SAFE.match(name) or name in _RESERVED)


_TABLE_PART = re.compile(r'"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|([A-Za-z_][A-Za-z0-9_$-]*)')


def table_name(text: str) -> exp.Table:
    """The table a query reads, from ``[catalog.][schema.]table``: each part a plain name
    (letters, digits, ``_``, ``$``, ``-``) or one in double quotes or backticks (a quote
    inside doubled). Anything else is refused, so that the text can only ever name a table:
    ``read_csv('/etc/passwd')`` or ``(SELECT ...)`` put into the query would run there."""
    from ..errors import DataError, TableNameError

    def refuse(why: str) -> TableNameError:
        return TableNameError(text, why)

    if not text.strip():
        raise DataError("give the table to read, e.g. --table analytics.mrr")
    parts: list[exp.Identifier] = []
    pos, text_end = len(text) - len(text.lstrip()), len(text.rstrip())
    while True:
        if pos < text_end and text[pos] in '"`':
            closing = text.find(text[pos], pos + 1)
            while 0 <= closing < text_end - 1 and text[closing + 1] == text[pos]:
                closing = text.find(text[pos], closing + 2)  # a doubled quote is one quote
            if closing < 0 or closing >= text_end:
                raise refuse(f"the quote at character {pos + 1} is never closed")
        match = _TABLE_PART.match(text, pos, text_end)
        if match is None:
            found = repr(text[pos]) if pos < text_end else "nothing"
            raise refuse(f"expected a name at character {pos + 1}, found {found}")
        quoted, backticked, plain = match.groups()
        if plain is not None:
            keep = bool(_SAFE_TABLE.match(plain)) and plain.lower() not in _RESERVED
            parts.append(exp.Identifier(this=plain, quoted=not keep))
        else:
            if quoted is not None:
                name = quoted.replace('""', '"')
            else:
                name = backticked.replace("``", "`")
            if not name:
                raise refuse("a quoted name is empty")
            parts.append(exp.Identifier(this=name, quoted=True))
        pos = match.end()
        if pos == text_end:
            break
        if text[pos] != ".":
            raise refuse(f"unexpected {text[pos]!r} at character {pos + 1}")
        pos += 1
    if len(parts) > 3:
        raise refuse(f"{len(parts)} dotted parts, at most 3 (catalog.schema.table)")
    parts = [None] * (3 - len(parts)) + parts
    return exp.Table(this=parts[2], db=parts[1], catalog=parts[0])


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(table) if table else None)


def alias(expression: exp.Expression, name: str) -> exp.Alias:
    return exp.Alias(this=expression, alias=ident(name))


def num(value: float) -> exp.Expression:
    if value < 0:
        return exp.Neg(this=num(-value))
    text = str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(float(value))
    return exp.Literal.number(text)


def string(text: str) -> exp.Literal:
    return exp.Literal.string(text)


def comment(text: str) -> str:
    """Text for ``add_comments``: a comment cannot end early."""
    return " " + text.replace("*/", "* /") + " "


def cast(expression: exp.Expression, to: str) -> exp.Cast:
    return exp.Cast(this=expression, to=exp.DataType.build(to))


def double(expression: exp.Expression) -> exp.Cast:
    return cast(expression, "DOUBLE")


# -- operators with just enough parentheses ---------------------------------------------------
_PRECEDENCE: dict[type, int] = {
    exp.Or: 1,
    exp.And: 2,
    exp.Not: 3,
    exp.EQ: 4,
    exp.NEQ: 4,
    exp.GT: 4,
    exp.GTE: 4,
    exp.LT: 4,
    exp.LTE: 4,
    exp.Is: 4,
    exp.NullSafeEQ: 4,
    exp.Add: 5,
    exp.Sub: 5,
    exp.DPipe: 5,
    exp.Mul: 6,
    exp.Div: 6,
    exp.Neg: 7,
}


def _prec(e: exp.Expression) -> int:
    return _PRECEDENCE.get(type(e), 9)


def binary(cls: type[exp.Binary], left: exp.Expression, right: exp.Expression) -> exp.Expression:
    p = _PRECEDENCE[cls]
    if _prec(left) < p:
        left = exp.Paren(this=left)
    if _prec(right) <= p and not (cls in (exp.And, exp.Or) and type(right) is cls):
        right = exp.Paren(this=right)
    return cls(this=left, expression=right)


def neg(e: exp.Expression) -> exp.Expression:
    return exp.Neg(this=exp.Paren(this=e) if _prec(e) < 9 else e)


def not_(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Paren(this=e) if _prec(e) < 4 else e)


def and_(*parts: exp.Expression) -> exp.Expression:
    out = parts[0]
    for part in parts[1:]:
        out = binary(exp.And, out, part)
    return out


def or_(*parts: exp.Expression) -> exp.Expression:
    out = parts[0]
    for part in parts[1:]:
        out = binary(exp.Or, out, part)
    return out


def case(*whens: tuple[exp.Expression, exp.Expression], default: exp.Expression | None = None):
    """CASE WHEN ... END, built directly: sqlglot's when()/else_() builders copy the whole
    CASE at every step, which made deep formulas slow to compile. An expression given twice
    is copied, so that no node sits in two places of the tree."""
    seen: set[int] = set()

    def once(e: exp.Expression) -> exp.Expression:
        if id(e) in seen or e.parent is not None:
            return e.copy()
        seen.add(id(e))
        return e

    ifs = [exp.If(this=once(cond), true=once(value)) for cond, value in whens]
    return exp.Case(ifs=ifs, default=once(default) if default is not None else None)


def coalesce(*args: exp.Expression) -> exp.Expression:
    return exp.Coalesce(this=args[0], expressions=list(args[1:]))


def eq(left: exp.Expression, right: exp.Expression) -> exp.Expression:
    return binary(exp.EQ, left, right)


def is_null(e: exp.Expression) -> exp.Expression:
    return exp.Is(this=e, expression=exp.Null())


def not_null(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=is_null(e))


# -- windows -----------------------------------------------------------------------------------
def ascending(e: exp.Expression, dialect: str) -> exp.Ordered:
    """Ascending order on a column that is never NULL, written without a NULLS clause."""
    nulls_first = Dialect.get_or_raise(dialect).NULL_ORDERING == "nulls_are_small"
    return exp.Ordered(this=e, nulls_first=nulls_first)


def window(
    function: exp.Expression,
    partition: Sequence[exp.Expression],
    order: Sequence[exp.Ordered] = (),
    frame: str | None = None,
) -> exp.Window:
    """``frame``: None, "running" (up to this row), "before" (up to the previous row) or
    "all" (the whole partition)."""
    spec = None
    if frame == "all":
        spec = exp.WindowSpec(
            kind="ROWS",
            start="UNBOUNDED",
            start_side="PRECEDING",
            end="UNBOUNDED",
            end_side="FOLLOWING",
        )
    elif frame == "running":
        spec = exp.WindowSpec(
            kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"
        )
    elif frame == "before":
        spec = exp.WindowSpec(
            kind="ROWS",
            start="UNBOUNDED",
            start_side="PRECEDING",
            end=exp.Literal.number(1),
            end_side="PRECEDING",
        )
    return exp.Window(
        this=function,
        partition_by=list(partition) or None,
        order=exp.Order(expressions=list(order)) if order else None,
        spec=spec,
        over="OVER",
    )


# -- constructs that differ by dialect ----------------------------------------------------------
# Each reads a field of the dialect's record (dialects.py); a field naming a form picks its
# builder from the table after it.
def _generate_series(first, last, out):
    table = exp.Table(
        this=exp.GenerateSeries(start=first, end=last),
        alias=exp.TableAlias(this=ident("s"), columns=[out]),
    )
    return table, col(out.this, "s"), "CROSS"


def _sequence(first, last, out):
    table = exp.Unnest(
        expressions=[exp.func("SEQUENCE", first, last)],
        alias=exp.TableAlias(this=ident("s"), columns=[out]),
    )
    return table, col(out.this, "s"), "CROSS"


def _generate_array(first, last, out):
    table = exp.Unnest(
        expressions=[exp.func("GENERATE_ARRAY", first, last)],
        alias=exp.TableAlias(columns=[out]),
    )
    return table, col(out.this), "CROSS"


def _array_generate_range(first, last, out):
    flatten = exp.Lateral(
        this=exp.Explode(
            this=exp.Kwarg(
                this=exp.var("INPUT"),
                expression=exp.func("ARRAY_GENERATE_RANGE", first, binary(exp.Add, last, num(1))),
            )
        ),
        alias=exp.TableAlias(this=ident("s")),
    )
    return flatten, cast(exp.column("value", "s"), "INT"), None  # joined with a comma


def _explode(first, last, out):
    return None, exp.Explode(this=exp.func("SEQUENCE", first, last)), None


_SERIES = {
    "generate_series": _generate_series,
    "sequence": _sequence,
    "generate_array": _generate_array,
    "array_generate_range": _array_generate_range,
    "explode": _explode,
}


def number_series(first: exp.Expression, last: exp.Expression, name: str, dialect: str):
    """(FROM-clause item or None, value expression, join type) for one row per integer from
    first to last."""
    return _SERIES[record(dialect).series](first, last, ident(name))


def _array_agg_first(value, key, smallest):
    ordered = exp.Order(
        this=value, expressions=[exp.Ordered(this=key, desc=not smallest, nulls_first=False)]
    )
    agg = exp.Filter(
        this=exp.ArrayAgg(this=ordered),
        expression=exp.Where(this=not_null(key.copy())),
    )
    # sqlglot counts from 0 here and writes [1] for PostgreSQL
    return exp.Bracket(this=exp.Paren(this=agg), expressions=[exp.Literal.number(0)])


def _arg_max_null(value, key, smallest):
    name = "ARG_MIN_NULL" if smallest else "ARG_MAX_NULL"
    return exp.Anonymous(this=name, expressions=[value, key])


def _max_by(value, key, smallest):
    return exp.Anonymous(this="MIN_BY" if smallest else "MAX_BY", expressions=[value, key])


_MAX_BY = {"array_agg": _array_agg_first, "arg_max_null": _arg_max_null, "max_by": _max_by}


def max_by(
    value: exp.Expression, key: exp.Expression, dialect: str, smallest: bool = False
) -> exp.Expression:
    """The value on the row with the largest (or smallest) key; rows whose key is NULL are
    ignored, a NULL value is not (a row without a group is in the NULL group, as in pandas)."""
    return _MAX_BY[record(dialect).max_by](value, key, smallest)


def _percentile_cont(value):
    return exp.WithinGroup(
        this=exp.PercentileCont(this=exp.Literal.number("0.5")),
        expression=exp.Order(expressions=[exp.Ordered(this=value, nulls_first=False)]),
    )


def _percentile(value):
    return exp.Anonymous(this="PERCENTILE", expressions=[value, exp.Literal.number("0.5")])


_MEDIAN = {
    "median": lambda value: exp.Median(this=value),
    "percentile_cont": _percentile_cont,
    "percentile": _percentile,
}


def median(value: exp.Expression, dialect: str) -> exp.Expression:
    """The exact median; a dialect without one lists median in its ``unsupported``."""
    return _MEDIAN[record(dialect).median](value)


def extreme_repeats(dialect: str) -> bool:
    """Does :func:`extreme` write each nullable argument more than once in this dialect?"""
    return not record(dialect).extreme_skips_nulls


def extreme(
    kind: str, args: list[exp.Expression], nullable: list[bool], dialect: str
) -> exp.Expression:
    """greatest()/least() that ignore missing arguments, as numpy's fmax/fmin do.

    DuckDB, PostgreSQL and Spark skip NULLs already and Snowflake has LEAST_IGNORE_NULLS;
    in BigQuery and Trino a NULL argument makes the result NULL, so there each nullable
    argument falls back to the others."""
    cls = exp.Greatest if kind == "greatest" else exp.Least
    if extreme_repeats(dialect) and any(nullable):
        args = [
            coalesce(a, *[b for j, b in enumerate(args) if j != i]) if nullable[i] else a
            for i, a in enumerate(args)
        ]
    return cls(this=args[0], expressions=args[1:], ignore_nulls=record(dialect).extreme_skips_nulls)


def finite(value: exp.Expression, dialect: str) -> exp.Expression:
    """A condition true for finite numbers (false for NULL, NaN and +-infinity)."""
    if record(dialect).isfinite:
        return exp.func("ISFINITE", value)
    infinity = cast(string("Infinity"), "DOUBLE")
    return binary(exp.LT, exp.Abs(this=value), infinity)


def not_nan(value: exp.Expression, dialect: str) -> exp.Expression:
    """The value with NaN as NULL (DuckDB and PostgreSQL read NaN = NaN as true), as the
    pandas engine, where NaN is the missing value, sees it."""
    if record(dialect).nan_is_equal:
        return exp.Nullif(this=value, expression=cast(string("NaN"), "DOUBLE"))
    return value


def _cast_fails(message: exp.Expression) -> exp.Expression:
    # PostgreSQL and Snowflake have no function that raises: a cast of the text to a number
    # fails and shows the text ("invalid input syntax for type integer: ...")
    return cast(message, "INT")


_RAISE = {
    "error": lambda message: exp.Anonymous(this="ERROR", expressions=[message]),
    "raise_error": lambda message: exp.Anonymous(this="RAISE_ERROR", expressions=[message]),
    "fail": lambda message: exp.Anonymous(this="FAIL", expressions=[message]),
    "cast": _cast_fails,
}


def raise_error(message: exp.Expression, dialect: str) -> exp.Expression:
    """An expression that stops the query with ``message`` (text computed from the data, so
    that no database can fold it into a constant and fail before reading a row)."""
    return _RAISE[record(dialect).error](message)


def infinity() -> exp.Expression:
    return cast(string("Infinity"), "DOUBLE")


def decimal_sum(value: exp.Expression, terms: exp.Expression) -> exp.Expression:
    """SUM(value) rounded as ``evaluation.round_sums`` rounds the pandas engine's sums: where
    ``terms`` (an aggregate: how many numbers were added) is above 1, to the finest power of
    ten above the sum's floating-point error, so that invoice lines in cents add up to their
    amount in decimal (0.1 + 0.2 = 0.3) and both engines give the same double.

    The error is SUM(ABS(value)) * (terms + 2) * 2^-52, the power of ten 10^-d with
    d = FLOOR(-LN(error) * LOG10(e)), and the sum becomes FLOOR(sum * 10^d + 0.5) / 10^d:
    only FLOOR, LN, POWER and arithmetic on doubles, in the order numpy does it. Every dialect
    has them (unlike ROUND(double, n), which PostgreSQL lacks, or ROUND, whose ties differ by
    dialect), and 10^d is exact (d is 0 to 22)."""
    total = exp.Sum(this=value.copy())
    magnitude = exp.Sum(this=exp.Abs(this=value.copy()))
    error = binary(exp.Mul, magnitude, binary(exp.Add, terms, num(2)))
    error = binary(exp.Mul, error, num(2.0**-52))
    # written with an exponent, so that no dialect reads it as a DECIMAL first
    log10_e = exp.Literal.number(f"{LOG10_E!r}e0")  # round_sums's, to the last bit
    digits = exp.Floor(this=binary(exp.Mul, neg(exp.Ln(this=error.copy())), log10_e))
    scale = exp.Pow(this=num(10), expression=digits)
    shifted = binary(exp.Add, binary(exp.Mul, total.copy(), scale), num(0.5))
    rounded = binary(exp.Div, exp.Floor(this=shifted), scale.copy())
    several = and_(
        binary(exp.GT, terms.copy(), num(1)),
        binary(exp.LT, error.copy(), num(1)),
        binary(exp.GTE, error.copy(), num(1e-22)),
    )
    return case((several, rounded), default=total)


DECIMAL_SUM_COMMENT = (
    "Sums of several rows are rounded to the finest power of ten above their floating-point "
    "error (0.1 + 0.2 gives 0.3, not 0.30000000000000004), as kpi eval rounds them, so that "
    "both give the same numbers; a single row is kept as it is"
)


def sum_parts(value: exp.Expression) -> tuple[exp.Expression, exp.Expression, exp.Expression]:
    """SUM(value), how many rows were added, and the sum's error bound, as ``decimal_sum``
    computes them: for a query that names them once and rounds with ``rounded_sum``."""
    magnitude = exp.Sum(this=exp.Abs(this=value.copy()))
    rows = exp.Count(this=value.copy())
    error = binary(exp.Mul, magnitude, binary(exp.Add, rows.copy(), num(2)))
    return exp.Sum(this=value.copy()), rows, binary(exp.Mul, error, num(2.0**-52))


def rounded_sum(
    total: exp.Expression, rows: exp.Expression, error: exp.Expression
) -> exp.Expression:
    """``decimal_sum`` from parts a query already computed: the same doubles, step by step."""
    log10_e = exp.Literal.number(f"{LOG10_E!r}e0")
    digits = exp.Floor(this=binary(exp.Mul, neg(exp.Ln(this=error.copy())), log10_e))
    scale = exp.Pow(this=num(10), expression=digits)
    shifted = binary(exp.Add, binary(exp.Mul, total.copy(), scale), num(0.5))
    rounded = binary(exp.Div, exp.Floor(this=shifted), scale.copy())
    several = and_(
        binary(exp.GT, rows.copy(), num(1)),
        binary(exp.LT, error.copy(), num(1)),
        binary(exp.GTE, error.copy(), num(1e-22)),
    )
    return case((several, rounded), default=total)


def numeric_input(column: exp.Expression, dialect: str) -> exp.Expression:
    """A data column as a double; where a stored NaN can occur (DuckDB, PostgreSQL, Spark)
    it becomes NULL, since the pandas engine treats NaN as a missing value (a Spark DataFrame
    made from pandas keeps NaN, and Spark sums it into NaN)."""
    value = double(column)
    if record(dialect).stored_nan:
        return exp.Nullif(this=value, expression=cast(string("NaN"), "DOUBLE"))
    return value


# -- periods -------------------------------------------------------------------------------------
# Periods are integers counted the way pandas counts them (months since 1970-01, days since
# 1970-01-01, ...), so the grid, previous() and the coarser grains are plain integer arithmetic.
_EPOCH_YEAR = 1970


def _epoch() -> exp.Expression:
    return cast(string("1970-01-01"), "DATE")


def _int(e: exp.Expression) -> exp.Expression:
    return cast(e, "INT")


def _floor_div(e: exp.Expression, by: int) -> exp.Expression:
    # a decimal divisor: PostgreSQL and Trino would truncate an integer division
    return _int(exp.Floor(this=binary(exp.Div, e, exp.Literal.number(f"{by}.0"))))


def _year_month(date: exp.Expression) -> tuple[exp.Expression, exp.Expression]:
    year = exp.Extract(this=exp.var("YEAR"), expression=date)
    month = exp.Extract(this=exp.var("MONTH"), expression=date)
    return year, month


def _month_of_date(date: exp.Expression) -> exp.Expression:
    year, month = _year_month(date)
    years = binary(exp.Sub, year, num(_EPOCH_YEAR))
    total = binary(exp.Add, binary(exp.Mul, years, num(12)), month)
    return _int(binary(exp.Sub, total, num(1)))


def _day_of_date(date: exp.Expression) -> exp.Expression:
    return exp.DateDiff(this=cast(date, "DATE"), expression=_epoch(), unit=exp.var("DAY"))


def _text_part(value: exp.Expression, start: int, length: int) -> exp.Expression:
    text = cast(value, "VARCHAR")
    return _int(exp.Substring(this=text, start=num(start), length=num(length)))


def base_ordinal(value: exp.Expression, fmt: PeriodFormat) -> exp.Expression:
    """The integer base period of a row's period value."""
    if fmt.kind == "ordinal":
        return value
    if fmt.kind == "date":
        return _month_of_date(value) if fmt.base == "M" else _day_of_date(value)
    year = binary(exp.Sub, _text_part(value, 1, 4), num(_EPOCH_YEAR))
    if fmt.base == "Y":
        return year
    if fmt.base == "Q":
        quarter = _text_part(value, 6, 1)
        return binary(exp.Sub, binary(exp.Add, binary(exp.Mul, year, num(4)), quarter), num(1))
    if fmt.base == "M":
        month = _text_part(value, 6, 2)
        return binary(exp.Sub, binary(exp.Add, binary(exp.Mul, year, num(12)), month), num(1))
    day = cast(exp.Substring(this=cast(value, "VARCHAR"), start=num(1), length=num(10)), "DATE")
    return _day_of_date(day)


def _add_days(days: exp.Expression) -> exp.Expression:
    return exp.DateAdd(this=_epoch(), expression=days, unit=exp.var("DAY"))


def _add_months(months: exp.Expression) -> exp.Expression:
    return exp.DateAdd(this=_epoch(), expression=months, unit=exp.var("MONTH"))


def coarse_ordinal(bp: exp.Expression, base: str, grain: str) -> exp.Expression:
    """Map a base period number onto the coarser grain, as pandas' asfreq does (a week
    belongs to the month of its last day)."""
    if base == grain:
        return bp
    if base in ("M", "Q"):
        per_year = 12 if base == "M" else 4
        if grain == "Q":
            return _floor_div(bp, 3)
        return _floor_div(bp, per_year)
    if base == "D" and grain == "W":
        return binary(exp.Add, _floor_div(binary(exp.Add, bp, num(3)), 7), num(1))
    # day or week to month, quarter or year: go through the calendar date
    last_day = bp if base == "D" else binary(exp.Sub, binary(exp.Mul, bp, num(7)), num(4))
    date = _add_days(last_day)
    if grain == "Y":
        year, _ = _year_month(date)
        return _int(binary(exp.Sub, year, num(_EPOCH_YEAR)))
    month = _month_of_date(date)
    return month if grain == "M" else _floor_div(month, 3)


def period_start(p: exp.Expression, freq: str) -> exp.Expression:
    """The first day of period number ``p`` as a DATE."""
    if freq == "D":
        start = _add_days(p)
    elif freq == "W":
        start = _add_days(binary(exp.Sub, binary(exp.Mul, p, num(7)), num(10)))
    else:
        months = p if freq == "M" else binary(exp.Mul, p, num(3 if freq == "Q" else 12))
        start = _add_months(months)
    return cast(start, "DATE")


def period_label(p: exp.Expression, freq: str, labels: str) -> exp.Expression:
    """The label pandas gives period ``p``: text such as 2024-01, 2024Q1, 2024, 2024-01-31 or
    2024-01-01/2024-01-07, or the period's first day as a TIMESTAMP."""
    start = period_start(p, freq)
    if labels == "timestamp":
        return cast(start, "TIMESTAMP")
    text = cast(start, "VARCHAR")
    if freq == "D":
        return text
    if freq == "M":
        return exp.Substring(this=text, start=num(1), length=num(7))
    year = exp.Substring(this=text, start=num(1), length=num(4))
    if freq == "Y":
        return year
    if freq == "Q":
        quarter = cast(exp.Extract(this=exp.var("QUARTER"), expression=start), "VARCHAR")
        return binary(exp.DPipe, binary(exp.DPipe, year, string("Q")), quarter)
    end = cast(
        cast(_add_days(binary(exp.Sub, binary(exp.Mul, p, num(7)), num(4))), "DATE"), "VARCHAR"
    )
    return binary(exp.DPipe, binary(exp.DPipe, text, string("/")), end)


def calendar_days(p: exp.Expression, freq: str, func: str) -> exp.Expression:
    """days_in_period() or business_days_in_period() of period number ``p``: the same counts
    as ``periods.calendar_days``, by the same integer arithmetic on days since 1970-01-01."""
    if func == "days_in_period" and freq in ("D", "W"):
        return num(1 if freq == "D" else 7)
    if func == "business_days_in_period" and freq == "W":
        return num(5)
    start = _day_of_date(period_start(p, freq))
    if freq == "D":
        end: exp.Expression = binary(exp.Add, start, num(1))
    else:
        end = _day_of_date(period_start(binary(exp.Add, p, num(1)), freq))
    if func == "days_in_period":
        return exp.Paren(this=binary(exp.Sub, end, start))
    return exp.Paren(this=binary(exp.Sub, _weekdays_before(end), _weekdays_before(start)))


def _weekdays_before(day: exp.Expression) -> exp.Expression:
    """Monday-Friday days from Monday 1969-12-29 up to ``day`` (exclusive)."""
    shifted = binary(exp.Add, day, num(3))
    weeks = _floor_div(shifted, 7)
    rest = binary(exp.Sub, shifted.copy(), binary(exp.Mul, weeks.copy(), num(7)))
    capped = case((binary(exp.LT, rest, num(5)), rest.copy()), default=num(5))
    return binary(exp.Add, binary(exp.Mul, weeks, num(5)), capped)
