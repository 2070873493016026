"""`kpi mcp`: the registry served to AI assistants (the server is ``kpi_registry.mcp_server``,
imported only when it starts). ``kpi_registry.__main__`` runs `kpi mcp` through ``main`` here
without building the rest of the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .args import add_path_argument

DESCRIPTION = (
    "Serve the registry to AI assistants over the Model Context Protocol (stdio): search, "
    "show, the columns KPIs need, evaluate on a local data file, compile SQL. Read-only; data "
    "files only under the --root folders."
)


def cmd_mcp(args: argparse.Namespace) -> int:
    from ..mcp_server import serve

    return serve(args)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        action="append",
        metavar="DIR",
        help="a folder whose data files the tools may read (repeatable; default: the current "
        "folder)",
    )
    add_path_argument(p)
    p.set_defaults(func=cmd_mcp)


def add_mcp(sub) -> None:
    p = sub.add_parser("mcp", help="serve the registry to AI assistants (MCP, stdio)")
    p.description = DESCRIPTION
    _arguments(p)


def main(argv: Sequence[str] | None = None) -> int:
    """`kpi mcp` on its own: its options only, so the server starts without the other
    commands being registered."""
    parser = argparse.ArgumentParser(prog="kpi mcp", description=DESCRIPTION)
    _arguments(parser)
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return args.func(args)
