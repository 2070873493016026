"""The rule that a datapoint's declaration makes sense and means one thing library-wide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Diagnostic
from .base import Library, LibraryRule, issue

if TYPE_CHECKING:
    from ..model import KPI, Datapoint


class DatapointsConsistent(LibraryRule):
    """Each declaration is coherent (no first/last row without an order, min <= max, distinct
    rows with distinct time, no flag excluding itself), is not declared twice in a file, does
    not take a KPI's id, and declares the same semantics wherever the name is used."""

    name = "datapoints-consistent"

    def check(self, library: Library) -> list[Diagnostic]:
        kpis = library.kpis
        seen: dict[str, tuple[Datapoint, KPI]] = {}
        out: list[Diagnostic] = []
        for kpi in kpis.values():
            names: set[str] = set()
            for i, dp in kpi.declared_datapoints:
                if not isinstance(dp.name, str):
                    continue  # the schema reports it
                where = f"datapoints[{i}].name"

                def add(message: str, kpi=kpi, i=i, where=where) -> None:
                    out.append(issue(kpi, ("datapoints", i, "name"), where, message))

                if dp.name in names:
                    add(f"datapoint {dp.name!r} is declared twice")
                names.add(dp.name)
                if dp.rows in ("last", "first") and not dp.order_by and kpi.status != "draft":
                    add(
                        f"datapoint {dp.name!r} keeps the {dp.rows} row of each entity-period "
                        f"(rows: {dp.rows}) but names no order_by column: without one the "
                        "result depends on the order of the rows; name the column that orders "
                        "them, such as a response timestamp"
                    )
                if dp.minimum is not None and dp.maximum is not None and dp.minimum > dp.maximum:
                    add(f"datapoint {dp.name!r}: valid min is above max")
                if (dp.rows == "distinct") != (dp.time == "distinct"):
                    add(
                        f"datapoint {dp.name!r}: rows: distinct and time: distinct go together "
                        "(different values are counted over all the rows of a coarser period, "
                        "not added up month by month)"
                    )
                if dp.name in dp.excludes:
                    add(f"datapoint {dp.name!r} cannot exclude itself")
                if dp.name in kpis:
                    add(f"datapoint {dp.name!r} has the same name as a KPI; rename the datapoint")
                if dp.name in seen and seen[dp.name][0].semantics() != dp.semantics():
                    other_dp, other = seen[dp.name]
                    add(
                        f"datapoint {dp.name!r} is declared as {dp.describe()} here but "
                        f"{other_dp.describe()} in {other.path}; one name must mean one thing"
                    )
                seen.setdefault(dp.name, (dp, kpi))
        return out
