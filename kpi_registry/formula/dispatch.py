"""Backends as tables: one handler per node type, one per function name.

Every backend of the formula language (the pandas engine, the renderers, the calculator's
JavaScript, the attribution...) walks the same five node types. Each keeps a table
``{Number: ..., Name: ..., Unary: ..., Binary: ..., Call: ...}`` and, for calls, a table from
function name to handler, in the manner of sqlglot's ``Generator.TRANSFORMS``: adding a
function is one entry per table, and ``tests/test_backend_coverage.py`` fails for every
backend whose function table neither handles a function of ``FUNCTIONS`` nor lists it in its
unsupported functions with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from .functions import FUNCTIONS
from .nodes import Binary, Call, Name, Node, Number, Unary

H = TypeVar("H", bound=Callable)

NODE_TYPES: tuple[type[Node], ...] = (Number, Name, Unary, Binary, Call)


def node_table(handlers: Mapping[type[Node], H]) -> dict[type[Node], H]:
    """A backend's handlers by node type, checked to cover every node type when the module
    loads (a new node type fails every backend at once, not one formula at run time)."""
    missing = [t.__name__ for t in NODE_TYPES if t not in handlers]
    if missing:
        raise TypeError(f"no handler for node type(s) {', '.join(missing)}")
    return dict(handlers)


def method_table(cls: type, prefix: str = "") -> dict[type[Node], Callable]:
    """The node table of a visitor class whose methods are named after the node types:
    ``number``, ``name``, ``unary``, ``binary`` and ``call`` (after ``prefix``)."""
    return node_table({t: getattr(cls, prefix + t.__name__.lower()) for t in NODE_TYPES})


def function_table(
    handlers: Mapping[str, H], unsupported: Mapping[str, str] | None = None
) -> dict[str, H]:
    """A backend's handlers by function name, checked to name functions of ``FUNCTIONS``
    only, and no function both handled and listed in ``unsupported`` (name -> reason)."""
    unsupported = unsupported or {}
    unknown = sorted((set(handlers) | set(unsupported)) - set(FUNCTIONS))
    if unknown:
        raise TypeError(f"not formula functions: {', '.join(unknown)}")
    both = sorted(set(handlers) & set(unsupported))
    if both:
        raise TypeError(f"both handled and unsupported: {', '.join(both)}")
    return dict(handlers)


def each(names: Iterable[str], handler: H) -> dict[str, H]:
    """One handler for several functions (the scalar functions, the aggregates...)."""
    return dict.fromkeys(sorted(names), handler)
