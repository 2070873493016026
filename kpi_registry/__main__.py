"""``python -m kpi_registry`` and the ``kpi`` command: ``kpi mcp`` starts the MCP server
without importing the command line (its argparse set-up, pandas, the evaluation engines), so
an assistant gets its first answer fast; every other command goes to ``cli.main``."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["mcp"] and (folders := mcp_folders(args[1:])) is not None:
        from .mcp_server import serve

        return serve(*folders)
    from .cli import main as cli_main

    return cli_main(args)


def mcp_folders(args: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """(roots, paths) of a plain `kpi mcp [--root DIR]... [--path DIR]...` (also
    ``--root=DIR``); None for anything else (--help, a typo, an abbreviation, a missing
    value), which goes to the command line: kpi_registry.cli.mcp declares the options and
    parses and reports every other form, so they are documented in one place."""
    found: dict[str, list[str]] = {"--root": [], "--path": []}
    rest = list(args)
    while rest:
        option, eq, value = rest.pop(0).partition("=")
        if option not in found:
            return None
        if not eq:
            if not rest or rest[0].startswith("-"):
                return None  # argparse's call: a missing value, or one that looks like an option
            value = rest.pop(0)
        found[option].append(value)
    return found["--root"], found["--path"]


if __name__ == "__main__":
    sys.exit(main())
