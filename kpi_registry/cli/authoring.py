"""Writing and checking definitions: `kpi validate`, `kpi diff`, `kpi schema`, `kpi new`,
`kpi fmt` and `kpi import`."""

from __future__ import annotations

import argparse
import sys

from .args import ENV_PATH, EXIT_ERRORS, EXIT_OK


# -- validate / diff / schema -----------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from ..registry import collect

    paths = args.paths or []
    result = collect(paths, include_bundled=not args.no_bundled, examples=not args.no_examples)
    if args.against:
        from ..history import check_against

        files = [k.path for k in result.kpis.values() if k.origin != "bundled" or not paths]
        check_against(files, args.against, result.report)
    for diag in result.report.diagnostics:
        print(diag)
    errors, warnings = len(result.report.errors), len(result.report.warnings)
    n = len(result.kpis)
    summary = f"{n} definition{'s' * (n != 1)}, {errors} error{'s' * (errors != 1)}"
    if warnings:
        summary += f", {warnings} warning{'s' * (warnings != 1)}"
        summary += " (errors with --strict)" if not args.strict else ""
    print(summary)
    return EXIT_ERRORS if errors or (args.strict and warnings) else EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..errors import KPIError
    from ..history import diff_libraries, library_at, library_now
    from ..registry import bundled_dir

    folders = [Path(f) for f in args.path or []] or [bundled_dir("definitions")]
    changes = []
    for folder in folders:
        if not folder.is_dir():
            raise KPIError(f"{folder}: no such folder")
        old = library_at(folder, args.old)
        new = library_at(folder, args.new) if args.new else library_now(folder)
        changes.extend(diff_libraries(old, new))
    if args.format == "json":
        print(json.dumps([vars(c) for c in changes], indent=2))
        return EXIT_OK
    if not changes:
        print(f"no changes to definitions between {args.old} and {args.new or 'the files now'}")
        return EXIT_OK
    current = None
    for change in changes:
        if change.kpi != current:
            current = change.kpi
            print(change.kpi)
        print(f"  {change.summary}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from ..schema import kpi_schema

    print(json.dumps(kpi_schema(), indent=2))
    return EXIT_OK


# -- new ------------------------------------------------------------------------------------
def cmd_new(args: argparse.Namespace) -> int:
    import shlex

    from ..scaffold import guess_direction, guess_unit, new_kpi

    notes = []
    unit, direction = args.unit, args.direction
    if unit is None:
        guess = guess_unit(args.name)
        unit = guess[0] if guess else "count"
        notes.append(
            f"unit: {unit} (from {guess[1]!r} in the name)"
            if guess
            else "unit: count (not clear from the name)"
        )
    if direction is None:
        guess = guess_direction(args.name)
        direction = guess[0] if guess else "higher_is_better"
        notes.append(
            f"direction: {direction} (from {guess[1]!r} in the name)"
            if guess
            else "direction: higher_is_better (not clear from the name)"
        )
    result = new_kpi(
        args.name,
        args.category,
        folder=args.dir,
        kpi_id=args.id,
        unit=unit,
        direction=direction,
        overrides=args.overrides,
    )
    print(f"wrote {result.path} (status: draft)")
    if notes:
        print(f"guessed {'; '.join(notes)}; check them, or set --unit and --direction")
    if result.schema_copy:
        print(
            f"wrote {result.schema_copy}: the JSON Schema your editor checks definitions "
            "against; commit it next to them"
        )
    folder = result.path.parent
    print(
        "next: replace the TODOs and the placeholder formula and datapoint, then run: "
        f"kpi validate {shlex.quote(str(folder))}"
    )
    return 0


# -- fmt ------------------------------------------------------------------------------------
def cmd_fmt(args: argparse.Namespace) -> int:
    import difflib

    from ..errors import DefinitionError, KPIError
    from ..formatting import WriteError, default_paths, files_to_format, format_file

    paths = args.paths or default_paths()
    files = files_to_format(paths)
    changed = unchanged = failed = unwritten = skipped = 0
    for path in files:
        try:
            result = format_file(path, write=not args.check)
        except DefinitionError as e:
            for diag in e.diagnostics:
                print(diag, file=sys.stderr)
            failed += 1
            continue
        except WriteError as e:
            print(f"error: {e}", file=sys.stderr)
            unwritten += 1
            continue
        except KPIError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        if result.skipped:
            skipped += 1
            print(f"skipped {path}: {result.skipped}")
            continue
        if not result.changed:
            unchanged += 1
            continue
        changed += 1
        print(f"{'would reformat' if args.check else 'reformatted'} {path}")
        if args.diff:
            sys.stdout.writelines(
                difflib.unified_diff(
                    result.old.splitlines(True),
                    result.new.splitlines(True),
                    f"{path} (now)",
                    f"{path} (formatted)",
                )
            )
    verb = "would be reformatted" if args.check else "reformatted"
    summary = f"{changed} file{'s' * (changed != 1)} {verb}, {unchanged} unchanged"
    if skipped:
        summary += f", {skipped} skipped"
    if failed:
        summary += f", {failed} could not be read"
    if unwritten:
        summary += f", {unwritten} could not be written"
    print(summary)
    if failed or unwritten or (args.check and changed):
        return 1
    return 0


# -- import ---------------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from ..export.ossie_import import import_ossie

    result = import_ossie(args.file, args.dir, category=args.category)
    for line in result.unmapped:
        print(f"not mapped: {line}", file=sys.stderr)
    n = len(result.written)
    print(
        f"wrote {n} draft definition{'s' * (n != 1)} to {args.dir}; "
        f"{len(result.unmapped)} thing{'s' * (len(result.unmapped) != 1)} not mapped "
        f"(listed above); check them with: kpi validate {args.dir}",
        file=sys.stderr,
    )
    return 0


# -- registration -----------------------------------------------------------------------------
def add_validate(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="check definitions and their worked examples",
        description="Check definition files: schema, references, formulas and "
        "worked examples. Prints every error, then a summary line.",
    )
    p.add_argument("paths", nargs="*", help="files or folders (default: the bundled library)")
    p.add_argument(
        "--no-bundled",
        action="store_true",
        help="check the paths on their own, without the bundled library (by default "
        "it is loaded too, so your files may reference bundled KPIs)",
    )
    p.add_argument("--no-examples", action="store_true", help="skip re-computing examples")
    p.add_argument(
        "--strict",
        action="store_true",
        help="warnings (a TODO or placeholder left in a draft) are errors too",
    )
    p.add_argument(
        "--against",
        metavar="REV",
        help="also compare with git revision REV (e.g. HEAD, main): a definition whose formula, "
        "datapoints or unit changed needs a new version, and a certified one is no longer "
        "certified",
    )
    p.set_defaults(func=cmd_validate)


def add_diff(sub) -> None:
    p = sub.add_parser(
        "diff",
        help="what changed in the library between two git revisions",
        description="List the changes to definitions between two git revisions, KPI by KPI: "
        "formulas, datapoints, units, directions, relations, examples, added and removed KPIs. "
        "With one revision, compares it with the files on disk.",
    )
    p.add_argument("old", metavar="REV", help="the earlier revision, e.g. v1.2 or HEAD~5")
    p.add_argument("new", metavar="REV", nargs="?", help="the later one (default: the files now)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument(
        "--path",
        action="append",
        metavar="DIR",
        help="a definition folder to compare (repeatable; default: the bundled library's)",
    )
    p.set_defaults(func=cmd_diff)


def add_schema(sub) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of definition files",
        description="Print the JSON Schema (Draft 2020-12) for editors and CI.",
    )
    p.set_defaults(func=cmd_schema)


