"""The anomaly monitors where people look, in headless Chromium: a run whose last
day was loaded twice (fresh ids, every row valid) stops at the ``monitor`` step,
and GX Data Docs show the check with its observed value and expected range."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser_fixtures as fx
from tests.conftest import copy_project, run_cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

browser, offline_page = fx.browser, fx.offline_page

LAST_DAY = "2018-09-29"
LINE = (
    f"stg_orders {LAST_DAY}: share of rows repeating another row but for the key 50%,"
    " expected 0%–10% for a Saturday"
)


def load_last_day_twice(root: Path) -> int:
    """Append the last day's orders and their items again under fresh ids."""
    seeds = root / "seeds"
    with (seeds / "raw_orders.csv").open(newline="", encoding="utf-8") as handle:
        orders = list(csv.DictReader(handle))
    with (seeds / "raw_items.csv").open(newline="", encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))
    again = {o["id"]: str(uuid.uuid4()) for o in orders if o["ordered_at"] >= LAST_DAY}
    new_orders = [dict(o, id=again[o["id"]]) for o in orders if o["id"] in again]
    new_items = [
        dict(i, id=str(uuid.uuid4()), order_id=again[i["order_id"]])
        for i in items
        if i["order_id"] in again
    ]
    for name, rows in (("raw_orders.csv", new_orders), ("raw_items.csv", new_items)):
        with (seeds / name).open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writerows(rows)
    return len(new_orders)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("monitors") / "project")
    assert load_last_day_twice(root) == 20
    result = run_cli(root, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"STOP  {LINE}" in result.stdout  # the summary names it in one line
    return root


@pytest.fixture(scope="module")
def docs_url(stopped_run) -> Iterator[str]:
    with fx.served(stopped_run) as url:
        yield url


def test_data_docs_show_each_monitor_with_its_range_and_observed_value(offline_page, docs_url):
    page = offline_page
    page.goto(docs_url + "/gx/index.html")
    page.wait_for_load_state("networkidle")
    search = page.get_by_placeholder("Search").first
    search.fill("monitors_orders")
    search.press("Enter")
    row = page.locator("table tbody tr:visible", has_text="monitors_orders").first
    row.wait_for()
    assert row.locator(".fa-times, .text-danger").count() >= 1  # the suite failed
    row.click()
    page.wait_for_url("**/validations/monitors_orders/**")
    page.wait_for_load_state("networkidle")
    # The failed check: its line (observed value and expected range in words) and,
    # in the Observed Value column, the number GX measured.
    check = page.locator("tr", has_text=f"duplicates: {LINE}").first
    assert check.is_visible()
    cells = [c.strip() for c in check.locator("td").all_inner_texts()]
    assert "0.5" in cells, cells
    # Checks that passed are listed too, with their own ranges (volume of the day).
    assert page.locator("tr", has_text=f"volume: stg_orders {LAST_DAY}: 40 rows").count() == 1
    fx.save_screenshot(page, "data_docs_monitors.png")
