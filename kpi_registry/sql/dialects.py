"""What differs between the SQL dialects the compiler writes, as one record per dialect.

The compiler and ``sqlbuild`` never ask "is this PostgreSQL?": they read a field of the
dialect's record. A field that names a *form* (``series``, ``max_by``, ``median``, ``error``)
picks one of the builders in ``sqlbuild`` keyed by that form, so a new dialect that writes
these constructs like an existing one is one record here plus its golden files
(tests/golden/sql); one that needs a new form adds a builder to that form's table too.

Plain data, so that the CLI and the docs can read it without importing sqlglot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Dialect:
    """How one SQL dialect writes what the compiler needs.

    ``name``: sqlglot's name for it (what ``dialect=`` and ``kpi sql --dialect`` take).
    ``series``: how one row per integer in a range is made (``generate_series``: a
    GENERATE_SERIES table; ``sequence``: UNNEST(SEQUENCE(..)); ``generate_array``:
    UNNEST(GENERATE_ARRAY(..)); ``array_generate_range``: a LATERAL FLATTEN joined with a
    comma; ``explode``: EXPLODE(SEQUENCE(..)) in the select list).
    ``max_by``: the value on the row with the largest key, keeping NULL values
    (``arg_max_null``, ``array_agg``: an ordered ARRAY_AGG's first element, ``max_by``).
    ``median``: its exact median aggregate (``median``, ``percentile_cont`` WITHIN GROUP,
    ``percentile``), or None where it has none (see ``unsupported``).
    ``extreme_skips_nulls``: GREATEST/LEAST ignore NULL arguments (else each nullable
    argument falls back to the others).
    ``isfinite``: it has ISFINITE() (else ``ABS(x) < 'Infinity'``).
    ``nan_is_equal``: NaN = NaN is true, so NaN is turned into NULL before comparing.
    ``stored_nan``: a data column may hold NaN (turned into NULL when read, as pandas reads it).
    ``int_day_counts``: DATE_ADD refuses a BIGINT count of days (cast to INT).
    ``window_ignore_nulls``: a carried group is written with LAST_VALUE(.. IGNORE NULLS)
    in the same window pass as previous() (else a portable count of runs).
    ``supplied_check``: a KPI supplied as a column is checked to have one value per period and
    group, with a formatted error (needs ``error`` and FORMAT()).
    ``error``: how an expression raises an error with a message (``error``: ERROR(msg),
    ``raise_error``: RAISE_ERROR(msg), ``fail``: FAIL(msg), ``cast``: casting the message
    to a number, which fails showing the text), used by the row checks.
    ``unsupported``: function -> why it does not compile to this dialect.
    """

    name: str
    series: str
    max_by: str
    median: str | None
    error: str
    extreme_skips_nulls: bool = True
    isfinite: bool = False
    nan_is_equal: bool = False
    stored_nan: bool = False
    int_day_counts: bool = False
    window_ignore_nulls: bool = False
    supplied_check: bool = False
    unsupported: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def _reasons(**why: str) -> Mapping[str, str]:
    return MappingProxyType(dict(why))


DUCKDB = Dialect(
    "duckdb",
    series="generate_series",
    max_by="arg_max_null",  # ARG_MAX would skip rows whose value is NULL
    median="median",
    error="error",
    isfinite=True,
    nan_is_equal=True,
    stored_nan=True,
    window_ignore_nulls=True,
    supplied_check=True,
)
POSTGRES = Dialect(
    "postgres",
    series="generate_series",
    max_by="array_agg",
    median="percentile_cont",
    error="cast",  # PostgreSQL has no function that raises: see sqlbuild.raise_error
    nan_is_equal=True,
    stored_nan=True,
)
SNOWFLAKE = Dialect(
    "snowflake",
    series="array_generate_range",
    max_by="max_by",
    median="median",
    error="cast",
)
BIGQUERY = Dialect(
    "bigquery",
    series="generate_array",
    max_by="max_by",
    median=None,
    error="error",
    extreme_skips_nulls=False,
    unsupported=_reasons(
        median="BigQuery has no exact median aggregate (PERCENTILE_CONT is a window function "
        "only and APPROX_QUANTILES is approximate)"
    ),
)
SPARK = Dialect(
    "spark",
    series="explode",
    max_by="max_by",
    median="percentile",
    error="raise_error",
    stored_nan=True,  # a Spark DataFrame made from pandas keeps NaN
    int_day_counts=True,
)
TRINO = Dialect(
    "trino",
    series="sequence",
    max_by="max_by",
    median=None,
    error="fail",
    extreme_skips_nulls=False,
    unsupported=_reasons(
        median="Trino has no exact median aggregate (approx_percentile is approximate)"
    ),
)

#: Every dialect by name, in the order the CLI and the docs list them.
RECORDS: Mapping[str, Dialect] = MappingProxyType(
    {d.name: d for d in (DUCKDB, POSTGRES, SNOWFLAKE, BIGQUERY, SPARK, TRINO)}
)


def record(name: str) -> Dialect:
    """The record of a dialect name already checked by ``spec.check_dialect``."""
    return RECORDS[name]
