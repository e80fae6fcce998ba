"""GX Data Docs that are safe to open and work offline.

Two jobs, both about the site GX writes to ``gx/uncommitted/data_docs/local_site/``:

* **Every value is text.** Unexpected values, observed values and other
  results come from the CSVs, and every CSV value is untrusted. GX's Jinja view
  treats a bare string in a content block (a table cell such as an unexpected
  value, a list item) as HTML, so ``<script>`` in a raw file would run in the
  Data Docs page. :func:`use_escaping_views` points the site at the views below
  (the ``view`` setting GX reads for each site section and the index), which
  escape those leaves as they are rendered: the stored validation results keep
  the values exactly as received, and GX's own markup (icons, styling, links)
  is untouched because GX never passes markup as a bare string.
* **Offline from file://.** GX pages load jQuery, Bootstrap, bootstrap-table,
  popper, Font Awesome and Vega from public CDNs. :func:`finalize_site` copies
  the files the pages use from ``node_modules/`` (``npm ci``; ``package.json``
  pins the versions GX references) into ``local_site/static/vendor/`` and
  points the pages at them with relative URLs, so ``index.html`` renders when
  opened as a file without a network, and ``python -m dq serve`` serves the
  site as it is.

The pipeline calls :func:`use_escaping_views` on the GX context before each
checkpoint runs and :func:`finalize_site` after it.

This module imports GX only when a view class is first asked for (see
``__getattr__`` below): :mod:`dq.serve` reads the asset map from here and
should start without loading GX.
"""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from dq import config

log = logging.getLogger(__name__)

# fmt: off
#: CDN URL (or URL prefix, ending in "/") -> file (or folder) under node_modules.
#: The versions are the ones great_expectations/render pins; package.json pins
#: the same, and tests/test_serve.py fails when GX starts referencing a URL
#: that is not covered here.
CDN_ASSETS: dict[str, str] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap/dist/js/bootstrap.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js-1.12.9/dist/umd/popper.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/":
        "@forevolve/bootstrap-dark/dist/",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/": "bootstrap-table/dist/",
    # GX links one filter-control stylesheet from 1.19.0; package.json installs
    # that version under an alias rather than silently serving 1.19.1.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/": "bootstrap-table-1.19.0/dist/",
    # jsDelivr resolves a bare "pkg@major" to the package's "jsdelivr" entry.
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
}
# fmt: on

#: Folders a mapped stylesheet loads from by relative ``url(...)``: Font
#: Awesome's CSS reads its webfonts from ``../webfonts/``.
ASSET_DEPENDENCIES: tuple[str, ...] = ("@fortawesome/fontawesome-free/webfonts/",)

#: Where :func:`finalize_site` puts the assets, relative to the site folder.
VENDOR_DIR = "static/vendor"
#: The logo GX pages load from S3 (with a tracking query string) ships in
#: every site under this path.
LOGO = "static/images/logo-long.png"

_GX_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"']*/logo-long\.png[^\"']*")
_QUOTED_URL = re.compile(r"""(["'])(https?://[^"']+)\1""")
_ASSET_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_CDN_ONLY_ATTRIBUTE = re.compile(r"""\s(?:integrity|crossorigin)=(["'])[^"']*\1""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*["']?(?!data:|https?:|/)([^"')?#]+)""")


def node_modules() -> Path:
    """Where ``npm ci`` put the assets: beside the code, or ``DQ_NODE_MODULES``.

    Not under ``DQ_ROOT``: a temp copy of the project shares the installed assets.
    """
    value = os.environ.get("DQ_NODE_MODULES")
    return Path(value).resolve() if value else config.PROJECT_ROOT / "node_modules"


def missing_assets(modules: Path | None = None) -> list[str]:
    """Mapped asset files (or folders) that are not installed; empty when ``npm ci`` ran."""
    modules = modules or node_modules()
    wanted = {*CDN_ASSETS.values(), *ASSET_DEPENDENCIES}
    return sorted(p for p in wanted if not (modules / p).exists())


