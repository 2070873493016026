"""kpi-registry: a KPI knowledge base kept as code.

>>> import kpi_registry
>>> reg = kpi_registry.load()
>>> reg.evaluate("expansion_revenue_rate", {"expansion_revenue": 22000, "starting_revenue": 100000})
22.0
"""

from .errors import DataError, DefinitionError, Diagnostic, FormulaError, KPIError, UnknownKPIError
from .model import KPI, Datapoint
from .registry import Registry, load

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
