"""Serve the docs people read after a run, on 127.0.0.1, working offline.

``python -m dq serve`` starts one small stdlib HTTP server with:

* ``/``            a landing page: links to both sites and the latest run's summary
* ``/dbt/``        dbt docs: only ``index.html`` (it fetches ``manifest.json`` and
                   ``catalog.json`` beside it, so it needs HTTP) and ``static_index.html``
* ``/gx/``         GX Data Docs (``gx/uncommitted/data_docs/local_site/``)
* ``/runs/``       run records (``warehouse/runs/*.json``)
* ``/trends/``     the Quality trends page (:mod:`dq.trends`): its ``index.html``,
                   ``trends.js`` and the three Vega files it loads from ``vendor/``
* ``/_vendor/``    the front-end files :data:`dq.datadocs.CDN_ASSETS` maps, from
                   ``node_modules/`` (``npm ci``), and nothing else from there

The pipeline makes the Data Docs site offline itself
(:func:`dq.datadocs.finalize_site`); a page that still loads from a CDN (a site
built before, or while ``node_modules`` was missing) has those URLs rewritten
to ``/_vendor/`` as it is sent.

What the server guarantees, whatever the files hold:

* it binds to 127.0.0.1 and answers only requests whose ``Host`` is a loopback
  name (``127.0.0.1``, ``localhost``, ``[::1]``, any port): a web page whose
  DNS name is rebound to 127.0.0.1 gets 421, not the docs;
* every response carries ``X-Content-Type-Options: nosniff`` and a
  Content-Security-Policy: nothing loads from another origin, the landing page
  and error pages run no script, GX pages may fetch nothing (so a script that
  slipped into a page could not read ``/runs/``), the trends page runs only
  its own script files (no inline script, no ``eval``);
* it lists no folder and serves no file outside the ones named above;
* ``HEAD`` gets the headers of ``GET``; a bad path (``..``, ``%00``) gets 404
  or 400; an idle or slow connection is closed after :data:`TIMEOUT` seconds,
  and only holds its own thread.

Why the stdlib and not a server library: the whole job is a route table, a
path check and a few headers; ``http.server`` does it in one readable file
with no new dependency, and it never leaves 127.0.0.1.

Port: ``DQ_DOCS_PORT`` (default 8765, away from Airflow's 8080).
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import os
import re
import shutil
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dq import config, datadocs, trends
from dq.config import Settings
from dq.datadocs import CDN_ASSETS, missing_assets, node_modules

__all__ = [
    "CDN_ASSETS",
    "landing_page",
    "local_url",
    "make_server",
    "missing_assets",
    "node_modules",
    "rewrite_cdn_urls",
    "serve",
    "start_in_thread",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
HOST = "127.0.0.1"
#: Seconds a connection may stay idle (or trickle) before the server closes it.
TIMEOUT = 30.0

# dbt docs load a Snowplow tracker from CloudFront when the manifest says
# usage stats are on (dbt's default). Serving the flag as false keeps the docs
# on this machine whatever the dbt project config says.
_DBT_TRACKING = '"send_anonymous_usage_stats": true'
_DBT_NO_TRACKING = '"send_anonymous_usage_stats": false'
_DBT_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")
_DBT_REWRITTEN = ("manifest.json", "static_index.html")

_TRENDS_VENDOR = "/trends/vendor/"  # + a name of dq.trends.VENDOR_FILES, from node_modules

_LOOPBACK_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)

# Content-Security-Policy per kind of page, as strict as the page allows.
# GX and dbt pages need inline scripts and styles (GX writes every table's
# setup as an inline <script>, dbt docs are one HTML file), so escaping the
# values (dq.datadocs) is the defence; the policy keeps anything from loading
# from elsewhere and, on GX pages, from fetching anything at all.
_COMMON = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
CSP = {
    # No script at all: the landing page, error pages, JSON, assets.
    "none": f"default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; {_COMMON}",
    "gx": (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
        f"connect-src 'none'; {_COMMON}"
    ),
    # The trends page: only script files from here (its specs are JSON data
    # blocks; vega-embed runs Vega's expression interpreter, no eval); vega-embed
    # injects its tooltip and menu styles, and exports a chart as a data: URL.
    "trends": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src 'none'; {_COMMON}"
    ),
    # dbt docs are AngularJS (expressions compiled with Function: 'unsafe-eval')
    # and fetch manifest.json and catalog.json.
    "dbt": (
        "default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
        f"connect-src 'self'; {_COMMON}"
    ),
}

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
}


class BadRequest(Exception):
    """A request path the server refuses to look at (answered 400)."""


def local_url(url: str) -> str | None:
    """The ``/_vendor/...`` (or ``/gx/...``) path that replaces a CDN URL, if any."""
    path = datadocs.asset_path(url)
    if path is not None:
        return "/_vendor/" + path
    return "/gx/" + datadocs.LOGO if datadocs.is_logo(url) else None


def rewrite_cdn_urls(page: str) -> str:
    """Replace every quoted CDN URL in a Data Docs page by its local path."""
    return datadocs.rewrite_urls(page, "/_vendor/", "/gx/")


def _latest_run(settings: Settings) -> dict | None:
    path = settings.runs_dir / "latest.json"
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def _seconds(value) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "?"


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
        "<li><a href='/trends/'>Quality trends</a> (volume per day with the expected band,"
        " metrics over runs, rejected share, anomalies)</li>",
        "<li><a href='/runs/latest.json'>latest run record (JSON)</a></li></ul>",
    ]
    if run is None:
        parts.append("<p id='latest-run'>No run yet: <code>python -m dq run</code>.</p>")
    else:
        status = str(run.get("status", "?"))
        css = "ok" if run.get("exit_code") == 0 else "failed"
        parts.append(
            f"<h2>Latest run</h2><p id='latest-run'>Run <code>{e(str(run.get('run_id', '?')))}"
            f"</code> started {e(str(run.get('started_at', '?')))}:"
            f" <span class='{css}'>{e(status)}</span>"
            f" (exit {e(str(run.get('exit_code')))})</p>"
            "<table><tr><th>step</th><th>status</th><th>seconds</th><th>message</th></tr>"
        )
        for step in run.get("steps") or []:
            if not isinstance(step, dict):
                continue
            css = "failed" if step.get("status") == "failed" else "ok"
            message = e(str(step.get("message", ""))).replace("\n", "<br>")
            parts.append(
                f"<tr><td>{e(str(step.get('name', '?')))}</td>"
                f"<td class='{css}'>{e(str(step.get('status', '?')))}</td>"
                f"<td>{_seconds(step.get('seconds', 0))}</td><td>{message}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _vendor_allowed(path: str) -> bool:
    """Whether ``path`` (under node_modules) is a mapped asset, in a mapped
    folder, or in a folder a mapped stylesheet loads from."""
    for target in (*CDN_ASSETS.values(), *datadocs.ASSET_DEPENDENCIES):
        if path == target or (target.endswith("/") and path.startswith(target)):
            return True
    return False


def _inside(root: Path, relative: str) -> Path | None:
    """The regular file ``root/relative``, if it exists and stays inside ``root``."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
        return None
    root = root.resolve()
    target = root.joinpath(*parts).resolve()
    if root not in target.parents or not target.is_file():
        return None
    return target


