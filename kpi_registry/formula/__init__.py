"""The formula language: parse once, then evaluate, render or analyse the same AST."""

from .analysis import Analysis, analyse, gap_depth
from .functions import (
    AGGREGATES,
    CALENDAR_FUNCTIONS,
    FUNCTIONS,
    MISSING_VALUES,
    OPERATORS,
    SCALARS,
    TIME_FUNCTIONS,
    Function,
)
from .mathml import to_mathml
from .nodes import Binary, Call, Name, Node, Number, Unary
from .parser import parse
from .render import JS_RUNTIME, NotScalar, to_js, to_js_function, to_latex, to_text

__all__ = [
    "AGGREGATES",
    "CALENDAR_FUNCTIONS",
    "FUNCTIONS",
    "JS_RUNTIME",
    "MISSING_VALUES",
    "OPERATORS",
    "SCALARS",
    "TIME_FUNCTIONS",
    "Analysis",
    "Binary",
    "Call",
    "Function",
    "Name",
    "Node",
    "NotScalar",
    "Number",
    "Unary",
    "analyse",
    "gap_depth",
    "parse",
    "to_js",
    "to_js_function",
    "to_latex",
    "to_mathml",
    "to_text",
]
