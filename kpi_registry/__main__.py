"""``python -m kpi_registry`` and the ``kpi`` command: ``kpi mcp`` starts the MCP server
without importing the rest of the command line (pandas, the evaluation engines), so an
assistant gets its first answer fast; every other command goes to ``cli.main``."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["mcp"] and not {"-h", "--help"} & set(args):
        from .mcp_server import main as mcp_main

        return mcp_main(args[1:])
    from .cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
