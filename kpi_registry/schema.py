"""The JSON Schema contract and the translation of its errors into actionable messages."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema is imported only when a file fails the fast check
    import jsonschema

from .errors import Diagnostic, suggest
from .loading import field_name, position_of

_TYPE_NAMES = {
    "string": "text",
    "array": "a list",
    "object": "a mapping",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "nothing",
}


@cache
def kpi_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) every definition file must satisfy."""
    text = resources.files("kpi_registry").joinpath("schema/kpi.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def _fast_validator():
    """A compiled validator (Rust) that answers valid/invalid ~50x faster than jsonschema;
    only files it rejects are re-checked by jsonschema for readable, positioned messages."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - optional speed-up
        return None
    return jsonschema_rs.validator_for(kpi_schema())


@cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    cls = jsonschema.validators.validator_for(kpi_schema())
    cls.check_schema(kpi_schema())
    return cls(kpi_schema())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "nothing (empty value)"
    return "a number"


def check(data: dict[str, Any], path: str) -> list[Diagnostic]:
    """Schema errors for one parsed file, each pointing at the line of the offending field."""
    fast = _fast_validator()
    if fast is not None and fast.is_valid(data):
        return []
    validator = _validator()
    out: list[Diagnostic] = []
    for error in validator.iter_errors(data):
        for err in _leaves(error):
            out.extend(_translate(err, data, path))
    return sorted(set(out))


def _leaves(error: jsonschema.ValidationError):
    """For oneOf/anyOf, report the branch that got furthest instead of a generic failure."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.context or [])))
        deepest = [e for e in error.context if len(e.absolute_path) == len(best.absolute_path)]
        if len(best.absolute_path) > len(error.absolute_path):
            for e in deepest[:1]:
                yield from _leaves(e)
            return
    yield error


def _translate(err: jsonschema.ValidationError, data: dict, path: str) -> list[Diagnostic]:
    loc = tuple(err.absolute_path)
    field = field_name(loc)
    kind = err.validator
    if kind == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extras = [k for k in err.instance if k not in err.schema.get("properties", {})]
        diags = []
        for extra in extras:
            line, col = position_of(data, (*loc, extra))
            hints = suggest(extra, allowed)
            hint = f" (did you mean '{hints[0]}'?)" if hints else ""
            name = field_name((*loc, extra))
            diags.append(Diagnostic(path, line, col, name, f"unknown field{hint}"))
        return diags
    line, col = position_of(data, loc)
    if kind == "required":
        # one error per missing field, all alike but for their message: each reports every
        # missing one, and check() keeps one diagnostic per field
        where = f"{field}." if field else ""
        return [
            Diagnostic(
                path,
                line,
                col,
                f"{where}{missing}",
                f"missing required field '{missing}'" + _status_hint(err, data, missing),
            )
            for missing in err.validator_value
            if isinstance(err.instance, dict) and missing not in err.instance
        ]
    if kind == "type":
        want = err.validator_value
        wants = want if isinstance(want, list) else [want]
        want_text = " or ".join(_TYPE_NAMES.get(w, w) for w in wants)
        message = f"expected {want_text}, found {_kind(err.instance)}"
        return [Diagnostic(path, line, col, field, message)]
    if kind == "enum":
        options = ", ".join(str(o) for o in err.validator_value)
        hints = suggest(str(err.instance), [str(o) for o in err.validator_value])
        hint = f" (did you mean '{hints[0]}'?)" if hints else ""
        message = f"{err.instance!r} is not allowed{hint}; choose one of: {options}"
        return [Diagnostic(path, line, col, field, message)]
    if kind == "minLength":
        return [Diagnostic(path, line, col, field, "must not be empty")]
    if kind == "minItems":
        n = err.validator_value
        return [Diagnostic(path, line, col, field, f"needs at least {n} item{'s' * (n != 1)}")]
    if kind == "pattern":
        return [
            Diagnostic(
                path,
                line,
                col,
                field,
                f"{err.instance!r} is not a valid id: "
                "use snake_case (lower-case letters, digits, _)",
            )
        ]
    if kind == "uniqueItems":
        return [Diagnostic(path, line, col, field, "has the same item twice")]
    return [Diagnostic(path, line, col, field, err.message)]


def _status_hint(err: jsonschema.ValidationError, data: dict, missing: str) -> str:
    """Why a reviewed or certified KPI needs a field the schema only asks of those."""
    status = data.get("status") if isinstance(data, dict) else None
    if err.absolute_path or status not in ("reviewed", "certified"):
        return ""
    if missing in kpi_schema()["required"]:
        return ""
    return f" (a {status} KPI must fill all 12 attributes; or set status: draft)"
