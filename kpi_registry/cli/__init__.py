"""The `kpi` command line. Every command reports bad input as a message, never a traceback.

One module per area of commands (``browse``, ``evaluate``, ``authoring``, ``export``,
``site``, ``mcp``), each with a ``cmd_<name>`` function and an ``add_<name>`` that registers
it; ``args`` holds the arguments several commands share and ``wording`` words errors for the
command line. Registering must stay cheap: `kpi --help` imports every command module, so the
registry, pandas, YAML, jsonschema and sqlglot are imported inside the commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import authoring, browse, evaluate, export, mcp, site
from .args import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, CommandParser
from .browse import LIST_COLUMNS

if TYPE_CHECKING:
    from ..registry import Registry

__all__ = ["EXIT_ERRORS", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "LIST_COLUMNS", "main"]

#: Every command's registration, in the order `kpi --help` lists them.
COMMANDS = (
    authoring.add_validate,
    authoring.add_diff,
    browse.add_list,
    browse.add_search,
    browse.add_show,
    evaluate.add_eval,
    evaluate.add_explain,
    evaluate.add_scorecard,
    authoring.add_schema,
    site.add_site,
    evaluate.add_sql,
    authoring.add_new,
    authoring.add_fmt,
    export.add_export,
    authoring.add_import,
    mcp.add_mcp,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpi",
        description="Browse, check and evaluate the KPI registry.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, registry: Registry | None = None) -> int:
    """Run one command; ``registry`` (already loaded) spares a long-running caller such as
    ``kpi mcp`` loading the library again for every command it runs."""
    try:
        return _main(argv, registry)
    except KeyboardInterrupt:  # also while the commands are registered
        return 130


def _main(argv: Sequence[str] | None, registry: Registry | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if registry is not None:
        args.registry = registry
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; errors become messages and exit codes (imported only now, so
    that `kpi --help` does not pay for them)."""
    from ..errors import DefinitionError, KPIError, MissingColumnsError, UnknownKPIError, or_list
    from .browse import near_kpis
    from .wording import error_text, missing_columns_text

    try:
        if check := getattr(args, "check_request", None):
            check(args)
        return args.func(args)
    except DefinitionError as e:
        for diag in e.diagnostics:
            print(diag, file=sys.stderr)
        n = len(e.diagnostics)
        print(
            f"{n} error{'s' * (n != 1)} in definitions; run 'kpi validate' for details",
            file=sys.stderr,
        )
        return EXIT_ERRORS
    except MissingColumnsError as e:
        print(f"error: {missing_columns_text(e, getattr(args, 'data', None))}", file=sys.stderr)
        return EXIT_ERRORS
    except UnknownKPIError as e:
        reg = getattr(args, "registry", None)
        near = near_kpis(reg, e.kpi_id, e.suggestions) if reg is not None else e.suggestions
        hint = f"; did you mean {or_list(near)}?" if near else ""
        print(f"error: unknown KPI id {e.kpi_id!r}{hint}", file=sys.stderr)
        return EXIT_ERRORS
    except KPIError as e:
        print(f"error: {error_text(e)}", file=sys.stderr)
        return EXIT_ERRORS
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:  # a folder that cannot be written, a disk that is full: not a bug
        if e.errno is None or os.environ.get("KPI_DEBUG"):
            return _internal_error(e)
        where = f"{e.filename}: " if e.filename is not None else ""
        reason = e.strerror
        if isinstance(e, FileExistsError) and os.path.isfile(e.filename):
            reason = "is a file, where a folder is needed"  # mkdir(parents=True) on a file
        print(f"error: {where}{reason}", file=sys.stderr)
        return EXIT_ERRORS
    except Exception as e:  # a bug of ours, not bad input: say so, keep the trace on request
        return _internal_error(e)


def _internal_error(e: Exception) -> int:
    if os.environ.get("KPI_DEBUG"):
        raise e
    print(
        f"internal error: {type(e).__name__}: {e}\n(this is a bug in kpi-registry; "
        "run again with KPI_DEBUG=1 to see the traceback and please report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL
