"""``dq.serve`` without a browser: routes, CDN rewriting, pinned assets, no path escapes."""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dq import config, serve

# Located, not imported: importing GX takes seconds.
GX_RENDER = Path(importlib.util.find_spec("great_expectations").origin).parent / "render"
# Assets a page loads (stylesheets, scripts): links people click on are not requests.
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
    target = root / "dbt_project" / "target"
    target.mkdir(parents=True)
    (target / "index.html").write_text("<html>dbt</html>")
    (target / "manifest.json").write_text('{"metadata": {"send_anonymous_usage_stats": true}}')
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
    (root / "secret.txt").write_text("not for the web")
    monkeypatch.setenv("DQ_ROOT", str(root))
    server, url = serve.start_in_thread(config.load())
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
