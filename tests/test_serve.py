"""``dq.serve`` without a browser: routes, CDN rewriting, pinned assets, no path
escapes, the security headers and refusals, and the offline site ``dq.datadocs`` makes."""

from __future__ import annotations

import http.client
import importlib.util
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dq import config, datadocs, serve, trends

# Located, not imported: importing GX takes seconds.
GX_RENDER = Path(importlib.util.find_spec("great_expectations").origin).parent / "render"
# Assets a page loads (stylesheets, scripts): links people click on are not requests.
#: The server's idle timeout in these tests (seconds); the default is 30.
IDLE_TIMEOUT = 1.0
_GX_ASSET = re.compile(r"""(?:src|href)=["'](https://[^"'{}]+)["']""")


def _gx_asset_urls() -> set[str]:
    urls = set()
    for template in GX_RENDER.rglob("*.j2"):
        for url in _GX_ASSET.findall(template.read_text(encoding="utf-8")):
            if url.endswith((".js", ".css")) or "cdn.jsdelivr.net/npm/" in url:
                urls.add(url)
    return urls


def test_every_cdn_asset_gx_references_is_mapped_and_installed():
    urls = _gx_asset_urls()
    assert len(urls) >= 10, urls  # found the templates at all
    unmapped = sorted(u for u in urls if serve.local_url(u) is None)
    assert not unmapped, f"GX references CDN assets dq.serve does not map: {unmapped}"
    missing = serve.missing_assets()
    assert not missing, f"run `npm ci`: missing under node_modules: {missing}"


def test_package_json_pins_the_versions_gx_references():
    pins = json.loads((config.PROJECT_ROOT / "package.json").read_text())["dependencies"]
    lock = json.loads((config.PROJECT_ROOT / "package-lock.json").read_text())["packages"]
    for url in _gx_asset_urls():
        match = re.search(r"(?:/|@)(\d+\.\d+\.\d+)/", url)
        if not match:
            continue  # "vega@5"-style ranges: any 5.x, pinned exactly in package.json
        package = serve.local_url(url).split("/")[2]
        if package.startswith("@"):
            package = "/".join(serve.local_url(url).split("/")[2:4])
        version = lock[f"node_modules/{package}"]["version"]
        assert version == match.group(1), (url, package, version)
        assert pins[package].endswith(version)


def test_rewrite_keeps_links_and_replaces_assets():
    page = (
        '<link href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css">'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/'
        'logo-long.png?d=1&amp;dataContextId=x">'
        '<a href="https://greatexpectations.io">GX</a>'
    )
    out = serve.rewrite_cdn_urls(page)
    assert '"/_vendor/bootstrap/dist/css/bootstrap.min.css"' in out
    assert '"/_vendor/vega/build/vega.min.js"' in out
    assert '"/gx/static/images/logo-long.png"' in out
    assert '"https://greatexpectations.io"' in out


@pytest.fixture
def site(tmp_path, monkeypatch) -> Iterator[str]:
    root = tmp_path / "project"
    docs = root / "gx" / "uncommitted" / "data_docs" / "local_site"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text(
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
    )
    (docs / "validations" / "raw_orders").mkdir(parents=True)
    (docs / "validations" / "raw_orders" / "run.html").write_text("<p>result</p>")
    target = root / "warehouse" / "docs" / "dbt"
    (target / "compiled").mkdir(parents=True)
    (target / "index.html").write_text("<html>dbt</html>")
    (target / "static_index.html").write_text("<html>dbt, one file</html>")
    (target / "manifest.json").write_text('{"metadata": {"send_anonymous_usage_stats": true}}')
    (target / "catalog.json").write_text("{}")
    for private in ("run_results.json", "graph.gpickle", "compiled/model.sql"):
        (target / private).write_text("not for the web")
    runs = root / "warehouse" / "runs"
    runs.mkdir(parents=True)
    (runs / "latest.json").write_text(
        json.dumps(
            {
                "run_id": "r1",
                "started_at": "now",
                "status": "gate failed",
                "exit_code": 1,
                "steps": [
                    {
                        "name": "validate_raw",
                        "status": "failed",
                        "seconds": 1.5,
                        "message": "raw_orders: <bad>",
                    }
                ],
            }
        )
    )
    trends = root / "warehouse" / "docs" / "trends"
    (trends / "vendor").mkdir(parents=True)
    (trends / "index.html").write_text("<html>trends</html>")
    (trends / "trends.js").write_text("// draws the charts")
    (trends / "vendor" / "vega.min.js").write_text(
        "// a stale copy: the server sends node_modules'"
    )
    (trends / "notes.txt").write_text("not for the web")
    (root / "secret.txt").write_text("not for the web")
    monkeypatch.setenv("DQ_ROOT", str(root))
    server, url = serve.start_in_thread(config.load(), timeout=IDLE_TIMEOUT)
    yield url
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_routes(site):
    status, landing = _get(site + "/")
    assert status == 200
    assert "/dbt/index.html" in landing and "/gx/index.html" in landing
    assert "gate failed" in landing and "raw_orders: &lt;bad&gt;" in landing  # escaped

    status, page = _get(site + "/gx/index.html")
    assert status == 200 and "/_vendor/jquery/dist/jquery.min.js" in page and "https://" not in page
    assert _get(site + "/gx/")[0] == 200
    assert _get(site + "/dbt/index.html") == (200, "<html>dbt</html>")
    status, manifest = _get(site + "/dbt/manifest.json")
    assert json.loads(manifest)["metadata"]["send_anonymous_usage_stats"] is False
    assert json.loads(_get(site + "/runs/latest.json")[1])["run_id"] == "r1"
    assert _get(site + "/_vendor/jquery/dist/jquery.min.js")[0] == 200
    assert "<a href='/trends/'>Quality trends</a>" in landing


