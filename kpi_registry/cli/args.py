"""Arguments and exit codes several commands share, and the library a command works on.

Registering a command must stay cheap (``kpi --help`` imports every command module): nothing
here imports the registry, pandas or YAML at module level."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..registry import Registry

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70

#: The environment variable naming more definition folders (``registry.ENV_PATH``, spelt here
#: so that registering the commands need not import the registry).
ENV_PATH = "KPI_REGISTRY_PATH"

#: The grains a request can coarsen periods to (``--grain``).
GRAINS = ("day", "week", "month", "quarter", "year")


class CommandParser(argparse.ArgumentParser):
    """A command's parser that can add its arguments on first use (``later``): a command
    whose options need an import (the SQL dialects, say) costs nothing to `kpi --help`, which
    only lists the commands."""

    def later(self, fill: Callable[[CommandParser], None]) -> None:
        self._fill: Callable[[CommandParser], None] | None = fill

    def _filled(self) -> None:
        fill = getattr(self, "_fill", None)
        if fill is not None:
            self._fill = None
            fill(self)

    def parse_known_args(self, args=None, namespace=None):
        self._filled()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._filled()
        return super().format_usage()

    def format_help(self) -> str:
        self._filled()
        return super().format_help()


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The bundled library plus the folders given with --path (shared by feature commands).
    Loaded once per command: main() reuses it to suggest KPIs for an unknown id."""
    reg = getattr(args, "registry", None)
    if reg is None:
        from ..registry import load_cached

        reg = load_cached(*getattr(args, "path", []) or [])
        args.registry = reg
    return reg


def parse_columns(pairs: list[str]) -> dict[str, str]:
    """--column datapoint=column pairs as a mapping."""
    from ..errors import KPIError

    out: dict[str, str] = {}
    for pair in pairs or []:
        key, eq, value = (part.strip() for part in pair.partition("="))
        if not (eq and key and value):
            raise KPIError(f"--column takes datapoint=column, got {pair!r}")
        if key in out and out[key] != value:
            raise KPIError(
                f"--column {key} is given twice ({out[key]!r} and {value!r}); give it once"
            )
        out[key] = value
    return out


def check_column_keys(reg: Registry, ids: Sequence[str], columns: dict[str, str]) -> None:
    """Every --column names a datapoint (or KPI) the requested KPIs read: a misspelt one would
    otherwise be ignored without a word."""
    inputs = reg.column_keys(ids)
    for key, column in columns.items():
        if key not in inputs:
            from ..errors import KPIError, did_you_mean, shown_columns

            datapoints = sorted(name for name in inputs if name not in reg)
            raise KPIError(
                f"--column {key}={column}: {', '.join(ids)} read{'s' * (len(ids) == 1)} "
                f"no datapoint {key!r}"
                f"{did_you_mean(key, inputs)}; the datapoints are {shown_columns(datapoints)}"
            )


def add_path_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--path",
        action="append",
        metavar="DIR",
        help="a folder of your own definitions to add to the bundled library "
        f"(repeatable; {ENV_PATH} works too)",
    )


def positive(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of 1 or more, not {text!r}")
    return value


def ranged(low: int, high: int):
    """An argparse type: a whole number from low to high, or a usage error saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def _column(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a column name")
    return text


def add_request_arguments(
    p: argparse.ArgumentParser,
    *,
    period_required: bool,
    column_help: str = "read a datapoint from a differently named column (repeatable)",
) -> None:
    """The arguments of Registry.evaluate, shared by `kpi eval` and `kpi sql`."""
    p.add_argument(
        "--period",
        required=period_required,
        type=_column,
        metavar="COL",
        help="period column (dates, 2024-01, 2024Q1, ...)",
    )
    p.add_argument(
        "--entity", type=_column, metavar="COL", help="entity column (customer, account, ...)"
    )
    p.add_argument(
        "--by",
        action="append",
        type=_column,
        metavar="COL",
        help="group by this column (repeatable)",
    )
    p.add_argument("--grain", choices=GRAINS, help="coarsen periods to this grain")
    p.add_argument("--column", action="append", metavar="DATAPOINT=COL", help=column_help)
    p.set_defaults(check_request=check_request_arguments)


def check_request_arguments(args: argparse.Namespace) -> None:
    """The period, entity and group columns of one request name different columns (main()
    calls this for every command with these arguments, before the command runs): the
    engines' own rule (evaluation.check_request), worded as options by cli.wording."""
    from ..request import Request, check_request

    check_request(Request(period=args.period, entity=args.entity, by=list(args.by or [])))


def add_drop_invalid_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--drop-invalid",
        action="store_true",
        help="compute on the rows left after leaving out those outside a datapoint's valid "
        "range or contradicting each other (they are listed as a warning); without it they "
        "are an error",
    )


def add_engine_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=["pandas", "duckdb"],
        default="pandas",
        help="pandas (default) or embedded DuckDB, which reads the file directly",
    )
    p.add_argument(
        "--date-format",
        metavar="FORMAT",
        help="how text dates in the period column are written, e.g. %%d/%%m/%%Y or %%m/%%d/%%Y "
        "(strptime codes); needed for dates that start with the day or the month",
    )


def add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--function", help="only KPIs of this business function, e.g. finance")
    p.add_argument("--category", help="only KPIs in this category")
    p.add_argument("--industry", help="only KPIs used in this industry")
    p.add_argument("--tag", help="only KPIs with this tag")
