"""The docs site: ``kpi site build`` and ``kpi site serve``.

Modules, one concern each: ``pages`` writes the Markdown docs folder from the templates in
``templates/site``; ``examples`` computes worked examples; ``charts`` and ``relation_map`` draw
SVG; ``calculator`` generates the in-page calculators; ``graph`` indexes relations; ``build``
runs mkdocs-material and swaps the result in; ``serve`` serves it with live reload.
The commands themselves are in ``kpi_registry.cli.site``.
"""
