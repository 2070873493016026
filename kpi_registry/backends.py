"""Which formula functions the backends that must compute every function do not.

The pandas engine is the reference for every number, and the text, LaTeX and MathML outputs
draw every formula on the site and in ``kpi show``: a KPI calling a function one of them
lacks could be loaded but neither computed nor shown. :func:`unsupported_functions` finds
that when a definition is validated, not when someone first evaluates it. (The other
backends, such as the calculator's JavaScript, decline functions on purpose and say why in
their ``UNSUPPORTED_FUNCTIONS``; tests/test_backend_coverage.py holds every backend to its
table.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .formula import Call
from .model import KPI


@dataclass(frozen=True)
class UnsupportedFunction:
    """A function a KPI's formula calls that a backend does not compute: facts only, each
    front end words them (``kpi validate``: "formula calls f(), which the pandas engine
    cannot compute: reason")."""

    kpi_id: str
    function: str
    backend: str
    reason: str


def required_backends() -> dict[str, tuple[Mapping[str, Any], Mapping[str, str]]]:
    """Backend name -> (its function table, its unsupported functions), for the backends
    that must handle every function. Imported here, when asked, since the engine needs
    pandas."""
    from . import evaluation
    from .formula import mathml, render

    return {
        "pandas engine": (evaluation.ENGINE_FUNCTIONS, evaluation.UNSUPPORTED_FUNCTIONS),
        "text": (render.TEXT_FUNCTIONS, render.TEXT_UNSUPPORTED_FUNCTIONS),
        "LaTeX": (render.LATEX_FUNCTIONS, render.LATEX_UNSUPPORTED_FUNCTIONS),
        "MathML": (mathml.MATHML_FUNCTIONS, mathml.UNSUPPORTED_FUNCTIONS),
    }


def unsupported_functions(kpi: KPI) -> list[UnsupportedFunction]:
    """Every (function, backend) pair where a formula of ``kpi`` (its main one and those at
    other grains) calls a function a required backend does not handle, in formula order."""
    nodes = [kpi.expression, *kpi.grain_expressions.values()]
    called = dict.fromkeys(
        n.func for node in nodes if node is not None for n in node.walk() if isinstance(n, Call)
    )
    out = []
    for func in called:
        for backend, (handled, declined) in required_backends().items():
            if func not in handled:
                reason = declined.get(func, "it has no handler for it")
                out.append(UnsupportedFunction(kpi.id, func, backend, reason))
    return out
