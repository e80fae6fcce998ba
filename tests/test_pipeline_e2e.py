"""The whole pipeline on the bundled data, checked by what it produced."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from dq.pipeline import STEP_NAMES
from dq.sources import load_sources

pytestmark = pytest.mark.slow

MARTS = {
    "customers": [
        "customer_id",
        "customer_name",
        "customer_type",
        "count_lifetime_orders",
        "lifetime_spend_pretax",
        "lifetime_tax_paid",
        "lifetime_spend",
        "first_ordered_at",
        "last_ordered_at",
    ],
    "orders": [
        "order_id",
        "location_id",
        "customer_id",
        "subtotal",
        "tax_paid",
        "order_total",
        "order_cost",
        "order_items_subtotal",
        "count_order_items",
        "count_food_items",
        "count_drink_items",
        "is_food_order",
        "is_drink_order",
        "ordered_at",
        "customer_order_number",
    ],
    "order_items": [
        "order_item_id",
        "order_id",
        "product_id",
        "product_name",
        "product_price",
        "supply_cost",
        "is_food_item",
        "is_drink_item",
        "ordered_at",
    ],
}


def _csv_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def _db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / "warehouse" / "jaffle_shop.db")


def test_run_exits_zero_and_prints_summary(bundled_run):
    root, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "PUBLISHED (exit 0)" in out
    for step in STEP_NAMES:
        assert f"  {step} " in out
    assert "raw_orders" in out and "stg_orders" in out
    assert str(root / "warehouse" / "jaffle_shop.db") in out
    assert "data_docs/local_site/index.html" in out
    assert "static_index.html" in out


def test_raw_tables_hold_every_csv_row_untouched(bundled_run):
    root, _ = bundled_run
    sources = load_sources(root / "seeds")
    with _db(root) as db:
        for source in sources.values():
            expected = _csv_rows(root / "seeds" / source.csv_name)
            cols = [r[1] for r in db.execute(f"pragma table_info({source.raw_table})")]
            assert cols == list(source.headers)
            assert db.execute(f"select count(*) from {source.raw_table}").fetchone()[0] == expected
        # Values untouched: first CSV row equals first raw row, as text.
        with open(root / "seeds" / "raw_orders.csv", newline="", encoding="utf-8") as fh:
            first = next(csv.reader(fh, strict=True) for _ in [0])
            next(first)
            row = next(first)
        assert list(db.execute("select * from raw_orders limit 1").fetchone()) == row


def test_staging_and_marts_are_clean_and_typed(bundled_run):
    root, _ = bundled_run
    with _db(root) as db:
        # Nothing lost: bundled data is clean, so staging holds every raw row.
        assert (
            db.execute("select count(*) from stg_orders").fetchone()[0]
            == db.execute("select count(*) from raw_orders").fetchone()[0]
        )
        for table, columns in MARTS.items():
            assert [r[1] for r in db.execute(f"pragma table_info({table})")] == columns
            assert db.execute(f"select count(*) from {table}").fetchone()[0] > 0
        # Declared types that GX and dbt docs see.
        types = {r[1]: r[2] for r in db.execute("pragma table_info(orders)")}
        assert types["order_total"] == "REAL" and types["count_order_items"] == "INT"
        assert types["ordered_at"] == "TEXT"
        # Stored values are typed, not text.
        assert (
            db.execute(
                "select count(*) from orders where typeof(order_total) <> 'real'"
                " or typeof(count_order_items) <> 'integer'"
            ).fetchone()[0]
            == 0
        )
        # Cents became currency units.
        raw_total, total = db.execute(
            "select sum(cast(order_total as integer)), (select sum(order_total) from orders)"
            " from raw_orders"
        ).fetchone()
        assert total == pytest.approx(raw_total / 100)
        # Timestamps are canonical.
        assert (
            db.execute(
                "select count(*) from orders where datetime(ordered_at) is not ordered_at"
            ).fetchone()[0]
            == 0
        )
        # No leading/trailing spaces in any text column of staging or marts.
        for table in ("stg_customers", "stg_products", "stg_stores", *MARTS):
            for _, column, ctype, *_ in db.execute(f"pragma table_info({table})"):
                if ctype == "TEXT":
                    bad = db.execute(
                        f"select count(*) from {table} where {column} <> trim({column})"
                    ).fetchone()[0]
                    assert bad == 0, (table, column)


def test_gx_results_stored_and_data_docs_list_both_layers(bundled_run):
    root, _ = bundled_run
    validations = root / "gx" / "uncommitted" / "validations"
    stored = {p.parents[2].name for p in validations.rglob("*.json")}
    sources = load_sources(root / "seeds")
    raw_suites = {s.raw_table for s in sources.values()}
    transformed = {s.clean_table for s in sources.values()} | set(MARTS)
    assert raw_suites | transformed <= stored
    for path in validations.rglob("*.json"):
        assert json.loads(path.read_text())["success"] is True, path
    index = (root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text()
    for suite in raw_suites | transformed:
        # The link to the suite's result page (a bare name would also match
        # inside a longer suite name: orders in raw_orders).
        assert f"'validations/{suite}/" in index, suite


def test_dbt_docs_have_a_filled_catalog(bundled_run):
    root, _ = bundled_run
    target = root / "warehouse" / "docs" / "dbt"
    catalog = json.loads((target / "catalog.json").read_text())
    node = catalog["nodes"]["model.jaffle_shop.orders"]
    assert node["columns"]["order_total"]["type"] == "REAL"
    assert "model.jaffle_shop.customers" in catalog["nodes"]
    assert (target / "static_index.html").stat().st_size > 100_000


def test_run_record_matches_the_summary(bundled_run):
    root, _ = bundled_run
    record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
    assert record["status"] == "published" and record["exit_code"] == 0
    assert [s["name"] for s in record["steps"]] == [*STEP_NAMES, "docs"]
    assert all(s["status"] == "ok" for s in record["steps"])


def test_docs_and_validate_verbs_work_on_the_last_build(bundled_run):
    """The documented verbs besides `run`; neither rewrites the last run's record."""
    from tests.conftest import run_cli, sha256

    root, _ = bundled_run
    record = (root / "warehouse" / "runs" / "latest.json").read_bytes()
    published = sha256(root / "warehouse" / "jaffle_shop.db")
    docs = run_cli(root, "docs")
    assert docs.returncode == 0, docs.stdout + docs.stderr
    assert "static_index.html" in docs.stdout
    trends = root / "warehouse" / "docs" / "trends" / "index.html"
    assert f"Quality trends: {trends}" in docs.stdout and trends.is_file()
    validate = run_cli(root, "validate", "transformed")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "stg_orders" in validate.stdout and "FAILED" not in validate.stdout
    assert (root / "warehouse" / "runs" / "latest.json").read_bytes() == record
    # Both looked at a throw-away copy of the published warehouse, then removed it.
    assert sha256(root / "warehouse" / "jaffle_shop.db") == published
    assert list((root / "warehouse" / "build").iterdir()) == []


