"""The formula AST: a handful of immutable node types.

Nodes compare and hash by structure (not by position), so equal sub-expressions found in
different formulas are the same dictionary key: that is how evaluation computes shared work once.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    pos: int = field(default=0, compare=False, repr=False)

    def children(self) -> tuple[Node, ...]:
        return ()

    def walk(self):
        """This node and every node below it, parents first."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children()))


@dataclass(frozen=True)
class Number(Node):
    value: float = 0.0


@dataclass(frozen=True)
class Name(Node):
    """A datapoint or a KPI id; which one is decided when the formula is bound to a registry."""

    name: str = ""


@dataclass(frozen=True)
class Unary(Node):
    op: str = "-"  # "-" or "not"
    operand: Node = None  # type: ignore[assignment]

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Binary(Node):
    op: str = "+"  # + - * / ^ = != < <= > >= and or
    left: Node = None  # type: ignore[assignment]
    right: Node = None  # type: ignore[assignment]

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Call(Node):
    func: str = ""
    args: tuple[Node, ...] = ()

    def children(self) -> tuple[Node, ...]:
        return self.args


ARITHMETIC = ("+", "-", "*", "/", "^")
COMPARISON = ("=", "!=", "<", "<=", ">", ">=")
LOGICAL = ("and", "or")
