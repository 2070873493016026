"""`kpi mcp`: the registry served to AI assistants (the server is ``kpi_registry.mcp_server``;
`kpi mcp` without --help starts it from ``kpi_registry.__main__`` without this package)."""

from __future__ import annotations


def add_mcp(sub) -> None:
    from ..mcp_server import DESCRIPTION, add_arguments, serve

    p = sub.add_parser("mcp", help="serve the registry to AI assistants (MCP, stdio)")
    p.description = DESCRIPTION
    add_arguments(p)
    p.set_defaults(func=serve)
