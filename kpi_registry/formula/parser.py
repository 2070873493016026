"""Tokenizer and recursive-descent parser for the formula language.

Grammar, loosest binding first::

    expr   := or
    or     := and ("or" and)*
    and    := not ("and" not)*
    not    := "not" not | cmp
    cmp    := sum (("=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum)?
    sum    := prod (("+" | "-") prod)*
    prod   := unary (("*" | "/") unary)*
    unary  := "-" unary | "+" unary | power
    power  := atom ("^" unary)?
    atom   := NUMBER | NAME | NAME "(" [expr ("," expr)*] ")" | "(" expr ")"
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from ..errors import FormulaError, did_you_mean
from .functions import FUNCTIONS
from .nodes import Binary, Call, Name, Node, Number, Unary

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<>|[-+*/^()<>=,])
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not"}
_COMPARE = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
MAX_LENGTH = 10_000
MAX_DEPTH = 60  # parser frames per level ~10; Python's default limit is 1000
MAX_TREE_DEPTH = 150  # visitors recurse over the tree


@dataclass(frozen=True)
class Token:
    kind: str  # number | name | op | keyword | end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise FormulaError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup
        value = match.group()
        if kind == "name" and value.lower() in _KEYWORDS:
            tokens.append(Token("keyword", value.lower(), pos))
        elif kind != "ws":
            tokens.append(Token(kind, value, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Token | None = None) -> FormulaError:
        token = token or self.tok
        return FormulaError(message, self.text, token.pos)

    def accept(self, *texts: str) -> Token | None:
        if self.tok.kind in ("op", "keyword") and self.tok.text in texts:
            self.i += 1
            return self.tokens[self.i - 1]
        return None

    def expect(self, text: str, what: str) -> Token:
        token = self.accept(text)
        if token is None:
            found = f"{self.tok.text!r}" if self.tok.kind != "end" else "end of formula"
            raise self.error(f"expected {what}, found {found}")
        return token

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("formula is empty")
        node = self.expr()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r} after a complete expression")
        return node

    def expr(self) -> Node:
        return self.nested(self.or_)

    def or_(self) -> Node:
        node = self.and_()
        while tok := self.accept("or"):
            node = Binary(tok.pos, "or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while tok := self.accept("and"):
            node = Binary(tok.pos, "and", node, self.not_())
        return node

    def nested(self, parse_next):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("formula is nested too deeply")
        try:
            return parse_next()
        finally:
            self.depth -= 1

    def not_(self) -> Node:
        if tok := self.accept("not"):
            return Unary(tok.pos, "not", self.nested(self.not_))
        return self.cmp()

    def cmp(self) -> Node:
        node = self.sum()
        if tok := self.accept(*_COMPARE):
            node = Binary(tok.pos, _COMPARE[tok.text], node, self.sum())
            if self.tok.text in _COMPARE and self.tok.kind == "op":
                raise self.error("comparisons cannot be chained; join them with 'and'")
        return node

    def sum(self) -> Node:
        node = self.prod()
        while tok := self.accept("+", "-"):
            node = Binary(tok.pos, tok.text, node, self.prod())
        return node

    def prod(self) -> Node:
        node = self.unary()
        while tok := self.accept("*", "/"):
            node = Binary(tok.pos, tok.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if tok := self.accept("-"):
            operand = self.nested(self.unary)
            if isinstance(operand, Number):
                return Number(tok.pos, -operand.value)
            return Unary(tok.pos, "-", operand)
        if self.accept("+"):
            return self.nested(self.unary)
        return self.power()

    def power(self) -> Node:
        node = self.atom()
        if tok := self.accept("^"):
            node = Binary(tok.pos, "^", node, self.nested(self.unary))
        return node

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            value = float(tok.text)
            if not math.isfinite(value):  # SQL, JSON and the site cannot write it
                raise self.error(f"number {tok.text} is too large (beyond about 1.8e308)")
            self.i += 1
            return Number(tok.pos, value)
        if tok.kind == "name":
            self.i += 1
            if self.accept("("):
                return self.call(tok)
            return Name(tok.pos, tok.text)
        if self.accept("("):
            node = self.expr()
            self.expect(")", "')' to close the '('")
            return node
        if tok.kind == "end":
            raise self.error("formula ends where a value was expected")
        raise self.error(f"expected a number, a name or '(', found {tok.text!r}")

    def call(self, name_tok: Token) -> Node:
        func = name_tok.text.lower()
        if func not in FUNCTIONS:
            hint = did_you_mean(func, FUNCTIONS)
            raise self.error(f"unknown function {name_tok.text!r}{hint}", name_tok)
        args: list[Node] = []
        if not self.accept(")"):
            args.append(self.expr())
            while self.accept(","):
                args.append(self.expr())
            self.expect(")", f"',' or ')' in the call to {func}()")
        spec = FUNCTIONS[func]
        if len(args) < spec.min_args or (spec.max_args is not None and len(args) > spec.max_args):
            raise self.error(
                f"{func}() takes {_arity(spec.min_args, spec.max_args)}, got {len(args)}; "
                f"usage: {spec.signature}",
                name_tok,
            )
        return Call(name_tok.pos, func, tuple(args))


def _arity(lo: int, hi: int | None) -> str:
    if hi == lo:
        return f"{lo} argument" + ("s" if lo != 1 else "")
    if hi is None:
        return f"at least {lo} arguments"
    return f"{lo} to {hi} arguments"


@lru_cache(maxsize=8192)  # ASTs are immutable; libraries repeat the same formulas
def parse(text: str) -> Node:
    """Parse a formula into its AST, or raise FormulaError pointing at the position."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is longer than {MAX_LENGTH} characters")
    node = _Parser(text).parse()
    if _tree_depth(node) > MAX_TREE_DEPTH:
        raise FormulaError(f"formula is nested too deeply (more than {MAX_TREE_DEPTH} levels)")
    return node


def _tree_depth(root: Node) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.children())
    return deepest
