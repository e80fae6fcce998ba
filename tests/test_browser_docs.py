"""dbt docs and GX Data Docs in headless Chromium, served by ``dq.serve``, offline.

One deliberately failing pipeline run on a temp copy of the project (150
orders with a negative subtotal blow the 5 % rejected-rows budget; script
payloads in several columns of three CSVs) builds both sites; the tests then
read them the way a person would. Every page runs with requests to anything
but 127.0.0.1 (and local files) blocked and counted as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dq import config
from dq.serve import start_in_thread
from tests import browser_fixtures as fx
from tests.conftest import copy_project, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

browser, offline_page = fx.browser, fx.offline_page

FAILED_EXPECTATION = "rejected share of raw_orders is at most 5.0%"


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A project copy after one failed run with script payloads in its CSVs:
    the root and the payloads Data Docs must show as text."""
    root = copy_project(tmp_path_factory.mktemp("docs") / "project")
    fx.add_bad_orders(root)
    payloads = fx.add_script_payloads(root)
    result = run_cli(root, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert FAILED_EXPECTATION in result.stdout
    return root, payloads


@pytest.fixture(scope="module")
def docs_url(failed_run, monkeypatch_module) -> Iterator[str]:
    """Base URL of ``dq.serve`` over the failed run's project copy."""
    monkeypatch_module.setenv("DQ_ROOT", str(failed_run[0]))
    server, url = start_in_thread(config.load())
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_landing_page_links_both_sites_and_the_latest_run(offline_page, docs_url):
    page = offline_page
    page.goto(docs_url + "/")
    assert page.locator("a[href='/dbt/index.html']").count() == 1
    assert page.locator("a[href='/gx/index.html']").count() == 1
    latest = page.locator("#latest-run").inner_text()
    assert "gate failed" in latest
    assert FAILED_EXPECTATION in page.inner_text("body")


def test_dbt_lineage_shows_seed_to_staging_to_mart(offline_page, docs_url):
    page = offline_page
    page.goto(docs_url + "/dbt/index.html#!/model/model.jaffle_shop.customers")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").filter(has_text="customers").count() >= 1
    page.click("a[title='View Lineage Graph']")
    page.click("a[title='View Fullscreen'][data-large]")
    page.wait_for_function(
        "() => angular.element(document.body).injector().get('graph').graph.elements.length > 10"
    )
    assert page.locator("#graph-viz-wrapper canvas").first.is_visible()
    # The graph is drawn on a canvas: read what it draws from dbt-docs' graph service.
    elements = page.evaluate(
        "() => angular.element(document.body).injector().get('graph').graph.elements"
        ".map(e => e.data)"
    )
    nodes = {e["id"] for e in elements if "source" not in e}
    edges = {(e["source"], e["target"]) for e in elements if "source" in e}
    seed, staging, mart = (
        "seed.jaffle_shop.raw_customers",
        "model.jaffle_shop.stg_customers",
        "model.jaffle_shop.customers",
    )
    assert {seed, staging, mart} <= nodes
    assert (staging, mart) in edges
    # seed -> ... -> stg_customers: a path through the checking model.
    reachable, frontier = {seed}, [seed]
    while frontier:
        current = frontier.pop()
        for source, target in edges:
            if source == current and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert staging in reachable and mart in reachable
    fx.save_screenshot(page, "dbt_docs.png", readme=True)


def test_gx_data_docs_styled_offline_and_show_the_failure(offline_page, docs_url):
    page = offline_page
    page.goto(docs_url + "/gx/index.html")
    page.wait_for_load_state("networkidle")
    # The Bootstrap stylesheet came from the site's copy (from node_modules) and its rules apply.
    sheets = page.evaluate(
        "() => [...document.styleSheets].filter(s => s.href && s.href.endsWith("
        "'/gx/static/vendor/bootstrap/dist/css/bootstrap.min.css')).map(s => s.cssRules.length)"
    )
    assert sheets and sheets[0] > 100
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("-apple-system")
    clear = page.get_by_role("button", name="Clear Filters")
    # .btn-secondary from Bootstrap 4.3.1: #6c757d.
    assert clear.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(108, 117, 125)"
    # Font Awesome's webfont (relative to its CSS) loaded: the status icons render.
    assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 6 Free\"')")

    # Filter the results table the way a person would: both layers are listed.
    search = page.get_by_placeholder("Search").first  # the Validation Results tab
    # bootstrap-table filters on key events, hence press() after fill().
    for suite, layer in (("raw_orders", "-raw"), ("customers", "-transformed")):
        search.fill(suite)
        search.press("Enter")
        page.locator("table tbody tr:visible", has_text=suite).filter(
            has_text=layer
        ).first.wait_for()
    search.fill("")
    search.press("Enter")
    page.locator("table tbody tr:visible").nth(5).wait_for()
    fx.save_screenshot(page, "data_docs.png", readme=True)

    search.fill("stg_orders")
    search.press("Enter")
    row = page.locator("table tbody tr:visible", has_text="stg_orders").first
    row.wait_for()
    assert row.locator(".fa-times, .text-danger").count() >= 1
    row.click()
    page.wait_for_url("**/validations/stg_orders/**")
    page.wait_for_load_state("networkidle")
    assert page.get_by_text(FAILED_EXPECTATION).first.is_visible()
    fx.save_screenshot(page, "data_docs_failed_validation.png")


