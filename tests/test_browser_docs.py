"""dbt docs and GX Data Docs in headless Chromium, served by ``dq.serve``, offline.

One deliberately failing pipeline run on a temp copy of the project (150
orders with a negative subtotal blow the 5 % rejected-rows budget) builds both
sites; the tests then read them the way a person would. Every page runs with
requests to anything but 127.0.0.1 blocked and counted as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dq import config
from dq.serve import start_in_thread
from tests import browser_fixtures as fx
from tests.conftest import copy_project, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

browser, offline_page = fx.browser, fx.offline_page

FAILED_EXPECTATION = "rejected share of raw_orders is at most 5.0%"


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory, monkeypatch_module) -> Iterator[str]:
    """Base URL of ``dq.serve`` over a project copy after one failed run."""
    root = copy_project(tmp_path_factory.mktemp("docs") / "project")
    fx.add_bad_orders(root)
    result = run_cli(root, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert FAILED_EXPECTATION in result.stdout
    monkeypatch_module.setenv("DQ_ROOT", str(root))
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
    # The Bootstrap stylesheet came from node_modules and its rules apply.
    sheets = page.evaluate(
        "() => [...document.styleSheets].filter(s => s.href && s.href.includes("
        "'/_vendor/bootstrap/dist/css/bootstrap.min.css')).map(s => s.cssRules.length)"
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