def test_trends_routes(site, tmp_path):
    """The Quality trends page, its script and the three Vega files, nothing else."""
    for path in ("/trends/", "/trends/index.html"):
        assert _get(site + path) == (200, "<html>trends</html>"), path
    assert _get(site + "/trends/trends.js") == (200, "// draws the charts")
    status, headers, _ = _request(site, "/trends")
    assert status == 301 and headers["Location"] == "/trends/"
    modules = serve.node_modules()
    for name, path in trends.VENDOR_FILES.items():
        status, headers, body = _request(site, "/trends/vendor/" + name)
        assert status == 200 and body == (modules / path).read_bytes(), name
        assert headers["Content-Type"].startswith("text/javascript")
    for path in (
        "/trends/notes.txt",
        "/trends/vendor/",
        "/trends/vendor/vega.js",
        "/trends/vendor/../index.html",
        "/trends/vendor/%2e%2e/trends.js",
        "/trends/../secret.txt",
        "/trends/vendor/vega.min.js/",
    ):
        assert _request(site, path)[0] == 404, path
    (tmp_path / "project" / "warehouse" / "docs" / "trends" / "index.html").unlink()
    status, _, body = _request(site, "/trends/")
    assert status == 404 and b"no trends page yet" in body


@pytest.mark.parametrize(
    "path",
    [
        "/secret.txt",
        "/gx/../../../../secret.txt",
        "/dbt/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/_vendor/../package.json",
    ],
)
def test_nothing_outside_the_served_folders(site, path):
    assert _get(site + path)[0] == 404


def test_binds_to_loopback_only(monkeypatch, tmp_path):
    monkeypatch.setenv("DQ_ROOT", str(tmp_path))
    server = serve.make_server(port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def _request(url: str, path: str, method: str = "GET", host: str | None = None):
    """One raw request (any Host header, any path bytes); returns status, headers, body."""
    port = int(url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/gx/index.html",
        "/dbt/index.html",
        "/runs/latest.json",
        "/nothing",
        "/gx",
        "/trends/",
        "/trends/vendor/vega.min.js",
    ],
)
def test_every_response_has_csp_and_nosniff(site, path):
    status, headers, _ = _request(site, path)
    assert status in (200, 301, 404)
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "http:" not in csp and "https:" not in csp and "*" not in csp


def test_csp_per_page_kind(site):
    landing = _request(site, "/")[1]["Content-Security-Policy"]
    assert "script-src" not in landing  # default-src 'none': no script runs
    gx = _request(site, "/gx/index.html")[1]["Content-Security-Policy"]
    assert "connect-src 'none'" in gx  # a GX page cannot fetch /runs/ or anything else
    dbt = _request(site, "/dbt/index.html")[1]["Content-Security-Policy"]
    assert "connect-src 'self'" in dbt  # dbt docs fetch manifest.json and catalog.json
    page = _request(site, "/trends/")[1]["Content-Security-Policy"]
    # Only the page's own script files: its specs are JSON data, Vega interprets expressions.
    assert "script-src 'self';" in page and "unsafe" not in page.split("style-src")[0]
    assert "connect-src 'none'" in page


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:8765", "LOCALHOST", "[::1]:80"])
def test_loopback_hosts_are_served(site, host):
    assert _request(site, "/", host=host)[0] == 200


