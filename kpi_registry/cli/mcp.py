"""`kpi mcp`: the registry served to AI assistants (the server is ``kpi_registry.mcp_server``,
imported only when it starts). Its options are declared here; ``kpi_registry.__main__``
starts the server itself, without the command line, for the plain form ``kpi mcp [--root
DIR]... [--path DIR]...`` and sends every other form (help, a wrong option) here."""

from __future__ import annotations

import argparse

from .args import add_path_argument

DESCRIPTION = (
    "Serve the registry to AI assistants over the Model Context Protocol (stdio): search, "
    "show, the columns KPIs need, evaluate on a local data file, compile SQL, explain a change. "
    "Read-only; data files only under the --root folders."
)


def cmd_mcp(args: argparse.Namespace) -> int:
    from ..mcp_server import serve

    return serve(args.root or [], args.path or [])


def add_mcp(sub) -> None:
    p = sub.add_parser("mcp", help="serve the registry to AI assistants (MCP, stdio)")
    p.description = DESCRIPTION
    p.add_argument(
        "--root",
        action="append",
        metavar="DIR",
        help="a folder whose data files the tools may read (repeatable; default: the current "
        "folder)",
    )
    add_path_argument(p)
    p.set_defaults(func=cmd_mcp)