def test_a_run_writes_only_its_build_the_warehouse_and_gx_uncommitted(bundled_run):
    """Tracked files (dbt project, seeds, GX suites and config) are inputs: a run
    rewrites none of them, so a read-only code checkout works."""
    from tests.conftest import REPO

    root, _ = bundled_run
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "dbt_project", "seeds", "gx"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in tracked:
        if (REPO / name).is_file() and "dev" not in Path(name).parts:
            assert (root / name).read_bytes() == (REPO / name).read_bytes(), f"{name} changed"
    assert not (root / "dbt_project" / "target").exists()
    assert not (root / "dbt_project" / "logs").exists()


def test_every_clean_table_with_a_key_has_an_index_on_it(bundled_run):
    """The marts, relationship checks and monitors look rows up by key (issue 13)."""
    root, _ = bundled_run
    sources = load_sources(root / "seeds")
    with _db(root) as con:
        indexed = {
            (table, tuple(r[2] for r in con.execute(f'pragma index_info("{name}")')))
            for name, table in con.execute(
                "select name, tbl_name from sqlite_master where type = 'index'"
            )
        }
    expected = {(s.clean_table, tuple(s.clean_key)) for s in sources.values() if s.clean_key}
    expected |= {("orders", ("order_id",)), ("customers", ("customer_id",))}
    expected |= {("order_items", ("order_item_id",))}
    assert len(expected) > 3 and expected <= indexed
