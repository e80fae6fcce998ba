"""Serve the docs people read after a run, on 127.0.0.1, working offline.

``python -m dq serve`` starts one small stdlib HTTP server with:

* ``/``            a landing page: links to both sites and the latest run's summary
* ``/dbt/``        dbt docs (``dbt_project/target/``; ``index.html`` fetches
                   ``manifest.json`` and ``catalog.json`` beside it, so it needs HTTP)
* ``/gx/``         GX Data Docs (``gx/uncommitted/data_docs/local_site/``)
* ``/runs/``       run records (``warehouse/runs/*.json``)
* ``/_vendor/``    front-end packages from ``node_modules/`` (``npm ci``)

GX Data Docs pages load jQuery, Bootstrap, bootstrap-table, popper, Font
Awesome and Vega from public CDNs. The server rewrites those URLs, as it sends
each page, to the same files at the same versions installed from the npm
registry (``package.json`` pins them), so the pages look right without a
network and no request leaves the machine. The generated files stay as GX
wrote them.

Port: ``DQ_DOCS_PORT`` (default 8765, away from Airflow's 8080).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dq import config
from dq.config import Settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
HOST = "127.0.0.1"

# fmt: off
#: CDN URL (or URL prefix, ending in "/") -> file under node_modules. The
#: versions are the ones great_expectations/render pins; package.json pins the
#: same, and tests/test_serve.py fails when GX starts referencing a URL that is
#: not covered here.
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

# GX pages also show a logo from S3 (with a tracking query string); the same
# image ships in every Data Docs site under static/images/.
_GX_LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"']*/logo-long\.png[^\"']*")
_QUOTED_URL = re.compile(r"""(["'])(https?://[^"']+)\1""")

# dbt docs load a Snowplow tracker from CloudFront when the manifest says
# usage stats are on (dbt's default). Serving the flag as false keeps the docs
# on this machine whatever the dbt project config says.
_DBT_TRACKING = '"send_anonymous_usage_stats": true'
_DBT_NO_TRACKING = '"send_anonymous_usage_stats": false'
_DBT_MANIFEST_FILES = ("manifest.json", "static_index.html")


def node_modules() -> Path:
    """Where ``npm ci`` put the assets: beside the code, or ``DQ_NODE_MODULES``.

    Not under ``DQ_ROOT``: a temp copy of the project shares the installed assets.
    """
    value = os.environ.get("DQ_NODE_MODULES")
    return Path(value).resolve() if value else config.PROJECT_ROOT / "node_modules"


def missing_assets(modules: Path | None = None) -> list[str]:
    """Mapped asset files (or folders) that are not installed; empty when ``npm ci`` ran."""
    modules = modules or node_modules()
    return sorted({p for p in CDN_ASSETS.values() if not (modules / p).exists()})


def local_url(url: str) -> str | None:
    """The ``/_vendor/...`` (or ``/gx/...``) path that replaces a CDN URL, if any."""
    if url in CDN_ASSETS:
        return "/_vendor/" + CDN_ASSETS[url]
    for prefix, target in CDN_ASSETS.items():
        if prefix.endswith("/") and url.startswith(prefix):
            return "/_vendor/" + target + url[len(prefix) :]
    if _GX_LOGO.fullmatch(url):
        return "/gx/static/images/logo-long.png"
    return None


def rewrite_cdn_urls(page: str) -> str:
    """Replace every quoted CDN URL in a Data Docs page by its local path."""

    def swap(match: re.Match[str]) -> str:
        quote, url = match.groups()
        local = local_url(html.unescape(url))
        return f"{quote}{local}{quote}" if local else match.group(0)

    return _QUOTED_URL.sub(swap, page)


def _latest_run(settings: Settings) -> dict | None:
    path = settings.runs_dir / "latest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def landing_page(settings: Settings) -> str:
    """HTML for ``/``: both sites and the latest run (steps, failed expectations)."""
    run = _latest_run(settings)
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Jaffle Shop data quality</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}td,th{padding:.2rem .8rem;text-align:left}"
        ".failed{color:#b00020;font-weight:600}.ok{color:#1b5e20}</style></head><body>",
        "<h1>Jaffle Shop data quality</h1><ul>",
        "<li><a href='/dbt/index.html'>dbt docs</a> (models, tests, lineage graph)"
        " &middot; <a href='/dbt/static_index.html'>single-file version</a></li>",
        "<li><a href='/gx/index.html'>GX Data Docs</a>"
        " (expectation suites and every validation result)</li>",
        "<li><a href='/runs/latest.json'>latest run record (JSON)</a></li></ul>",
    ]
    if run is None:
        parts.append("<p id='latest-run'>No run yet: <code>python -m dq run</code>.</p>")
    else:
        status = run.get("status", "?")
        css = "ok" if run.get("exit_code") == 0 else "failed"
        parts.append(
            f"<h2>Latest run</h2><p id='latest-run'>Run <code>{e(run.get('run_id', '?'))}</code>"
            f" started {e(run.get('started_at', '?'))}: <span class='{css}'>{e(status)}</span>"
            f" (exit {e(str(run.get('exit_code')))})</p>"
            "<table><tr><th>step</th><th>status</th><th>seconds</th><th>message</th></tr>"
        )
        for step in run.get("steps", []):
            css = "failed" if step["status"] == "failed" else "ok"
            message = e(step.get("message", "")).replace("\n", "<br>")
            parts.append(
                f"<tr><td>{e(step['name'])}</td><td class='{css}'>{e(step['status'])}</td>"
                f"<td>{step.get('seconds', 0):.2f}</td><td>{message}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


class DocsHandler(SimpleHTTPRequestHandler):
    """Static files from a few roots; Data Docs pages get local asset URLs."""

    def __init__(self, *args, settings: Settings, modules: Path, **kwargs) -> None:
        self.settings = settings
        self.roots = {
            "/dbt/": settings.dbt_target_dir,
            "/gx/": settings.data_docs_dir,
            "/runs/": settings.runs_dir,
            "/_vendor/": modules,
        }
        super().__init__(*args, directory=str(settings.root), **kwargs)

    def translate_path(self, path: str) -> str:
        path = unquote(urlsplit(path).path)
        for prefix, root in self.roots.items():
            if path.startswith(prefix):
                target = (root / path[len(prefix) :]).resolve()
                # Never serve anything outside the root, whatever "../" the URL holds.
                if target == root.resolve() or root.resolve() in target.parents:
                    return str(target)
        return str(Path(self.directory) / "__not_served__")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(landing_page(self.settings).encode(), "text/html; charset=utf-8")
        elif path == "/gx" or path == "/dbt":
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", path + "/index.html")
            self.end_headers()
        elif path.startswith("/gx/") and (path.endswith(".html") or path.endswith("/")):
            page_path = path if path.endswith(".html") else path + "index.html"
            file = Path(self.translate_path(page_path))
            if not file.is_file():
                self.send_error(HTTPStatus.NOT_FOUND, "no such Data Docs page (run the pipeline?)")
                return
            page = rewrite_cdn_urls(file.read_text(encoding="utf-8"))
            self._send(page.encode(), "text/html; charset=utf-8")
        elif path.startswith("/dbt/") and path.rsplit("/", 1)[-1] in _DBT_MANIFEST_FILES:
            file = Path(self.translate_path(path))
            if not file.is_file():
                self.send_error(HTTPStatus.NOT_FOUND, "no dbt docs yet (python -m dq docs)")
                return
            body = file.read_text(encoding="utf-8").replace(_DBT_TRACKING, _DBT_NO_TRACKING, 1)
            kind = "application/json" if path.endswith(".json") else "text/html; charset=utf-8"
            self._send(body.encode(), kind)
        else:
            super().do_GET()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature of the base)
        log.debug("%s %s", self.address_string(), format % args)