def add_new(sub) -> None:
    p = sub.add_parser(
        "new",
        help="write a draft definition to fill in",
        description="Write <dir>/<id>.yaml: every field of a definition, each with a comment "
        "on what goes there. The draft validates at once; never overwrites a file.",
    )
    p.add_argument("name", help='display name, e.g. "Gross Margin"')
    p.add_argument(
        "--category", required=True, help="primary category id from the taxonomy, e.g. sales"
    )
    p.add_argument(
        "--dir",
        metavar="PATH",
        help=f"folder to write to (default: the first {ENV_PATH} folder, else the current one)",
    )
    p.add_argument("--id", help="the id (default: the name in snake_case, e.g. gross_margin)")
    p.add_argument(
        "--unit",
        help="currency, percent, ratio, count, duration or score (default: guessed from the "
        "name where it is obvious, e.g. 'cost' -> currency, 'rate' -> percent; else count)",
    )
    p.add_argument(
        "--direction",
        help="higher_is_better, lower_is_better or on_target (default: guessed from the name, "
        "e.g. 'cost' or 'churn' -> lower_is_better; else higher_is_better)",
    )
    p.add_argument(
        "--overrides",
        action="store_true",
        help="replace the KPI with the same id from the bundled library (or another folder)",
    )
    p.set_defaults(func=cmd_new)


def add_fmt(sub) -> None:
    p = sub.add_parser(
        "fmt",
        help="put definition fields in canonical order and normalise layout",
        description="Rewrite definition files with fields in the order of the JSON Schema, "
        "2-space indentation and one blank line before each section, keeping every comment. "
        "Data never changes. With no paths, formats ./definitions.",
    )
    p.add_argument("paths", nargs="*", help="files or folders (folders are searched recursively)")
    p.add_argument(
        "--check",
        action="store_true",
        help="change nothing; list the files that would change and exit 1 if there are any",
    )
    p.add_argument("--diff", action="store_true", help="also print what changes, as a diff")
    p.set_defaults(func=cmd_fmt)


def add_import(sub) -> None:
    p = sub.add_parser(
        "import",
        help="write draft definitions from an Apache Ossie document",
        description="Read an Apache Ossie 0.1.1 document (YAML or JSON) and write one draft "
        "definition per metric into --dir. Metrics exported by kpi-registry come back whole; "
        "others are translated from their ANSI SQL where it maps. Everything that could not "
        "be mapped is listed.",
    )
    p.add_argument("file", metavar="FILE", help="the Ossie document")
    p.add_argument("--format", choices=["ossie"], default="ossie")
    p.add_argument("--dir", required=True, metavar="DIR", help="folder to write the drafts to")
    p.add_argument(
        "--category",
        help="category for metrics from other tools (ours carry their own)",
    )
    p.set_defaults(func=cmd_import)
