"""`kpi site build` and `kpi site serve`: the docs site (mkdocs is imported only when one runs)."""

from __future__ import annotations

import argparse

from .args import EXIT_OK, EXIT_USAGE, ranged


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def cmd_build(args: argparse.Namespace) -> int:
    from ..site.build import KPI_PAGE_BUDGET, build_site, default_layout

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
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from ..site.serve import serve

    return serve(args)


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
        type=ranged(1, 64),
        metavar="N",
        help="processes to build with (default: 2 for 1,000 KPIs or more on a multi-core machine)",
    )
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="do not fail on mkdocs warnings such as broken links (strict by default)",
    )


def add_site(sub) -> None:
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
    p.add_argument("--port", type=ranged(0, 65535), default=8000, help="port (default 8000)")
    p.add_argument(
        "--no-build", action="store_true", help="serve the last build first, rebuild on changes"
    )
    p.set_defaults(func=cmd_serve)

    def usage(args: argparse.Namespace) -> int:
        site.print_help()
        return EXIT_USAGE

    site.set_defaults(func=usage)
