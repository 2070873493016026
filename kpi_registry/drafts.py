"""What a draft still has to fill in: the TODOs and placeholders `kpi new` writes.

A draft validates from the start (so a newcomer sees a green `kpi validate` and a working
example at once), which is also why leftovers must be reported: as warnings, and as errors under
``kpi validate --strict`` (which the pre-commit hook uses), so none reaches the library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .errors import Report
from .loading import position_of
from .model import KPI

_TODO = re.compile(r"\bTODO\b")


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _leaves(child, (*path, i))
    else:
        yield path, value


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unfinished(value: str, placeholder: str) -> bool:
    return (
        ("TODO" in value and _TODO.search(value) is not None)
        or placeholder in value
        or value.startswith("Placeholder")
    )


def _any_unfinished(data: Any, placeholder: str) -> bool:
    """Whether any text is unfinished: a walk without paths, since a finished definition (all
    but drafts) has none, and validating 20,000 of them should not build a path per value."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _unfinished(value, placeholder):
                return True
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def check_unfinished(kpi: KPI, report: Report) -> None:
    """A warning for every TODO left in a text and every placeholder `kpi new` wrote."""
    placeholder = f"placeholder_{kpi.id}"
    if not _any_unfinished(kpi.data, placeholder):
        return
    for path, value in _leaves(kpi.data):
        if not isinstance(value, str):
            continue
        if _TODO.search(value):
            what = "still says TODO"
        elif placeholder in value or value.startswith("Placeholder"):
            what = "is still the placeholder kpi new wrote"
        else:
            continue
        line, col = position_of(kpi.data, path)
        report.warn(kpi.path, line, col, _dotted(path), f"{what}: fill it in")