def _watch(page) -> tuple[list[str], list[str]]:
    """Dialogs the page opens (dismissed) and Content-Security-Policy refusals it logs."""
    dialogs: list[str] = []
    refused: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(f"{page.url}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return dialogs, refused


def test_csv_values_are_text_on_every_served_page(offline_page, docs_url, failed_run):
    """No CSV value runs as script on any page the server offers; each payload
    a rule lists is shown, as text. The pages still work under the CSP."""
    root, payloads = failed_run
    page = offline_page
    dialogs, refused = _watch(page)
    site = config.load().data_docs_dir
    assert site == root / "gx" / "uncommitted" / "data_docs" / "local_site"
    gx_pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert len(gx_pages) > 40 and sum("validations/" in p for p in gx_pages) > 20
    urls = ["/", "/dbt/index.html", "/dbt/static_index.html"] + [f"/gx/{p}" for p in gx_pages]
    seen = ""
    for url in urls:
        page.goto(docs_url + url, wait_until="load")
        seen += page.inner_text("body")
    page.wait_for_timeout(300)  # let late handlers (onerror of a broken <img>) fire
    assert not dialogs, dialogs
    assert not refused, refused
    missing = [v for v in payloads.values() if v not in seen]
    assert not missing, f"payloads not shown as text: {missing}"
    for value in fx.HIDDEN_PAYLOADS.values():  # kept in raw tables, listed by no rule
        assert value not in seen


def test_data_docs_index_works_from_file_offline(offline_page, failed_run):
    """The index every run summary prints renders from file:// with no network:
    styled, its table of validations filled, no payload run."""
    root, payloads = failed_run
    page = offline_page
    dialogs, _ = _watch(page)
    site = root / "gx" / "uncommitted" / "data_docs" / "local_site"
    page.goto(site.joinpath("index.html").as_uri())
    page.wait_for_load_state("networkidle")
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("-apple-system")
    assert page.evaluate("typeof jQuery === 'function' && typeof vegaEmbed === 'function'")
    page.locator("table tbody tr:visible").nth(9).wait_for()  # the table of validations
    search = page.get_by_placeholder("Search").first  # bootstrap-table, also from file://
    search.fill("raw_orders")
    search.press("Enter")
    page.locator("table tbody tr:visible", has_text="raw_orders").first.wait_for()

    raw_orders = next(site.glob("validations/raw_orders/**/*.html"))
    page.goto(raw_orders.as_uri())
    page.wait_for_load_state("networkidle")
    assert page.get_by_text(payloads["ordered_at"], exact=True).first.is_visible()
    assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 6 Free\"')")
    assert not dialogs, dialogs
    assert not page.external_requests