def make_server(
    settings: Settings | None = None, port: int | None = None, host: str = HOST
) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; port 0 picks a free port."""
    settings = settings or config.load()
    if port is None:
        port = int(os.environ.get("DQ_DOCS_PORT", DEFAULT_PORT))
    handler = partial(DocsHandler, settings=settings, modules=node_modules())
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def start_in_thread(
    settings: Settings | None = None, port: int = 0
) -> tuple[ThreadingHTTPServer, str]:
    """Serve from a daemon thread (tests, notebooks); returns the server and its base URL.

    Stop it with ``server.shutdown(); server.server_close()``.
    """
    server = make_server(settings, port)
    threading.Thread(target=server.serve_forever, name="dq-docs", daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}"


def serve(port: int | None = None) -> int:
    """``python -m dq serve [--port N]``: serve until Ctrl-C."""
    settings = config.load()
    missing = missing_assets()
    if missing:
        print(
            f"warning: {len(missing)} front-end assets missing under {node_modules()} "
            "(run `npm ci`); Data Docs will look unstyled offline."
        )
    server = make_server(settings, port)
    url = f"http://{HOST}:{server.server_address[1]}"
    print(
        f"Serving docs on {url}/  (dbt docs: {url}/dbt/index.html, "
        f"GX Data Docs: {url}/gx/index.html); Ctrl-C to stop.",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
