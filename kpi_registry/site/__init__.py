"""The docs site: ``kpi site build`` and ``kpi site serve``.

Modules, one concern each: ``pages`` writes the Markdown docs folder from the templates in
``templates/site``; ``examples`` computes worked examples; ``charts`` and ``relation_map`` draw
SVG; ``calculator`` generates the in-page calculators; ``graph`` indexes relations; ``build``
runs mkdocs-material and swaps the result in; ``serve`` serves it with live reload.
Heavy imports (mkdocs, pandas) happen inside the commands, so ``kpi --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    site = sub.add_parser(
        "site",
        help="build or serve the docs site",
        description="Build the docs site (mkdocs-material) from the definitions, or serve it.",
    )
    commands = site.add_subparsers(dest="site_command", metavar="COMMAND")

    p = commands.add_parser(
        "build",
        help="render the definitions into a static site",
        description="Render every definition into Markdown (site/docs) and build HTML "
        "(site/build). A failed build leaves the previous site in place.",
    )
    _common(p)
    p.set_defaults(func=cmd_build)

    p = commands.add_parser(
        "serve",
        help="serve the site with live reload",
        description="Build the site, serve it, and rebuild when a definition, template or "
        "site file changes; open pages reload themselves.",
    )
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_ranged(0, 65535), default=8000, help="port (default 8000)")
    p.add_argument(
        "--no-build", action="store_true", help="serve the last build first, rebuild on changes"
    )
    p.set_defaults(func=cmd_serve)

    site.set_defaults(func=lambda args: _usage(site))


def _ranged(low: int, high: int):
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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="folders of your own definitions to add"
    )
    p.add_argument("--out", metavar="DIR", help="where the HTML goes (default site/build)")
    p.add_argument(
        "--docs-dir", metavar="DIR", help="where the generated Markdown goes (default site/docs)"
    )
    p.add_argument(
        "--no-bundled", action="store_true", help="only the given paths, not the bundled library"
    )
    p.add_argument(
        "--jobs",
        type=_ranged(1, 64),
        metavar="N",
        help="processes to build with (default: 2 for 1,000 KPIs or more on a multi-core machine)",
    )
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="do not fail on mkdocs warnings such as broken links (strict by default)",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _build(args: argparse.Namespace):
    from .build import KPI_PAGE_BUDGET, build_site, default_layout

    layout = default_layout(args.out, args.docs_dir)
    report = build_site(
        args.paths,
        layout=layout,
        include_bundled=not args.no_bundled,
        strict=not args.no_strict,
        jobs=args.jobs,
    )
    for warning in report.warnings:
        print(f"mkdocs {warning}")
    for kpi_id, size in report.oversized.items():
        print(
            f"note: the page of {kpi_id} is {size / 1024:.1f} KB of HTML, over the "
            f"{KPI_PAGE_BUDGET // 1024} KB a KPI page aims for: shorten its texts or examples"
        )
    counts = ", ".join(
        _count(n, what)
        for n, what in [(report.examples, "worked example"), (report.calculators, "calculator")]
    )
    print(
        f"built {_count(report.kpis, 'KPI page')} ({report.pages} pages in all, {counts}) "
        f"into {layout.out} in {report.seconds['total']:.1f} s"
    )
    return layout


def cmd_build(args: argparse.Namespace) -> int:
    _build(args)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(args)
