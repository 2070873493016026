"""The in-memory model of a definition: typed, frozen objects built once when a file loads.

``KPISpec`` (with ``Formula``, ``Datapoint``, ``Example`` and ``Relation``) holds the fields
the code relies on, with their defaults in one place; ``KPI`` adds where it came from and its
bound formula. The full YAML mapping stays available as ``KPI.data`` (every attribute, with
positions), so templates and exports can show all of it without the model growing a field per
attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .formula import Node

if TYPE_CHECKING:
    from .loading import ReadFacts

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
#: What a valid range (``valid: {per:}``) applies to; the first is the default.
VALID_PER = ("row", "entity_period")
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
    #: what the range applies to: each data ``row`` (default), or each ``entity_period``'s
    #: value after its rows combine (MRR from invoice lines with credits: a line may be
    #: negative, a customer's month may not)
    valid_per: str = "row"
    excludes: tuple[str, ...] = ()  # flags that cannot be set together with this one

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Datapoint:
        """A declaration as written; what it leaves out takes the defaults above."""
        given = {key: d[key] for key in _WRITTEN_AS_IS if key in d}
        if d.get("missing") is not None:  # YAML reads `missing: null` as None: the default
            given["missing"] = d["missing"]
        valid = d.get("valid")
        if isinstance(valid, dict):
            given["minimum"] = _number_or_none(valid.get("min"))
            given["maximum"] = _number_or_none(valid.get("max"))
            if valid.get("per") in VALID_PER:
                given["valid_per"] = valid["per"]
        if isinstance(d.get("excludes"), list):
            given["excludes"] = tuple(d["excludes"])
        return cls(**given)

    @property
    def checks_cells(self) -> bool:
        """The valid range applies to each entity-period's combined value, not to rows."""
        return self.valid_per == "entity_period" and (
            self.minimum is not None or self.maximum is not None
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
            if self.valid_per != "row":
                text += f" per {self.valid_per}"
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
            self.valid_per,
            tuple(sorted(self.excludes)),
        )


#: Fields a declaration writes under the same name and takes as they are.
_WRITTEN_AS_IS = ("name", "description", "unit", "rows", "time", "order_by")


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


@dataclass(frozen=True)
class Formula:
    """``formula:``: the main expression and where it holds."""

    expression: str = ""
    #: the grains the formula is defined at; empty: every grain
    grains: tuple[str, ...] = ()
    #: grain -> the expression that is right at that grain
    at_grain: dict[str, str] = field(default_factory=dict)
    #: why the formula holds at those grains only
    grain_reason: str = ""

    @classmethod
    def from_dict(cls, d: Any) -> Formula:
        if not isinstance(d, dict):
            return cls()
        at = d.get("at_grain")
        return cls(
            expression=d.get("expression", ""),
            grains=tuple(g for g in d.get("grains") or () if isinstance(g, str)),
            at_grain={g: t for g, t in at.items() if isinstance(g, str) and isinstance(t, str)}
            if isinstance(at, dict)
            else {},
            grain_reason=str(d.get("grain_reason") or ""),
        )


@dataclass(frozen=True)
class Relation:
    """A link a definition declares: ``relations.<kind>[index]`` names ``kpi`` and says why."""

    kind: str  # see RELATION_KINDS
    kpi: str
    why: str = ""
    #: its place in the list as written (errors point at it)
    index: int = 0

    def as_dict(self) -> dict[str, str]:
        """The link as the Registry's relation lists and exports give it."""
        return {"kpi": self.kpi, "why": self.why}


@dataclass(frozen=True)
class Example:
    """A worked example (``examples[index]``): input data, how to evaluate it, and the result
    it expects. ``data`` and ``expected`` stay as written (positioned: errors point into
    them); the parameters of the evaluation are read into fields, their defaults here."""

    index: int
    title: str = ""
    description: str = ""
    #: rows (a list of mappings, one per entity and period) or a mapping of scalar inputs
    data: Any = None
    #: the expected result: a number for scalar data, else rows of the result
    expected: Any = None
    #: expected values are rounded to this many decimals
    decimals: int = 2
    #: intermediate KPIs to show step by step
    show: tuple[str, ...] = ()
    period: str | None = None
    entity: str | None = None
    by: tuple[str, ...] = ()
    grain: str | None = None
    #: datapoint -> the column of ``data`` holding it
    columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, index: int, d: dict[str, Any]) -> Example:
        params = d.get("parameters")
        params = params if isinstance(params, dict) else {}
        by = params.get("by") or ()
        columns = params.get("columns")
        decimals = d.get("decimals", 2)
        return cls(
            index=index,
            title=_text(d.get("title")),
            description=_text(d.get("description")),
            data=d.get("data"),
            expected=d.get("expected"),
            decimals=int(decimals)
            if isinstance(decimals, int | float) and not isinstance(decimals, bool)
            else 2,
            show=tuple(_items(d.get("show"))),
            period=params.get("period"),
            entity=params.get("entity"),
            by=(by,) if isinstance(by, str) else tuple(_items(by)),
            grain=params.get("grain"),
            columns=dict(columns) if isinstance(columns, dict) else {},
        )


