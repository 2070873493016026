"""kpi-registry: a KPI knowledge base kept as code.

>>> import kpi_registry
>>> reg = kpi_registry.load()
>>> reg.evaluate("expansion_revenue_rate", {"expansion_revenue": 22000, "starting_revenue": 100000})
22.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        DataError,
        DefinitionError,
        Diagnostic,
        FormulaError,
        KPIError,
        UnknownKPIError,
    )
    from .model import KPI, Datapoint
    from .registry import Registry, load

#: Where each public name lives: imported on first use, so that `kpi --help` (which imports
#: this package) does not pay for the registry, YAML and the formula parser.
_HOME = {
    "KPI": "model",
    "Datapoint": "model",
    "Registry": "registry",
    "load": "registry",
    **dict.fromkeys(
        ("DataError", "DefinitionError", "Diagnostic", "FormulaError", "KPIError"), "errors"
    ),
    "UnknownKPIError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KPI",
    "DataError",
    "Datapoint",
    "DefinitionError",
    "Diagnostic",
    "FormulaError",
    "KPIError",
    "Registry",
    "UnknownKPIError",
    "load",
]
__version__ = "0.1.0"