@pytest.mark.parametrize(
    "host",
    ["", "evil.example", "evil.example:8765", "127.0.0.1.evil.example", "127.0.0.2", "x@127.0.0.1"],
)
def test_other_hosts_are_refused(site, host):
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own name."""
    status, headers, body = _request(site, "/runs/latest.json", host=host)
    assert status == 421
    assert b"r1" not in body
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/gx/validations/",
        "/gx/validations",
        "/gx/static/",
        "/_vendor/",
        "/_vendor/jquery/",
        "/runs/",
        "/dbt/",
        "/trends/vendor/",
    ],
)
def test_no_directory_listing(site, path):
    status, _, body = _request(site, path)
    assert status == 404 and b"raw_orders" not in body and b"Directory listing" not in body


def test_dbt_serves_only_its_four_files(site):
    for name in ("index.html", "static_index.html", "manifest.json", "catalog.json"):
        assert _request(site, f"/dbt/{name}")[0] == 200, name
    for name in ("run_results.json", "graph.gpickle", "compiled/model.sql", "compiled/"):
        assert _request(site, f"/dbt/{name}")[0] == 404, name


def test_vendor_serves_only_mapped_assets(site):
    modules = serve.node_modules()
    mapped_file = "jquery/dist/jquery.min.js"
    in_mapped_folder = "bootstrap-table/dist/bootstrap-table.min.js"
    font = "@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2"
    for path in (mapped_file, in_mapped_folder, font):
        status, headers, body = _request(site, "/_vendor/" + path)
        assert status == 200 and body == (modules / path).read_bytes(), path
    assert headers["Content-Type"] == "font/woff2"
    unmapped = ["jquery/package.json", "jquery/dist/jquery.js", "bootstrap/package.json"]
    assert all((modules / p).is_file() for p in unmapped)  # they exist, and stay private
    for path in unmapped + [".package-lock.json", "jquery/dist/../package.json"]:
        assert _request(site, "/_vendor/" + path)[0] == 404, path


@pytest.mark.parametrize(
    "path", ["/gx/index.html%00", "/gx/%00/index.html", "/runs/latest%00.json", "/%00"]
)
def test_nul_in_path_is_a_clean_refusal(site, path, caplog):
    status, headers, body = _request(site, path)
    assert status in (400, 404)
    assert b"Traceback" not in body and headers["X-Content-Type-Options"] == "nosniff"
    assert not [r for r in caplog.records if r.exc_info]


def test_head_sends_the_headers_of_get_and_no_body(site):
    for path in ("/", "/gx/index.html", "/_vendor/jquery/dist/jquery.min.js", "/missing"):
        get_status, get_headers, get_body = _request(site, path)
        status, headers, body = _request(site, path, method="HEAD")
        assert (status, body) == (get_status, b""), path
        assert headers["Content-Type"] == get_headers["Content-Type"]
        if status == 200:
            assert int(headers["Content-Length"]) == len(get_body), path


def test_other_methods_are_refused(site):
    status, headers, _ = _request(site, "/", method="POST")
    assert status == 501 and headers["X-Content-Type-Options"] == "nosniff"


def test_idle_connection_is_closed_after_the_timeout(site):
    """Connect, send nothing: the server hangs up by itself (the socket read
    returns end-of-stream) soon after its timeout, and still serves others."""
    port = int(site.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as idle:
        idle.settimeout(IDLE_TIMEOUT + 10)  # only a guard: the server must close first
        started = time.monotonic()
        assert idle.recv(1) == b""
        waited = time.monotonic() - started
    assert IDLE_TIMEOUT * 0.8 <= waited < IDLE_TIMEOUT + 5
    assert _request(site, "/")[0] == 200


def test_a_slow_client_does_not_block_others(site):
    port = int(site.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHo")  # and then nothing, for now
        assert _request(site, "/gx/index.html")[0] == 200


# ------------------------------------------------ the site files dq.datadocs makes


def test_finalize_site_makes_pages_load_local_copies(tmp_path):
    site = tmp_path / "local_site"
    deep = site / "validations" / "raw_orders" / "run"
    deep.mkdir(parents=True)
    page = (
        '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" '
        'integrity="sha384-x" crossorigin="anonymous"></script>'
        '<link href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css">'
        '<a href="https://greatexpectations.io">GX</a>'
    )
    (site / "index.html").write_text(page)
    (deep / "page.html").write_text(page)
    assert datadocs.finalize_site(site) == []
    index, nested = (site / "index.html").read_text(), (deep / "page.html").read_text()
    assert '<script src="static/vendor/bootstrap/dist/js/bootstrap.min.js"></script>' in index
    assert '"../../../static/vendor/@fortawesome/fontawesome-free/css/all.min.css"' in nested
    assert '"https://greatexpectations.io"' in nested  # a link, not an asset
    vendor = site / "static" / "vendor"
    assert (vendor / "bootstrap/dist/js/bootstrap.min.js").is_file()
    # The stylesheet's fonts came along (url(../webfonts/...)).
    assert (vendor / "@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2").is_file()
    assert datadocs.finalize_site(site) == []  # again: nothing left to do
    assert (site / "index.html").read_text() == index


def test_finalize_site_without_node_modules_keeps_cdn_urls(tmp_path, caplog):
    site = tmp_path / "local_site"
    site.mkdir()
    page = '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
    (site / "index.html").write_text(page)
    missing = datadocs.finalize_site(site, modules=tmp_path / "no_node_modules")
    assert missing == ["jquery/dist/jquery.min.js"]
    assert (site / "index.html").read_text() == page
    assert "npm ci" in caplog.text


def test_escaping_view_renders_values_as_text():
    """A table of unexpected values, as GX builds it, through the view the site uses."""
    view = datadocs.EscapingPageView()
    payload = '<script>alert("x")</script>'
    block = {
        "content_block_type": "table",
        "header_row": ["Unexpected Value", "Count"],
        "table": [[payload, 1], ['"><img src=x onerror=alert(1)>', 2]],
        "styling": {"body": {"classes": ["table"]}},
    }
    out = view.render_content_block({}, block)
    assert "<script>alert" not in out and "<img" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    listed = view.render_content_block({}, ["<b>bold</b>", {"not": "<i>a block</i>"}])
    assert "<b>" not in listed and "<i>" not in listed