@dataclass(frozen=True)
class KPISpec:
    """The fields of a definition file the code relies on, typed, read once when it loads.

    Values are kept as written (a broken file is still reported on, never crashes the read);
    a field left out takes the default here, and only here."""

    name: str
    summary: str = ""
    aliases: tuple[str, ...] = ()
    category: str = ""
    #: the primary category first, then the others
    categories: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    unit: str = ""
    direction: str = ""
    indicator_type: str = ""
    status: str = "draft"
    formula: Formula = field(default_factory=Formula)
    #: every declaration with a name, with its index in ``datapoints:`` (a name declared
    #: twice appears twice: validation reports it)
    declarations: tuple[tuple[int, Datapoint], ...] = ()
    #: the worked examples that are mappings, each with its index in ``examples:``
    examples: tuple[Example, ...] = ()
    #: kind (leading, lagging, related) -> the links that name a KPI, in the order written
    relations: dict[str, tuple[Relation, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, kpi_id: str, d: dict[str, Any]) -> KPISpec:
        given = {key: d[key] for key in _TAKEN_AS_IS if key in d}
        category = given.get("category", "")
        extra = [c for c in _items(d.get("categories")) if c != category]
        relations = d.get("relations")
        return cls(
            name=d.get("name", kpi_id),
            aliases=tuple(_items(d.get("aliases"))),
            categories=tuple([category, *extra] if category else extra),
            industries=tuple(_items(d.get("industries"))),
            tags=tuple(_items(d.get("tags"))),
            formula=Formula.from_dict(d.get("formula")),
            declarations=tuple(
                (i, Datapoint.from_dict(dp))
                for i, dp in enumerate(_items(d.get("datapoints")))
                if isinstance(dp, dict) and "name" in dp
            ),
            examples=tuple(
                Example.from_dict(i, ex)
                for i, ex in enumerate(_items(d.get("examples")))
                if isinstance(ex, dict)
            ),
            relations={
                kind: tuple(
                    Relation(kind, item["kpi"], _text(item.get("why")), i)
                    for i, item in enumerate(_items(items))
                    if isinstance(item, dict) and isinstance(item.get("kpi"), str)
                )
                for kind, items in (relations.items() if isinstance(relations, dict) else ())
            },
            **given,
        )


#: Fields a definition writes under the same name and that are taken as they are.
_TAKEN_AS_IS = ("summary", "category", "unit", "direction", "indicator_type", "status")


def _items(value: Any) -> list:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class KPI:
    """One KPI definition, loaded and checked: frozen, its typed fields read once
    (``spec``); binding the formula makes a new KPI (``dataclasses.replace``)."""

    id: str
    data: dict[str, Any]
    path: Path
    origin: str = "bundled"  # "bundled" or the user folder it came from
    expression: Node | None = None  # parsed formula; None until bound
    overridden: list[Path] = field(default_factory=list)  # files this one replaced
    #: formulas that are right at a grain the main one is not defined at (formula.at_grain)
    grain_expressions: dict[str, Node] = field(default_factory=dict)
    #: the typed fields, built from ``data`` when not given (``replace`` carries them over)
    spec: KPISpec = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    #: what the loader noticed reading the file (lets rules skip walks that find nothing);
    #: None for a KPI built from data that was not read from a file
    facts: ReadFacts | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.spec is None:
            object.__setattr__(self, "spec", KPISpec.from_dict(self.id, self.data))
        # the name -> declaration view, built once (the last declaration of a name wins)
        datapoints = {dp.name: dp for _, dp in self.spec.declarations}
        object.__setattr__(self, "_datapoints", datapoints)

    # Typed views of the fields the code uses -------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def summary(self) -> str:
        return self.spec.summary

    @property
    def aliases(self) -> list[str]:
        return list(self.spec.aliases)

    @property
    def category(self) -> str:
        return self.spec.category

    @property
    def categories(self) -> list[str]:
        return list(self.spec.categories)

    @property
    def industries(self) -> list[str]:
        return list(self.spec.industries)

    @property
    def tags(self) -> list[str]:
        return list(self.spec.tags)

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def direction(self) -> str:
        return self.spec.direction

    @property
    def indicator_type(self) -> str:
        return self.spec.indicator_type

    @property
    def status(self) -> str:
        return self.spec.status

    @property
    def formula_text(self) -> str:
        return self.spec.formula.expression

    @property
    def grains(self) -> tuple[str, ...]:
        """The grains the formula is defined at (``formula.grains``); empty: every grain."""
        return self.spec.formula.grains

    @property
    def at_grain_texts(self) -> dict[str, str]:
        """formula.at_grain: grain -> the expression that is right at that grain."""
        return dict(self.spec.formula.at_grain)

    def expression_at(self, grain: str | None) -> Node | None:
        """The formula for a grain (its at_grain formula, else the main one)."""
        return self.grain_expressions.get(grain or "", self.expression)

    @property
    def grain_reason(self) -> str:
        """Why the formula is defined at those grains only (``formula.grain_reason``)."""
        return self.spec.formula.grain_reason

    @property
    def datapoints(self) -> dict[str, Datapoint]:
        return self._datapoints  # type: ignore[attr-defined]

    @property
    def declared_datapoints(self) -> tuple[tuple[int, Datapoint], ...]:
        """(index in ``datapoints:``, declaration) for each declaration with a name."""
        return self.spec.declarations

    @property
    def examples(self) -> tuple[Example, ...]:
        """The worked examples (those written as mappings), in file order."""
        return self.spec.examples

    def relations(self, kind: str) -> tuple[Relation, ...]:
        """The links of one kind (leading, lagging, related) this definition declares."""
        return self.spec.relations.get(kind, ())

    def __repr__(self) -> str:
        return f"KPI({self.id!r}, {self.name!r})"
