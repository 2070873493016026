"""kpi-registry: a KPI knowledge base kept as code.

>>> import kpi_registry
>>> reg = kpi_registry.load()
>>> reg.evaluate("expansion_revenue_rate", {"expansion_revenue": 22000, "starting_revenue": 100000})
22.0
"""

from .errors import DataError, DefinitionError, Diagnostic, FormulaError, KPIError, UnknownKPIError
from .model import KPI, Datapoint

TYPE_CHECKING = False
if TYPE_CHECKING:
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


def __getattr__(name: str):
    """``Registry`` and ``load`` on first use: the registry brings pandas, which a command
    that never evaluates (``kpi mcp`` answering its first request) should not wait for."""
    if name in ("Registry", "load"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
