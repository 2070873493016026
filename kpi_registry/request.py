"""The request contract both engines share: what a caller asks for (:class:`Request`), the
checks a request must pass against the KPIs and the data's columns, and the errors that say
why it cannot be answered. The pandas engine (``evaluation``) and the SQL engines raise the
same errors from here, so a request fails the same way whichever engine runs it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import (
    ColumnNotGivenError,
    DataError,
    GrainError,
    MissingDatapointError,
    RequestColumnsError,
    shown_columns,
)
from .formula import Name
from .model import KPI, Datapoint

if TYPE_CHECKING:
    from .periods import TimeAxis


@dataclass
class Request:
    """The arguments of Registry.evaluate, normalised."""

    period: str | None = None
    entity: str | None = None
    by: list[str] = field(default_factory=list)
    grain: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    drop_invalid: bool = False  # compute on the valid rows (with a warning) instead of failing
    date_format: str | None = None  # how text dates in the period column are written


def used_datapoints(
    kpis: Mapping[str, KPI], ids: Sequence[str], columns: Collection[Any], req: Request
) -> dict[str, Datapoint]:
    """The datapoints the KPIs read from ``columns`` (a KPI given as a column reads none),
    each as the first KPI to declare it declares it, as the engines take them."""
    specs: dict[str, Datapoint] = {}
    seen: set[str] = set()
    todo = list(ids)
    while todo:
        kpi_id = todo.pop(0)
        if kpi_id in seen or kpi_id not in kpis:
            continue
        seen.add(kpi_id)
        kpi = kpis[kpi_id]
        if req.columns.get(kpi_id, kpi_id) in columns or kpi.expression is None:
            continue
        for name, spec in kpi.datapoints.items():
            if req.columns.get(name, name) in columns:
                specs.setdefault(name, spec)
        for node in [kpi.expression, *kpi.grain_expressions.values()]:
            todo.extend(n.name for n in node.walk() if isinstance(n, Name) and n.name in kpis)
    return specs


# Messages shared with the SQL engine, which checks the same request against a table's columns.
def check_request(req: Request) -> None:
    """The period, entity and group columns name different columns (as ``kpi eval`` checks
    its --period, --entity and --by)."""
    for n, col in enumerate(req.by):
        if col in req.by[:n]:
            raise RequestColumnsError("by", col, "twice")
        if col == req.period:
            raise RequestColumnsError("by", col, "period")
    if req.entity is not None and req.entity == req.period:
        raise RequestColumnsError("entity", req.entity, "period")


def needs_period(func: str, kpis: Sequence[str], scalar: bool = False) -> DataError:
    """previous() or ever_before() evaluated without a period column: ``kpis`` are the KPIs
    being evaluated, the one asked for first and the one whose formula calls ``func`` last."""
    who = f"KPI {kpis[0]!r} uses {func}()" if kpis else f"{func}()"
    if len(kpis) > 1:
        who += f" (in {kpis[-1]!r})"
    what = "compares each period with the one before"
    if func != "previous":
        what = "looks back over earlier periods"
    if scalar:
        return DataError(
            f"{who}, which {what}; numbers given as a mapping have no periods: "
            "pass rows as a DataFrame with period='your_period_column'"
        )
    return ColumnNotGivenError("period", f"{who}, which {what}")


def calendar_needs_period(func: str, kpis: Sequence[str], scalar: bool = False) -> DataError:
    """days_in_period() or business_days_in_period() evaluated without a period column."""
    who = f"KPI {kpis[0]!r} uses {func}()" if kpis else f"{func}()"
    if len(kpis) > 1:
        who += f" (in {kpis[-1]!r})"
    if scalar:
        return DataError(
            f"{who}, which counts the days of each period; numbers given as a mapping have no "
            "periods: pass rows as a DataFrame with period='your_period_column'"
        )
    return ColumnNotGivenError("period", f"{who}, which counts the days of each period")


def check_grain(kpi: KPI, grain: str, asked_for: Sequence[str]) -> None:
    """A KPI whose formula is defined at some grains only, asked for at another (``grain``:
    the output period's frequency code)."""
    if not kpi.grains:
        return
    name = grain_name(grain)
    if name not in kpi.grains and name not in kpi.grain_expressions:
        raise GrainError(kpi.id, name, kpi.grains, kpi.grain_reason, list(asked_for))


def grain_name(code: str) -> str:
    """day, week, month, quarter or year for a frequency code."""
    from .periods import GRAINS  # here, so that checking a request needs no pandas

    return next((g for g, c in GRAINS.items() if c == code), code)


def distinct_needs_entity(name: str) -> DataError:
    return ColumnNotGivenError(
        "entity",
        f"datapoint {name!r} counts different values per entity (rows: distinct)",
        "without one, count_distinct() counts different values over the rows",
    )


def average_needs_entity(name: str, grain: str) -> DataError:
    """Without an entity each row is a cell of its own: an average over the months an entity
    has a value (``time: average`` with ``missing: null``) cannot be formed at a coarser grain;
    each row's share of the months would be a different, silently wrong number."""
    return ColumnNotGivenError(
        "entity",
        f"datapoint {name!r} is averaged over the months an entity has a value (time: "
        f"average, missing: null), which at {grain} grain needs to know whose months they are",
        "or evaluate at the data's own grain",
    )


def check_columns(req: Request, columns: Collection[Any]) -> None:
    """Every column the request names must be in the data."""
    named = [(f"period column {req.period!r}", req.period)]
    named += [(f"entity column {req.entity!r}", req.entity)]
    named += [(f"by column {col!r}", col) for col in req.by]
    named += [(f"column {col!r} (given for {dp!r})", col) for dp, col in req.columns.items()]
    for what, col in named:
        if col is not None and col not in columns:
            raise DataError(f"{what} not found; the data has {shown_columns(columns)}")


def missing_datapoint(name: str, req: Request, columns: Iterable[Any]) -> DataError:
    return MissingDatapointError(name, req.columns.get(name), columns)


def gap_warnings(axis: TimeAxis | None) -> list[str]:
    """A note for periods inside the data's range that have no rows at all."""
    if axis is None or not axis.count or axis.present.all():
        return []
    shown = ", ".join(str(p) for p in axis.labels()[~axis.present][:5])
    return [
        f"no rows at all in period(s) {shown}: every entity counts as missing there; "
        "check the export if that is a gap rather than real churn"
    ]
