"""The Quality trends page in headless Chromium, served by ``dq.serve``, offline.

Its history comes from real runs on a project copy, day after day: the bundled
month cut after 2018-09-25 (the first run checks its two newest days), then one
more day (published), then the next day loaded three times over with a
product's price multiplied by 100 (the monitors stop the run: nothing
published). A product whose SKU is a script payload is in every run, so the
reference monitor's finding carries it onto the page. The page must draw every
chart, mark the anomalies, show the payload as text, and load nothing from
elsewhere.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dq import config, trends
from tests import browser_fixtures as fx
from tests.conftest import copy_project, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

browser, offline_page = fx.browser, fx.offline_page

HOSTILE_SKU = "<script>alert('sku')</script></script>"
#: Last day of each run's orders; the last run also triples its day and reprices.
DAYS = ("2018-09-25", "2018-09-26", "2018-09-27")


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])


def _load_day(root: Path, full: dict, last_day: str, defect: bool = False) -> None:
    """Seeds holding the orders up to ``last_day`` (and their items); with
    ``defect``, that day's orders twice more under new ids and the hostile
    product's price times 100."""
    seeds = root / "seeds"
    header, orders = full["orders"]
    at = header.index("ordered_at")
    kept = [r for r in orders if r[at][:10] <= last_day]
    if defect:
        for _ in range(2):
            kept += [[str(uuid.uuid4()), *r[1:]] for r in orders if r[at][:10] == last_day]
    _write(seeds / "raw_orders.csv", header, kept)
    ids = {r[0] for r in kept}
    header, items = full["items"]
    order = header.index("order_id")
    _write(seeds / "raw_items.csv", header, [r for r in items if r[order] in ids])
    header, products = full["products"]
    price = "300" if not defect else "30000"
    _write(
        seeds / "raw_products.csv",
        header,
        [*products, [HOSTILE_SKU, "trends test", "beverage", price, "a payload"]],
    )


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A project copy after three real runs (two published, one stopped by the
    monitors); its quality history holds what they measured."""
    root = copy_project(tmp_path_factory.mktemp("trends") / "project")
    seeds = root / "seeds"
    full = {n: _read(seeds / f"raw_{n}.csv") for n in ("orders", "items", "products")}
    for day in DAYS[:-1]:
        _load_day(root, full, day)
        result = run_cli(root, "run")
        assert result.returncode == 0, result.stdout + result.stderr
    _load_day(root, full, DAYS[-1], defect=True)
    result = run_cli(root, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "anomaly monitors found" in result.stdout
    return root


@pytest.fixture(scope="module")
def trends_url(measured) -> Iterator[str]:
    """Base URL of ``dq.serve`` over the measured project copy."""
    with fx.served(measured) as url:
        yield url


def _watch(page) -> tuple[list[str], list[str]]:
    """Dialogs (dismissed) and console errors and warnings, page errors included."""
    dialogs: list[str] = []
    problems: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on(
        "console",
        lambda m: (
            problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    return dialogs, problems


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-charts='done']")


def test_the_history_comes_from_the_runs(measured):
    record = json.loads((measured / "warehouse" / "runs" / "latest.json").read_text())
    monitor = next(s for s in record["steps"] if s["name"] == "monitor")
    lines = [a["line"] for a in monitor["detail"]["anomalies"]]
    assert any(a["monitor"] == "volume" for a in monitor["detail"]["anomalies"]), lines
    assert any(HOSTILE_SKU in line for line in lines), lines


def test_charts_drawn_anomalies_marked_offline(offline_page, trends_url):
    page = offline_page
    dialogs, problems = _watch(page)
    page.goto(trends_url + "/")
    page.click("a[href='/trends/']")
    page.wait_for_selector("body[data-charts='done']")
    charts = page.locator(".chart")
    assert charts.count() >= 4  # a volume chart per timed source, metrics, rejected share
    for i in range(charts.count()):
        chart = charts.nth(i)
        assert chart.locator("svg .role-mark").count() > 0, chart.get_attribute("id")
    # The stopped run's tripled day: a red point on the orders volume chart.
    orders = page.locator(".chart").filter(has_text="orders: rows per day")
    marks = orders.locator("svg g.anomalies_marks path")
    assert marks.count() >= 1
    assert marks.first.get_attribute("fill") == "#c62828"
    # Its tooltip is the monitor's line, as text.
    marks.first.hover(force=True)
    tooltip = page.locator("#vg-tooltip-element")
    tooltip.wait_for(state="visible")
    assert DAYS[-1] in tooltip.inner_text() and "rows" in tooltip.inner_text()
    # Metrics over runs opens on a series with an anomaly and marks it.
    assert page.locator("#chart-metrics svg g.anomalies_marks path").count() >= 1
    assert page.locator("#chart-metrics select").count() == 1
    page.mouse.move(0, 0)
    # The README's picture: the orders chart with its anomaly, and metrics over runs.
    orders.evaluate("e => window.scrollTo(0, e.getBoundingClientRect().top + scrollY - 10)")
    fx.save_screenshot(page, "trends.png", readme=True)
    assert not dialogs, dialogs
    assert not problems, problems
    assert not page.external_requests


def test_a_script_in_a_csv_is_text_on_the_page(offline_page, trends_url):
    page = offline_page
    dialogs, problems = _watch(page)
    _open(page, trends_url + "/trends/")
    table = page.locator("#anomalies")
    assert HOSTILE_SKU in table.inner_text()
    # The reference monitor's finding, picked in the selector: its tooltip shows
    # the SKU as text (vega-tooltip), nothing runs.
    select = page.locator("#chart-metrics select")
    options = select.locator("option").all_inner_texts()
    price = next(o for o in options if o == "products · reference:product_price")
    select.select_option(label=price)
    marks = page.locator("#chart-metrics svg g.anomalies_marks path")
    marks.first.wait_for()
    marks.first.hover(force=True)
    tooltip = page.locator("#vg-tooltip-element")
    tooltip.wait_for(state="visible")
    assert HOSTILE_SKU in tooltip.inner_text()
    page.wait_for_timeout(300)
    assert not dialogs, dialogs
    assert not problems, problems
    inline = "document.querySelectorAll('script:not([src]):not([type=\\'application/json\\'])')"
    assert page.evaluate(f"{inline}.length") == 0


def test_the_page_works_from_file_offline(offline_page, measured):
    """Opened as a file (no server): the vendor copies beside it draw the charts."""
    page = offline_page
    dialogs, problems = _watch(page)
    index = config.for_root(measured).trends_dir / "index.html"
    _open(page, index.as_uri())
    assert page.locator(".chart svg").count() >= 4
    assert sorted(p.name for p in (index.parent / "vendor").iterdir()) == sorted(
        trends.VENDOR_FILES
    )
    assert not dialogs and not problems, (dialogs, problems)
