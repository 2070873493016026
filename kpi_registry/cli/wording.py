"""Errors worded for the command line: from their fields, in options (``--by``,
``--column x=COL``) where the Python API says ``by=`` or ``columns={...}``."""

from __future__ import annotations

from ..errors import (
    ColumnNotGivenError,
    MissingColumnsError,
    MissingDatapointError,
    RequestColumnsError,
)


def error_text(error: Exception) -> str:
    """The message of ``error`` as a command-line user reads it."""
    if isinstance(error, RequestColumnsError):
        option = f"--{error.role} {error.column}"
        if error.clash == "twice":
            return f"{option} {error.problem}; {error.remedy}"
        return f"{option}: {error.column!r} {error.problem}; {error.remedy}"
    if isinstance(error, ColumnNotGivenError):
        return error.worded(f"give the {error.parameter} column with --{error.parameter} COL")
    if isinstance(error, MissingDatapointError):
        return error.worded(f"--column {error.datapoint}=COL")
    return str(error)


def missing_columns_text(error: MissingColumnsError, data: str | None) -> str:
    """Every datapoint the data has no column for, with the --column options that map them."""
    plural = len(error.missing) > 1
    names = ", ".join(
        f"{m.datapoint!r}" + (f" (--column {m.datapoint}={m.mapped_to})" if m.mapped_to else "")
        for m in error.missing
    )
    shown = ", ".join(repr(c) for c in error.columns[:12]) + (
        " ..." if len(error.columns) > 12 else ""
    )
    options = " ".join(f"--column {m.datapoint}=COL" for m in error.missing)
    text = (
        f"{data + ': ' if data else ''}the data has no column for datapoint{'s' * plural} "
        f"{names}; columns are {shown}. Map {'each' if plural else 'it'} with {options}"
    )
    return text + "".join(f"\n  {m.datapoint}: {m.description} ({m.unit})" for m in error.missing)
