"""The docs folder: every page of the site rendered from Jinja2 templates into Markdown.

The output is a plain MkDocs docs folder, generated before the build (no MkDocs plugin), so
any builder that reads ``mkdocs.yml`` can turn it into HTML. Page paths:

* ``index.md`` home; ``categories/`` an index (in the navigation) and a page per category;
* ``kpi/<id>.md`` one page per KPI; ``industry/``, ``tag/``, ``group/`` one page each;
* ``browse/`` the A-Z index and the indexes of industries, tags and relation groups;
* ``reference/`` the formula language and the definition format; ``guides/`` copied verbatim;
* ``list/`` the parts of listings too long for one page.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ..errors import DefinitionError, Diagnostic
from ..formula import FUNCTIONS, MISSING_VALUES, OPERATORS, parse
from ..formula.mathml import to_mathml
from ..history import HistoryEntry, file_histories
from ..model import ATTRIBUTE_TITLES, KPI, BusinessFunction
from ..registry import Registry, bundled_dir
from . import listing
from .calculator import calculator_for, runtime_script
from .drivers import figure_context
from .examples import example_views
from .graph import RelationGroup, relation_groups
from .links import Links
from .markup import environment, md_inline, text
from .mathfit import fitted
from .numbers import UNIT_LABELS
from .recent import last_changed
from .relation_map import Neighbour, relation_map

RECENT = 10

#: Aliases shown (and searched) in a KPI's title: NRR, LTV, ARPA.
ABBREVIATION = re.compile(r"[A-Z][A-Z0-9]{1,5}")
#: A KPI page lists this many changes from its history (the newest); kpi diff shows the rest.
MAX_HISTORY = 3
#: Above this many KPIs a catalog table (a function's, or the whole library's) is left out and
#: the page links its category listings instead: a page stays small whatever the library's size.
CATALOG_LIMIT = 1500


@dataclass(frozen=True)
class CatalogRow:
    kpi: KPI
    abbreviation: str
    function: BusinessFunction
    category: str
    unit: str
    owner: str


#: On a KPI page, at most this many relations declared by other KPIs per list (with their
#: reasons), and this many KPIs under "used in the formula of"; the rest are counted.
MAX_REVERSE = 3
MAX_USED_IN = 20
#: A relation group's page tables every link of its members up to this size; a KPI page
#: sends readers of its capped lists there only then.
MAX_LINKED_GROUP = 60


def lists_links(group: RelationGroup | None) -> bool:
    return group is not None and len(group.members) <= MAX_LINKED_GROUP


#: Sections of a KPI page that go into the search index; the rest is marked
#: data-search-exclude, which keeps the index small (see the issue's scale figures).
SEARCHED_SECTIONS = ("definition",)


@dataclass
class Listing:
    """A list of KPIs shown on a page, or split over part pages under list/."""

    slug: str
    title: str
    parts: list[listing.Part[str]]

    @property
    def split(self) -> bool:
        return len(self.parts) > 1

    def part_path(self, part: listing.Part[str]) -> str:
        return f"list/{self.slug}/{part.slug}.md"


@dataclass
class Summary:
    kpis: int = 0
    calculators: int = 0
    examples: int = 0


class PageLinks:
    """Link helpers bound to the page being written (templates call these)."""

    def __init__(self, site: SiteGenerator, source: str):
        self.site, self.source = site, source

    def md(self, target: str) -> str:
        return self.site.links.md(self.source, target)

    def url(self, target: str) -> str:
        return self.site.links.url(self.source, target)

    def kpi(self, kpi_id: str) -> Markup:
        """A Markdown link to a KPI page, its name as the text."""
        return Markup(f"[{self.site.md_name(kpi_id)}]({self.md(kpi_path(kpi_id))})")

    def kpi_url(self, kpi_id: str) -> str:
        return self.url(kpi_path(kpi_id))


def kpi_path(kpi_id: str) -> str:
    return f"kpi/{kpi_id}.md"


def search_boost(name: str) -> float:
    """How much a KPI page counts in search: more than other pages, and a little more the
    shorter its name.

    The theme's search ignores field length, so "Expansion Revenue" and "Expansion Revenue Rate"
    score the same for the query "expansion revenue". Five percent less per word puts the exact
    name first, while a name with one more word still wins when all its words are typed (each
    matched title word counts far more than five percent).
    """
    words = re.findall(r"[A-Za-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name))
    # Words the search drops (its English stop words) match nothing, so they do not count:
    # "On-Time In-Full" is two searched words, like "Full-Time Equivalents" is three.
    searched = [w for w in words if w.lower() not in SEARCH_STOP_WORDS]
    return round(5 * 0.95 ** max(1, len(searched)), 4)


#: lunr.js's English stop words, which the theme's search leaves out of queries and pages.
SEARCH_STOP_WORDS = frozenset(
    """a able about across after all almost also am among an and any are as at be because been
    but by can cannot could dear did do does either else ever every for from get got had has
    have he her hers him his how however i if in into is it its just least let like likely may
    me might most must my neither no nor not of off often on only or other our own rather said
    say says she should since so some than that the their them then there these they this tis
    to too twas us wants was we were what when where which while who whom why will with would
    yet you your""".split()
)


def title_case(ident: str) -> str:
    text = ident.replace("_", " ")
    return text[:1].upper() + text[1:]


class SiteGenerator:
    def __init__(
        self,
        registry: Registry,
        docs_dir: Path,
        *,
        templates: Path | None = None,
        site_dir: Path | None = None,
        guides: Path | None = None,
    ):
        self.registry = registry
        self.docs = docs_dir
        self.env = environment(templates or bundled_dir("templates") / "site")
        self.site_dir = site_dir or bundled_dir("site")
        self.guides_dir = guides if guides is not None else bundled_dir("docs") / "guides"
        self.definitions_dir = bundled_dir("definitions")  # found once, not once per page
        self.links = Links()
        self.summary = Summary()
        self._tails: dict[str, str] = {}
        self._names: dict[str, Markup] = {}
        self._plan()

    # -- planning: every page path is known before any page is written ---------------------
    def _plan(self) -> None:
        reg, add = self.registry, self.links.add
        add("index.md")
        add("categories/index.md")
        for kpi in reg:
            add(kpi_path(kpi.id))
        self.members: dict[str, list[str]] = defaultdict(list)  # category -> primary KPIs
        self.secondary: dict[str, list[str]] = defaultdict(list)
        self.industries: dict[str, list[str]] = defaultdict(list)
        self.tags: dict[str, list[str]] = defaultdict(list)
        for kpi in reg:
            if kpi.category:
                self.members[kpi.category].append(kpi.id)
            for cat in kpi.categories[1:]:
                self.secondary[cat].append(kpi.id)
            for ind in kpi.industries:
                self.industries[ind].append(kpi.id)
            for tag in kpi.tags:
                self.tags[tag].append(kpi.id)
        self.categories = sorted(reg.taxonomy, key=lambda c: (reg.taxonomy[c].name.casefold(), c))
        self.function_members: dict[str, list[str]] = defaultdict(list)  # function -> KPI ids
        for kpi in reg:
            self.function_members[reg.function_of(kpi.id).id].append(kpi.id)
        self.function_categories: dict[str, list[str]] = defaultdict(list)
        for cat in self.categories:
            self.function_categories[reg.taxonomy[cat].function or "other"].append(cat)
        self.functions = sorted(
            (f for f in reg.functions.values() if self.function_members[f.id]),
            key=lambda f: (f.name.casefold(), f.id),
        )
        add("functions/index.md")
        for function in self.functions:
            add(f"functions/{function.id}.md")
        add("browse/catalog.md")
        self.listings: list[Listing] = []
        self.category_lists: dict[str, tuple[Listing, Listing]] = {}
        for cat in self.categories:
            add(f"categories/{cat}.md")
            self.category_lists[cat] = (
                self._listing(f"category-{cat}", reg.taxonomy[cat].name, self.members[cat]),
                self._listing(
                    f"category-{cat}-also", f"{reg.taxonomy[cat].name} (also)", self.secondary[cat]
                ),
            )
        self.industry_lists = {
            ind: self._listing(f"industry-{ind}", title_case(ind), ids, page=f"industry/{ind}.md")
            for ind, ids in sorted(self.industries.items())
        }
        self.tag_lists = {
            tag: self._listing(f"tag-{tag}", title_case(tag), ids, page=f"tag/{tag}.md")
            for tag, ids in sorted(self.tags.items())
        }
        self.az = self._listing("a-z", "A\u2013Z index", [k.id for k in reg])
        self.groups: list[RelationGroup] = relation_groups(reg)
        self.group_lists = {
            g.hub: self._listing(
                f"group-{g.hub}", self._group_title(g), g.members, page=f"group/{g.hub}.md"
            )
            for g in self.groups
        }
        for path in (
            "browse/a-z.md",
            "browse/industries.md",
            "browse/tags.md",
            "browse/groups.md",
            "reference/formula-language.md",
            "reference/definition-format.md",
        ):
            add(path)
        self.guides = sorted(self.guides_dir.glob("*.md")) if self.guides_dir.is_dir() else []
        for guide in self.guides:
            add(f"guides/{guide.name}")
        self.links.add_file("schema/kpi.schema.json")
        # The catalog is built when it is written (write_catalog): at 20,000 KPIs it takes as
        # long as a tenth of the KPI pages, work that can run beside them.
        self.links.add_file("catalog.json")

    def _listing(self, slug: str, title: str, ids: list[str], page: str | None = None) -> Listing:
        if page:
            self.links.add(page)
        parts = listing.split(ids, key=lambda i: self.registry[i].name)
        result = Listing(slug, title, parts)
        if result.split:
            for part in parts:
                self.links.add(result.part_path(part))
        self.listings.append(result)
        return result

    def _group_title(self, g: RelationGroup) -> str:
        others = len(g.members) - 1
        return f"{self.registry[g.hub].name} and {others} related KPI{'s' * (others != 1)}"

    # -- writing -------------------------------------------------------------------------
    def write(self, path: str, template: str, **context: Any) -> None:
        assert path in self.links.pages, path
        markdown = self.env.get_template(template).render(
            L=PageLinks(self, path), reg=self.registry, site=self, **context
        )
        target = self.docs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(markdown, "utf-8")

    def generate(self, progress: Callable[[int], None] | None = None) -> Summary:
        """Write the whole docs folder. ``progress`` is called after each KPI page."""
        self.nav_pages()
        self.kpi_pages(self.registry.ids, progress)
        self.listing_pages()
        self.write_catalog()
        return self.summary

    def write_catalog(self) -> None:
        """catalog.json, the machine-readable catalog (kpi_registry.export's catalog_json).

        Written a KPI at a time: the text is the same as one json.dumps() of the whole, but
        a 20,000-KPI catalog is some 300 MB of text, which is never held in memory at once
        (nor its UTF-8 copy).
        """
        from ..export import catalog_json

        catalog = catalog_json(self.registry, copy_fields=False)  # only written
        self.docs.mkdir(parents=True, exist_ok=True)

        def dumps(value: Any) -> str:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

        with (self.docs / "catalog.json").open("w", encoding="utf-8") as f:
            f.write("{")
            for n, (key, value) in enumerate(catalog.items()):
                f.write(("," if n else "") + dumps(key) + ":")
                if key == "kpis" and isinstance(value, list):
                    f.write("[")
                    for i in range(len(value)):
                        f.write(("," if i else "") + dumps(value[i]))
                        value[i] = None  # written: let it go
                    f.write("]")
                else:
                    f.write(dumps(value))
            f.write("}")

    def md_name(self, kpi_id: str) -> Markup:
        """A KPI's name as literal Markdown (made once per KPI: listings repeat it)."""
        name = self._names.get(kpi_id)
        if name is None:
            name = self._names[kpi_id] = md_inline(self.registry[kpi_id].name)
        return name

    def list_item(self, kpi_id: str, links: PageLinks) -> Markup:
        """A KPI in a listing, as HTML: its link, unit, indicator type and summary.

        A KPI is listed on several pages (A-Z, categories, industries, tags, its group), so
        the text is made once per KPI. Listings are HTML rather than Markdown lists: at 20,000
        KPIs they hold 180,000 items, and Markdown's inline patterns over them took longer
        than all the KPI pages together. Links are checked as they are made (Links).
        """
        tail = self._tails.get(kpi_id)
        if tail is None:
            k = self.registry[kpi_id]
            summary = text(k.summary or "")
            tail = (
                f'">{text(k.name)}</a> <span class="kpi-meta">{text(k.unit)} · '
                f"{text(k.indicator_type)}</span>" + (f" — {summary}" if summary else "")
            )
            self._tails[kpi_id] = tail
        return Markup(f'<a href="{links.kpi_url(kpi_id)}{tail}')

    def kpi_pages(self, ids: list[str], progress: Callable[[int], None] | None = None) -> Summary:
        """Write the pages of these KPIs; every broken worked example is reported at once."""
        self.docs.mkdir(parents=True, exist_ok=True)
        failed: list[Diagnostic] = []
        for n, kpi_id in enumerate(ids, 1):
            try:
                self.kpi_page(self.registry[kpi_id])
            except DefinitionError as e:
                failed.extend(e.diagnostics)
            if progress:
                progress(n)
        if failed:
            raise DefinitionError(failed)
        self.summary.kpis += len(ids)
        return self.summary

    def nav_pages(self) -> None:
        """The pages in the navigation (which every page shows), and the static files."""
        self.docs.mkdir(parents=True, exist_ok=True)
        self._copy_static()
        self._home()
        self.write("categories/index.md", "categories.md.j2")
        self.write("functions/index.md", "functions.md.j2")
        self._browse_indexes()
        self._reference()

    def listing_pages(self) -> None:
        """Function, category, industry, tag and group pages, and the parts of long listings."""
        for function in self.functions:
            ids = self.function_members[function.id]
            self.write(
                f"functions/{function.id}.md",
                "function.md.j2",
                function=function,
                categories=self.function_categories[function.id],
                rows=self.catalog_rows(ids) if len(ids) <= CATALOG_LIMIT else [],
                count=len(ids),
            )
        ids = self.registry.ids
        self.write(
            "browse/catalog.md",
            "catalog.md.j2",
            rows=self.catalog_rows(ids) if len(ids) <= CATALOG_LIMIT else [],
            count=len(ids),
        )
        for cat in self.categories:
            primary, also = self.category_lists[cat]
            self.write(
                f"categories/{cat}.md",
                "category.md.j2",
                category=self.registry.taxonomy[cat],
                primary=primary,
                also=also,
            )
        self._browse_pages()
        for listing_ in self.listings:
            if listing_.split:
                for part in listing_.parts:
                    self.write(
                        listing_.part_path(part), "list_part.md.j2", listing=listing_, part=part
                    )

    def release(self) -> None:
        """Drop the definitions and everything built from them (the caller collects)."""
        self.registry = None  # type: ignore[assignment]
        self.listings, self.category_lists, self.groups = [], {}, []
        self.industry_lists, self.tag_lists, self.group_lists = {}, {}, {}
        self.members, self.secondary, self.industries, self.tags = {}, {}, {}, {}
        self._tails, self._names = {}, {}
        self.__dict__.pop("_group_of", None)
        self.__dict__.pop("_histories", None)

    def write_stubs(self) -> None:
        """An empty file for every page, so a partial build already sees the whole site."""
        for path in self.links.pages:
            target = self.docs / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()

    def _copy_static(self) -> None:
        assets = self.site_dir / "assets"
        if assets.is_dir():
            # calculator.js is not copied as is: it goes into kpi.js after the runtime below.
            shutil.copytree(
                assets,
                self.docs / "assets",
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("calculator.js"),
            )
        driver = (self.site_dir / "assets" / "calculator.js").read_text("utf-8")
        (self.docs / "assets").mkdir(parents=True, exist_ok=True)
        (self.docs / "assets" / "kpi.js").write_text(runtime_script() + driver, "utf-8")
        schema_dir = self.docs / "schema"
        schema_dir.mkdir(exist_ok=True)
        source = Path(__file__).resolve().parent.parent / "schema" / "kpi.schema.json"
        shutil.copyfile(source, schema_dir / "kpi.schema.json")
        for guide in self.guides:
            target = self.docs / "guides" / guide.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(guide, target)  # verbatim

    # -- KPI pages -----------------------------------------------------------------------
    def guide_title(self, guide: Path) -> str:
        """A guide's own first heading, else its file name in words."""
        for line in guide.read_text("utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return guide.stem.replace("-", " ").capitalize()

    def label(self, name: str) -> str:
        """How a formula names things: KPIs by their name, datapoints as written."""
        return self.registry[name].name if name in self.registry else name

    def formula_mathml(self, kpi: KPI, display: str = "block") -> Markup:
        if kpi.expression is None:
            return Markup("")
        if display != "block":
            return Markup(to_mathml(kpi.expression, self.label, display=display, name=kpi.id))
        return Markup(fitted(kpi.expression, self.label, name=kpi.id))

    def kpi_page(self, kpi: KPI) -> None:
        reg = self.registry
        examples = example_views(reg.kpis, kpi)
        calc = calculator_for(reg, kpi)
        self.summary.examples += len(examples)
        self.summary.calculators += calc is not None
        # Registry.lagging is this KPI's own lagging list plus every KPI that names it as
        # leading; the page shows the two halves apart: "Lagging indicators" (its own list)
        # and "Influences" (the others), so no KPI is listed twice.
        lagging = [r.as_dict() for r in kpi.relations("lagging")]
        named = {r["kpi"] for r in lagging}
        relations = {
            "leading": reg.leading(kpi.id),
            "lagging": lagging,
            "influences": [r for r in reg.influences(kpi.id) if r["kpi"] not in named],
            "related": reg.related(kpi.id),
        }
        deps, used_in = reg.dependencies(kpi.id), reg.used_in(kpi.id)
        # What other KPIs declare about this one grows with the library: show the first few
        # (its own declarations are always shown) so a page keeps its size at any scale.
        more = {}
        full = dict(relations)  # the map counts every neighbour, as the API does
        all_used_in = used_in
        for kind, items in relations.items():
            own = [r for r in items if kind != "influences" and "declared_in" not in r]
            reverse = [r for r in items if r not in own]
            more[kind] = max(0, len(reverse) - MAX_REVERSE)
            relations[kind] = own + reverse[:MAX_REVERSE]
        more["used_in"] = max(0, len(used_in) - MAX_USED_IN)
        used_in = used_in[:MAX_USED_IN]
        source = kpi_path(kpi.id)
        neighbours = [
            *(("leading", r["kpi"]) for r in full["leading"]),
            *(("uses", d) for d in deps),
            *(("lagging", r["kpi"]) for r in full["lagging"]),
            *(("lagging", r["kpi"]) for r in full["influences"]),
            *(("used_in", u) for u in all_used_in),
            *(("related", r["kpi"]) for r in full["related"]),
        ]
        picture = relation_map(
            kpi.name,
            [
                Neighbour(k, reg[k].name, self.links.url(source, kpi_path(k)), kind)
                for kind, k in neighbours
            ],
        )
        drivers = figure_context(
            reg,
            kpi,
            lambda k: self.links.url(source, kpi_path(k)) if k in reg else None,
            [view.result_values for view in examples],
        )
        self.write(
            source,
            "kpi.md.j2",
            driver_tree=Markup(drivers["driver_tree"]),
            last_change=drivers["last_change"],
            kpi=kpi,
            d=kpi.data,
            examples=examples,
            calc=calc,
            relations=relations,
            deps=deps,
            used_in=used_in,
            more=more,
            relation_map=Markup(picture),
            formula=self.formula_mathml(kpi),
            # Each intermediate's formula as written (its own page typesets it): a step list
            # in MathML was 2 KB of a page with four steps.
            step_formulas={
                s: " ".join(reg[s].formula_text.split()) for ex in examples for s in ex.steps
            },
            titles=ATTRIBUTE_TITLES,
            boost=search_boost(kpi.name),
            abbreviations=[a for a in kpi.aliases if ABBREVIATION.fullmatch(a)],
            units=UNIT_LABELS,
            searched=SEARCHED_SECTIONS,
            source_file=self.source_file(kpi),
            group=self.group_of(kpi.id),
            group_lists_links=lists_links(self.group_of(kpi.id)),
            inputs=reg.inputs(kpi.id),
            history=self.history_of(kpi)[:MAX_HISTORY],
            history_more=max(0, len(self.history_of(kpi)) - MAX_HISTORY),
        )

    def history_of(self, kpi: KPI) -> list[HistoryEntry]:
        """The definition's changes from git, newest first; none outside a repository. Edits
        of wording alone are left out: the page lists what changes what the KPI means or gives
        (kpi diff still shows every change)."""
        if not hasattr(self, "_histories"):
            histories = file_histories(k.path for k in self.registry.kpis.values())
            self._histories = {
                path: [
                    HistoryEntry(e.date, e.commit, e.subject, meaning)
                    for e in entries
                    if (meaning := tuple(c for c in e.changes if c.field != "texts"))
                ]
                for path, entries in histories.items()
            }
        return self._histories.get(kpi.path, [])

    def source_file(self, kpi: KPI) -> str:
        """Where the definition lives, as a reader of the repository would write it."""
        if kpi.origin == "bundled":
            try:
                return "definitions/" + kpi.path.relative_to(self.definitions_dir).as_posix()
            except ValueError:
                pass
        return kpi.path.as_posix()

    def group_of(self, kpi_id: str) -> RelationGroup | None:
        if not hasattr(self, "_group_of"):
            self._group_of = {m: g for g in self.groups for m in g.members}
        return self._group_of.get(kpi_id)

    def catalog_rows(self, ids: list[str]) -> list[CatalogRow]:
        """One row of the sortable catalog table per KPI, by name."""
        reg = self.registry
        rows = []
        for kpi_id in ids:
            kpi = reg[kpi_id]
            category = reg.taxonomy.get(kpi.category)
            rows.append(
                CatalogRow(
                    kpi=kpi,
                    abbreviation=" · ".join(a for a in kpi.aliases if ABBREVIATION.fullmatch(a)),
                    function=reg.function_of(kpi_id),
                    category=category.name if category else kpi.category,
                    unit=UNIT_LABELS.get(kpi.unit, kpi.unit),
                    owner=str(kpi.data.get("owner") or ""),
                )
            )
        return sorted(rows, key=lambda r: (r.kpi.name.casefold(), r.kpi.id))

    # -- the other pages -------------------------------------------------------------------
    def _home(self) -> None:
        reg = self.registry
        changed = last_changed(k.path for k in reg.kpis.values())
        recent = sorted(reg.kpis.values(), key=lambda k: (changed[k.path], k.id), reverse=True)
        days = [changed[k.path].date() for k in recent[:RECENT]]
        # Several changes on one day (a busy day of edits) are told apart by their time.
        form = "%Y-%m-%d %H:%M UTC" if len(set(days)) < len(days) else "%Y-%m-%d"

        def stamp(when):
            return when.strftime(form)

        self.write(
            "index.md",
            "home.md.j2",
            recent=[(k, stamp(changed[k.path])) for k in recent[:RECENT]],
        )

    def _browse_indexes(self) -> None:
        self.write("browse/a-z.md", "a_z.md.j2", listing=self.az)
        self.write(
            "browse/industries.md",
            "index_of.md.j2",
            title="Industries",
            intro="KPIs by the industries that use them.",
            entries=[
                (title_case(i), f"industry/{i}.md", len(ids)) for i, ids in self.industries.items()
            ],
        )
        self.write(
            "browse/tags.md",
            "index_of.md.j2",
            title="Tags",
            intro="KPIs by tag. Tags are free labels set in the definitions.",
            entries=[(t, f"tag/{t}.md", len(ids)) for t, ids in self.tags.items()],
        )
        self.write("browse/groups.md", "groups.md.j2", groups=self.groups)

    def _browse_pages(self) -> None:
        for ind, lst in self.industry_lists.items():
            self.write(f"industry/{ind}.md", "listing.md.j2", listing=lst, intro="")
        for tag, lst in self.tag_lists.items():
            self.write(f"tag/{tag}.md", "listing.md.j2", listing=lst, intro="")
        for g in self.groups:
            self.write(
                f"group/{g.hub}.md",
                "group.md.j2",
                group=g,
                listing=self.group_lists[g.hub],
                edges=self._edges(g) if lists_links(g) else [],
            )

    def _edges(self, g: RelationGroup) -> list[tuple[str, str, str, str]]:
        """(from, kind, to, why) for every declared relation and formula use that touches a
        member, also those declared outside the group: a KPI page whose lists are capped sends
        its reader here for the rest."""
        reg, members = self.registry, set(g.members)
        declarers = sorted(members | {n for m in g.members for n in reg.neighbours(m)})
        out = []
        for d in declarers:
            inside = d in members
            kpi = reg[d]
            for kind in ("leading", "lagging", "related"):
                for r in kpi.relations(kind):
                    if inside or r.kpi in members:
                        out.append((d, kind, r.kpi, r.why))
            for dep in reg.dependencies(d):
                if inside or dep in members:
                    out.append((d, "uses", dep, ""))
        return out

    def _reference(self) -> None:
        groups = defaultdict(list)
        for f in FUNCTIONS.values():
            groups[f.kind].append((f, Markup(to_mathml(parse(f.example), display="inline"))))
        self.write(
            "reference/formula-language.md",
            "formula_language.md.j2",
            groups=groups,
            operators=OPERATORS,
            missing_values=MISSING_VALUES,
        )
        from ..schema import kpi_schema

        schema = kpi_schema()
        required = set(schema.get("required", []))
        self.write(
            "reference/definition-format.md",
            "definition_format.md.j2",
            properties=[
                (name, _type_of(spec), name in required, spec.get("description", ""))
                for name, spec in schema["properties"].items()
            ],
        )


def _type_of(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "one of: " + ", ".join(str(v) for v in spec["enum"] if v is not None)
    t = spec.get("type", "")
    if isinstance(t, list):
        return " or ".join(t)
    if t == "array":
        item = spec.get("items", {})
        return f"list of {item.get('type', 'mapping') if isinstance(item, dict) else 'values'}"
    if not t and "oneOf" in spec:
        return "one of several forms"
    return t or "mapping"