def asset_path(url: str) -> str | None:
    """The file under node_modules that replaces a CDN URL, if the URL is mapped."""
    if url in CDN_ASSETS:
        return CDN_ASSETS[url]
    for prefix, target in CDN_ASSETS.items():
        if prefix.endswith("/") and url.startswith(prefix):
            rest = url[len(prefix) :].split("?", 1)[0].split("#", 1)[0]
            if rest and ".." not in rest.split("/"):
                return target + rest
    return None


def is_logo(url: str) -> bool:
    """Whether ``url`` is the GX logo on S3 (the site has its own copy at :data:`LOGO`)."""
    return _GX_LOGO.fullmatch(url) is not None


def rewrite_urls(page: str, vendor: str, site: str, available=lambda path: True) -> str:
    """Replace quoted CDN URLs in a Data Docs page: a mapped asset by ``vendor`` +
    its node_modules path (when ``available(path)``), the GX logo by ``site`` + :data:`LOGO`.

    Links people click (``https://greatexpectations.io``) stay as they are. A
    rewritten ``<script>``/``<link>`` loses ``crossorigin`` and ``integrity``:
    a page opened from ``file://`` has no origin, and Chromium refuses a CORS
    load there (the copies are the same pinned versions, installed by ``npm ci``
    from the lock file with its own checksums).
    """

    def swap(match: re.Match[str]) -> str:
        quote, url = match.groups()
        url = html.unescape(url)
        path = asset_path(url)
        if path is not None and available(path):
            return f"{quote}{vendor}{path}{quote}"
        if is_logo(url):
            return f"{quote}{site}{LOGO}{quote}"
        return match.group(0)

    def tag(match: re.Match[str]) -> str:
        new = _QUOTED_URL.sub(swap, match.group(0))
        return _CDN_ONLY_ATTRIBUTE.sub("", new) if new != match.group(0) else new

    return _QUOTED_URL.sub(swap, _ASSET_TAG.sub(tag, page))


def finalize_site(site_dir: Path, modules: Path | None = None) -> list[str]:
    """Make the Data Docs site at ``site_dir`` work offline, also from ``file://``.

    Copies each asset the pages load from a CDN out of ``node_modules`` into
    ``site_dir/static/vendor/`` and rewrites the pages to load it by a relative
    URL. Idempotent and cheap to repeat (GX rewrites only the pages of the new
    results; finished pages have nothing left to replace). Assets that are not
    installed keep their CDN URL and are returned (a warning is logged): the
    site then needs a network to look right, and nothing else changes.
    """
    site_dir = Path(site_dir)
    modules = modules or node_modules()
    if not site_dir.is_dir():
        return []
    vendor_dir = site_dir / VENDOR_DIR
    needed: set[str] = set()
    missing: set[str] = set()

    def available(path: str) -> bool:
        if (modules / path).is_file():
            needed.add(path)
            return True
        missing.add(path)
        return False

    for page in site_dir.rglob("*.html"):
        if vendor_dir in page.parents:
            continue
        text = page.read_text(encoding="utf-8")
        if "https://" not in text:
            continue
        up = os.path.relpath(site_dir, page.parent).replace(os.sep, "/") + "/"
        up = "" if up == "./" else up
        new = rewrite_urls(text, f"{up}{VENDOR_DIR}/", up, available)
        if new != text:
            _write_atomically(page, new)
    for path in sorted(needed):
        _copy_asset(modules, path, vendor_dir)
    if missing:
        log.warning(
            "Data Docs need a network for %d front-end assets missing under %s (run `npm ci`): %s",
            len(missing),
            modules,
            ", ".join(sorted(missing)),
        )
    return sorted(missing)


def _copy_asset(modules: Path, path: str, vendor_dir: Path) -> None:
    """Copy one asset, and the files a stylesheet loads by relative url(), if changed."""
    source, target = modules / path, vendor_dir / path
    _copy_if_changed(source, target)
    if source.suffix == ".css":
        for ref in set(_CSS_URL.findall(source.read_text(encoding="utf-8", errors="replace"))):
            dependency = (source.parent / ref).resolve()
            if dependency.is_file() and modules.resolve() in dependency.parents:
                relative = dependency.relative_to(modules.resolve())
                _copy_if_changed(dependency, vendor_dir / relative)


