"""The in-memory model of a definition: typed access to the fields code relies on.

The full YAML mapping stays available as ``KPI.data`` (every attribute, with positions), so
templates and exports can show all of it without the model growing a field per attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formula import Node

#: The 12 attributes, in the order every page and export shows them.
ATTRIBUTES: tuple[str, ...] = (
    "definition",
    "business_insights",
    "measurement_approach",
    "formula",
    "trend_analysis",
    "diagnostics",
    "tips",
    "visualization",
    "risk_warnings",
    "tools_and_technologies",
    "integration_points",
    "change_impact",
)

ATTRIBUTE_TITLES: dict[str, str] = {
    "definition": "Definition",
    "business_insights": "Business insights",
    "measurement_approach": "Measurement approach",
    "formula": "Standard formula",
    "trend_analysis": "Trend analysis",
    "diagnostics": "Diagnostics",
    "tips": "Tips",
    "visualization": "Visualization",
    "risk_warnings": "Risk warnings",
    "tools_and_technologies": "Tools & technologies",
    "integration_points": "Integration points",
    "change_impact": "Change impact",
}

RELATION_KINDS: tuple[str, ...] = ("leading", "lagging", "related")


#: How the rows of one entity in one period combine (``rows:``).
ROW_RULES = ("sum", "mean", "min", "max", "last", "first", "distinct")
#: How one entity's values combine when the grain coarsens (``time:``). ``stock`` is the
#: older name of ``closing``.
TIME_RULES = ("flow", "stock", "closing", "opening", "average", "event", "latest", "distinct")


@dataclass(frozen=True)
class Datapoint:
    """An input column: how its rows combine within an entity-period and across time, and
    which values are valid."""

    name: str
    description: str = ""
    unit: str = ""
    rows: str = "sum"  # see ROW_RULES
    time: str = "flow"  # see TIME_RULES
    missing: str = "null"  # zero | null
    order_by: str | None = None  # the column that orders rows for rows: last / first
    minimum: float | None = None  # valid values: minimum <= value <= maximum
    maximum: float | None = None
    excludes: tuple[str, ...] = ()  # flags that cannot be set together with this one

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Datapoint:
        valid = d.get("valid") or {}
        return cls(
            name=d["name"],
            description=d.get("description", ""),
            unit=d.get("unit", ""),
            rows=d.get("rows", "sum"),
            time=d.get("time", "flow"),
            missing=d.get("missing") or "null",  # YAML reads `missing: null` as None
            order_by=d.get("order_by"),
            minimum=_number_or_none(valid.get("min")),
            maximum=_number_or_none(valid.get("max")),
            excludes=tuple(d.get("excludes") or ()),
        )

    @property
    def coarsening(self) -> str:
        """The ``time`` rule with ``stock`` read as ``closing``."""
        return "closing" if self.time == "stock" else self.time

    def describe(self) -> str:
        """The semantics as a definition writes them, for messages."""
        text = f"rows={self.rows}, time={self.time}, missing={self.missing}"
        if self.order_by:
            text += f", order_by={self.order_by}"
        if self.minimum is not None or self.maximum is not None:
            text += f", valid=[{self.minimum}, {self.maximum}]"
        if self.excludes:
            text += f", excludes={list(self.excludes)}"
        return text

    def semantics(self) -> tuple[Any, ...]:
        return (
            self.rows,
            self.coarsening,
            self.missing,
            self.order_by,
            self.minimum,
            self.maximum,
            tuple(sorted(self.excludes)),
        )


def _number_or_none(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass
class Category:
    id: str
    name: str
    description: str
    path: str = ""
    function: str = ""  # the business function the category sits under (see BusinessFunction)


@dataclass
class BusinessFunction:
    """The level above categories (finance, people, engineering...): every KPI belongs to the
    function of its primary category, so a company finds its own corner of the library."""

    id: str
    name: str
    description: str
    path: str = ""


#: Categories that name no function (a team's taxonomy written before functions existed) sit
#: under this one, so every KPI still has exactly one function.
OTHER_FUNCTION = BusinessFunction(
    "other", "Other", "Categories whose taxonomy does not name a business function."
)


@dataclass
class KPI:
    """One KPI definition, loaded and checked."""

    id: str
    data: dict[str, Any]
    path: Path
    origin: str = "bundled"  # "bundled" or the user folder it came from
    expression: Node | None = None  # parsed formula; None until bound
    overridden: list[Path] = field(default_factory=list)  # files this one replaced
    #: formulas that are right at a grain the main one is not defined at (formula.at_grain)
    grain_expressions: dict[str, Node] = field(default_factory=dict)

    # Typed views of the fields the code uses -------------------------------------------
    @property
    def name(self) -> str:
        return self.data.get("name", self.id)

    @property
    def summary(self) -> str:
        return self.data.get("summary", "")

    @property
    def aliases(self) -> list[str]:
        return list(self.data.get("aliases", []))

    @property
    def category(self) -> str:
        return self.data.get("category", "")

    @property
    def categories(self) -> list[str]:
        extra = [c for c in self.data.get("categories", []) if c != self.category]
        return [self.category, *extra] if self.category else extra

    @property
    def industries(self) -> list[str]:
        return list(self.data.get("industries", []))

    @property
    def tags(self) -> list[str]:
        return list(self.data.get("tags", []))

    @property
    def unit(self) -> str:
        return self.data.get("unit", "")

    @property
    def direction(self) -> str:
        return self.data.get("direction", "")

    @property
    def indicator_type(self) -> str:
        return self.data.get("indicator_type", "")

    @property
    def status(self) -> str:
        return self.data.get("status", "draft")

    @property
    def formula_text(self) -> str:
        formula = self.data.get("formula")
        return formula.get("expression", "") if isinstance(formula, dict) else ""

    @property
    def grains(self) -> tuple[str, ...]:
        """The grains the formula is defined at (``formula.grains``); empty: every grain."""
        formula = self.data.get("formula")
        grains = formula.get("grains") if isinstance(formula, dict) else None
        return tuple(g for g in grains or () if isinstance(g, str))

    @property
    def at_grain_texts(self) -> dict[str, str]:
        """formula.at_grain: grain -> the expression that is right at that grain."""
        formula = self.data.get("formula")
        at = formula.get("at_grain") if isinstance(formula, dict) else None
        if not isinstance(at, dict):
            return {}
        return {g: t for g, t in at.items() if isinstance(g, str) and isinstance(t, str)}

    def expression_at(self, grain: str | None) -> Node | None:
        """The formula for a grain (its at_grain formula, else the main one)."""
        return self.grain_expressions.get(grain or "", self.expression)

    @property
    def grain_reason(self) -> str:
        """Why the formula is defined at those grains only (``formula.grain_reason``)."""
        formula = self.data.get("formula")
        return str(formula.get("grain_reason") or "") if isinstance(formula, dict) else ""

    @property
    def datapoints(self) -> dict[str, Datapoint]:
        return {
            d["name"]: Datapoint.from_dict(d)
            for d in self.data.get("datapoints", [])
            if isinstance(d, dict) and "name" in d
        }

    @property
    def examples(self) -> list[dict[str, Any]]:
        return list(self.data.get("examples", []))

    def relations(self, kind: str) -> list[dict[str, str]]:
        return list((self.data.get("relations") or {}).get(kind, []))

    def __repr__(self) -> str:
        return f"KPI({self.id!r}, {self.name!r})"