class DocsHandler(BaseHTTPRequestHandler):
    """GET and HEAD on a fixed route table; every other method gets 501."""

    server_version = "dq-docs"
    sys_version = ""
    timeout = TIMEOUT  # StreamRequestHandler sets it on the socket: idle clients are cut off

    def __init__(
        self, *args, settings: Settings, modules: Path, timeout: float = TIMEOUT, **kwargs
    ) -> None:
        self.settings = settings
        self.modules = modules
        self.timeout = timeout
        self.csp = CSP["none"]
        super().__init__(*args, **kwargs)

    # -- request entry points

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(body=False)

    def _respond(self, body: bool) -> None:
        self.csp = CSP["none"]
        host = self.headers.get("Host", "")
        if not _LOOPBACK_HOST.fullmatch(host.strip()):
            self.send_error(HTTPStatus.MISDIRECTED_REQUEST, "this server answers only 127.0.0.1")
            return
        try:
            path = unquote(urlsplit(self.path).path, errors="strict")
            if "\x00" in path or not path.startswith("/"):
                raise BadRequest(path)
            self._route(path, body)
        except (BadRequest, UnicodeDecodeError):
            self.send_error(HTTPStatus.BAD_REQUEST, "bad path")
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # never a traceback to the client or a dead thread
            log.exception("docs server failed on %s", self.path)
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)

    def _route(self, path: str, body: bool) -> None:
        s = self.settings
        if path in ("/", "/index.html"):
            self._send(landing_page(s).encode(), _TYPES[".html"], body)
        elif path in ("/gx", "/dbt", "/trends"):
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", path + ("/" if path == "/trends" else "/index.html"))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path.startswith("/gx/"):
            self._gx(path[len("/gx/") :] or "index.html", body)
        elif path.startswith("/dbt/") and path[len("/dbt/") :] in _DBT_FILES:
            self._dbt(path[len("/dbt/") :], body)
        elif path in ("/trends/", "/trends/index.html", "/trends/trends.js"):
            self._trends(path[len("/trends/") :] or "index.html", body)
        elif path.startswith(_TRENDS_VENDOR) and path[len(_TRENDS_VENDOR) :] in trends.VENDOR_FILES:
            self._file(
                _inside(self.modules, trends.VENDOR_FILES[path[len(_TRENDS_VENDOR) :]]), body
            )
        elif path.startswith("/runs/") and path.endswith(".json"):
            self._file(_inside(s.runs_dir, path[len("/runs/") :]), body)
        elif path.startswith("/_vendor/") and _vendor_allowed(path[len("/_vendor/") :]):
            self._file(_inside(self.modules, path[len("/_vendor/") :]), body)
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    # -- the sites

    def _gx(self, relative: str, body: bool) -> None:
        if relative.endswith("/"):
            relative += "index.html"  # a folder's own page, never a listing
        file = _inside(self.settings.data_docs_dir, relative)
        if file is None or file.suffix != ".html":
            self._file(file, body)
            return
        page = rewrite_cdn_urls(file.read_text(encoding="utf-8"))
        self.csp = CSP["gx"]
        self._send(page.encode(), _TYPES[".html"], body)

    def _trends(self, name: str, body: bool) -> None:
        file = _inside(self.settings.trends_dir, name)
        if file is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no trends page yet (python -m dq docs)")
            return
        if name == "index.html":
            self.csp = CSP["trends"]
        self._file(file, body)

    def _dbt(self, name: str, body: bool) -> None:
        file = _inside(self.settings.dbt_docs_dir, name)
        if file is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no dbt docs yet (python -m dq docs)")
            return
        if name.endswith(".html"):
            self.csp = CSP["dbt"]
        if name not in _DBT_REWRITTEN:
            self._file(file, body)
            return
        text = file.read_text(encoding="utf-8").replace(_DBT_TRACKING, _DBT_NO_TRACKING, 1)
        self._send(text.encode(), _TYPES[file.suffix], body)

    # -- sending

    def _file(self, file: Path | None, body: bool) -> None:
        if file is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        kind = _TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0]
        with file.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self._headers(kind or "application/octet-stream", size)
            if body:
                shutil.copyfileobj(handle, self.wfile)

    def _send(self, data: bytes, content_type: str, body: bool) -> None:
        self._headers(content_type, len(data))
        if body:
            self.wfile.write(data)

    def _headers(self, content_type: str, length: int) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def end_headers(self) -> None:
        # Every response, errors and redirects included.
        self.send_header("Content-Security-Policy", self.csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.csp = CSP["none"]
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (signature of the base)
        log.debug("%s %s", self.address_string(), format % args)


def make_server(
    settings: Settings | None = None,
    port: int | None = None,
    host: str = HOST,
    timeout: float = TIMEOUT,
) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; port 0 picks a free port.

    ``timeout``: seconds an idle or slow connection is kept open.
    """
    settings = settings or config.load()
    if port is None:
        port = int(os.environ.get("DQ_DOCS_PORT", DEFAULT_PORT))
    handler = partial(DocsHandler, settings=settings, modules=node_modules(), timeout=timeout)
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a stuck client never blocks shutdown
    return server


def start_in_thread(
    settings: Settings | None = None, port: int = 0, timeout: float = TIMEOUT
) -> tuple[ThreadingHTTPServer, str]:
    """Serve from a daemon thread (tests, notebooks); returns the server and its base URL.

    Stop it with ``server.shutdown(); server.server_close()``.
    """
    server = make_server(settings, port, timeout=timeout)
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
        f"GX Data Docs: {url}/gx/index.html, Quality trends: {url}/trends/); Ctrl-C to stop.",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