def _copy_if_changed(source: Path, target: Path) -> None:
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _write_atomically(path: Path, text: str) -> None:
    # A reader (the docs server, a browser) sees the old page or the new one.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- escaping views

#: Where GX finds the views :func:`use_escaping_views` configures.
PAGE_VIEW = {"module_name": __name__, "class_name": "EscapingPageView"}
INDEX_VIEW = {"module_name": __name__, "class_name": "EscapingIndexPageView"}
_SECTIONS = ("expectations", "validations", "profiling")


def use_escaping_views(context) -> None:
    """Render this context's Data Docs sites with the escaping views below.

    Changes the context in memory only (GX builds the sites from
    ``context.variables``): the committed ``gx/great_expectations.yml`` stays
    as it is, so call this after anything that saves the context's config
    (adding a data source or an asset) and before ``checkpoint.run()``.
    """
    sites = context.variables.data_docs_sites or {}
    for site in sites.values():
        sections = site.setdefault("site_section_builders", {})
        for name in _SECTIONS:
            section = sections.get(name)
            if section is None:
                sections[name] = {"view": dict(PAGE_VIEW)}
            elif isinstance(section, dict):  # "None"/False turn a section off: leave it off
                section["view"] = dict(PAGE_VIEW)
        site.setdefault("site_index_builder", {"class_name": "DefaultSiteIndexBuilder"})
        site["site_index_builder"]["view"] = dict(INDEX_VIEW)
    context.variables.data_docs_sites = sites


def escape_leaf(value: Any) -> Any:
    """A bare value in a rendered content block, as HTML text.

    Numbers and booleans are returned as they are (their text holds no markup);
    anything else becomes its escaped ``str``.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return html.escape(str(value), quote=True)


def _as_block(value: Any) -> Any:
    # GX passes most blocks as JSON dicts, some still as RenderedContent objects.
    return value.to_json_dict() if hasattr(value, "to_json_dict") else value


def _is_block(value: Any) -> bool:
    return isinstance(value, dict) and "content_block_type" in value


@cache
def _views() -> dict[str, type]:
    from great_expectations.render.view.view import (
        DefaultJinjaIndexPageView,
        DefaultJinjaPageView,
        contextfilter,
    )

    class EscapingMixin:
        """Escape what GX's view would otherwise insert as raw HTML.

        * a bare value as a content block (a table cell: unexpected values,
          their counts and indexes, an observed value such as a column list);
        * a bare value in a list of blocks (GX wraps it in ``<span>`` as is);
        * a dict that is not a content block (GX prints its ``repr``);
        * a string template without parameters shown as ``<code>`` (exception
          tracebacks, unexpected-row queries): literal text by nature.

        String template *parameters* GX escapes itself; templates with markup
        are renderer text, not data, and stay as they are.
        """

        @contextfilter
        def render_content_block(
            self,
            jinja_context,
            content_block,
            index=None,
            content_block_id=None,
            render_to_markdown=False,
        ):
            content_block = _as_block(content_block)
            if isinstance(content_block, list):
                content_block = [_as_block(b) for b in content_block]
                content_block = [b if _is_block(b) else escape_leaf(b) for b in content_block]
            elif not _is_block(content_block):
                return "" if content_block is None else escape_leaf(content_block)
            return super().render_content_block(
                jinja_context, content_block, index, content_block_id, render_to_markdown
            )

        def render_string_template(self, template):
            if (
                isinstance(template, dict)
                and not template.get("params")
                and template.get("tag") == "code"
            ):
                template = {**template, "template": html.escape(template.get("template", ""))}
            return super().render_string_template(template)

    class EscapingPageView(EscapingMixin, DefaultJinjaPageView):
        """GX's page view (suites, validation results) with every value escaped."""

    class EscapingIndexPageView(EscapingMixin, DefaultJinjaIndexPageView):
        """GX's index page view with every value escaped."""

    return {"EscapingPageView": EscapingPageView, "EscapingIndexPageView": EscapingIndexPageView}


def __getattr__(name: str) -> type:
    # GX instantiates views by module and class name; build the classes (and
    # import GX) only then, not when dq.serve imports the asset map.
    views = _views()
    if name in views:
        return views[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
