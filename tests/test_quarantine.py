"""Row-level and semantic faults: bad rows go to rejected_* with a reason,
counts reconcile, budgets and row-count drops gate publishing."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import copy_project, rewrite_csv, run_cli, sha256

pytestmark = pytest.mark.slow

FUTURE = "2999-01-01T10:00:00"


def _inject_orders(header, rows):
    col = {name: i for i, name in enumerate(header)}
    template = rows[0]

    def order(order_id, **changes):
        row = list(template)
        row[col["id"]] = order_id
        for key, value in changes.items():
            row[col[key]] = value
        return row

    return rows + [
        list(rows[1]),  # exact duplicate row
        order(rows[2][col["id"]], ordered_at="2018-09-03T09:00:00"),  # conflicting duplicate
        order(""),  # missing key
        order("bad-customer", customer="no-such-customer"),
        order("bad-store", store_id="no-such-store"),
        order("bad-number", subtotal="12.5O"),
        order("negative", subtotal="-500", order_total="-470"),
        order("bad-total", order_total="999999"),
        order("bad-time", ordered_at="yesterday"),
        order("impossible-date", ordered_at="2018-02-31T10:00:00"),
        order("future", ordered_at=FUTURE),
        order("rejected-parent", customer="no-such-customer"),
    ]


#: The reasons are the declared rules of seeds/orders.yml (docs/sources.md).
EXPECTED_ORDER_REASONS = {
    "duplicate row": 1,
    "conflicting duplicate id": 2,
    "id is missing": 1,
    # 2 injected + every order of the customer whose id arrives twice with
    # different names (both versions are rejected, so its orders are orphans).
    "customer has no clean match in customers": 2,
    "store_id has no clean match in stores": 1,
    "subtotal is not a whole number of cents": 1,
    "subtotal is below 0": 1,
    "subtotal plus tax_paid is not order_total": 1,
    "ordered_at is not a timestamp": 2,
    "ordered_at is in the future": 1,
}


def _inject_items(header, rows):
    col = {name: i for i, name in enumerate(header)}
    return rows + [
        ["item-unknown-product", rows[0][col["order_id"]], "JAF-999"],
        ["item-unknown-order", "no-such-order", "JAF-001"],
        ["item-of-rejected-order", "rejected-parent", "JAF-001"],
        ["", rows[0][col["order_id"]], "JAF-001"],
    ]


def _inject_customers(header, rows):
    return rows + [
        list(rows[0]),
        [rows[-1][0], "Someone Else"],
        ["", "No Id"],
        ["cust-no-name", "   "],
    ]


#: Odd but valid names: they load exactly (and are not quarantined).
ODD_NAMES = [
    "Robert'); DROP TABLE raw_orders; --",
    "Zoë Ångström 李雷",
    "Smith, John",
    'The "Jaffle" King',
    "Line one\nLine two",
    "  padded  ",
]


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def quarantined(tmp_path_factory):
    """One run on bad rows under budget and odd valid values, with the seeds
    outside the repository (several levels away) and GX in a folder of another
    name. Returns the project root and the CLI result."""
    base = tmp_path_factory.mktemp("quarantine")
    root = copy_project(base / "project")
    seeds = Path(shutil.move(root / "seeds", base / "inbox" / "2026" / "11" / "seeds"))
    quality = Path(shutil.move(root / "gx", root / "quality"))
    rewrite_csv(seeds / "raw_orders.csv", _inject_orders)
    rewrite_csv(seeds / "raw_items.csv", _inject_items)
    customers = seeds / "raw_customers.csv"
    rewrite_csv(customers, _inject_customers)
    rewrite_csv(
        customers, lambda h, rows: rows + [[f"odd-{i}", n] for i, n in enumerate(ODD_NAMES)]
    )
    # A UTF-8 BOM and CRLF line endings, as spreadsheet exports write them.
    text = customers.read_text(encoding="utf-8")
    customers.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    inbox = _files(base / "inbox")
    result = run_cli(root, "run", DQ_SEEDS_DIR=str(seeds), DQ_GX_DIR=str(quality))
    # The run wrote nothing beside the CSVs (dbt's compiled seed files stay in its build).
    assert _files(base / "inbox") == inbox
    assert sorted(p.name for p in base.iterdir()) == ["inbox", "project"]
    return root, result


def test_seeds_anywhere_and_gx_in_any_folder(quarantined):
    root, result = quarantined
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "quality" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    assert not (root / "gx").exists() and not (root / "seeds").exists()


def test_valid_oddities_load_exactly(quarantined):
    root, _ = quarantined
    with _published(root) as db:
        raw = dict(db.execute("select id, name from raw_customers where id like 'odd-%'"))
        clean = dict(
            db.execute(
                "select customer_id, customer_name from stg_customers"
                " where customer_id like 'odd-%'"
            )
        )
        assert db.execute("select count(*) from raw_orders").fetchone()[0] > 0
        header = [r[1] for r in db.execute("pragma table_info(raw_customers)")]
    assert header == ["id", "name"]  # the BOM did not leak into the first column name
    # dbt's CSV reader (agate) turns a CRLF inside quotes into \n, stock and fast
    # loader alike; every other character arrives as written.
    assert [raw[f"odd-{i}"] for i in range(len(ODD_NAMES))] == ODD_NAMES
    assert [clean[f"odd-{i}"] for i in range(len(ODD_NAMES))] == [n.strip() for n in ODD_NAMES]


def _published(root):
    return sqlite3.connect(root / "warehouse" / "jaffle_shop.db")


def test_bad_rows_under_budget_publish_and_are_reported(quarantined):
    root, result = quarantined
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PUBLISHED (exit 0)" in result.stdout
    # The summary shows the rejected counts per source.
    section = result.stdout.split("Rejected rows")[1].split("\n\n")[0]
    counts = dict(line.split() for line in section.splitlines()[1:])
    with _published(root) as db:
        for raw, table in (
            ("raw_orders", "rejected_orders"),
            ("raw_items", "rejected_items"),
            ("raw_customers", "rejected_customers"),
        ):
            n = db.execute(f"select count(*) from {table}").fetchone()[0]
            assert int(counts[raw]) == n > 0


@pytest.mark.parametrize("reason, count", sorted(EXPECTED_ORDER_REASONS.items()))
def test_each_order_fault_is_quarantined_with_its_reason(quarantined, reason, count):
    root, _ = quarantined
    with _published(root) as db:
        if reason == "customer has no clean match in customers":
            count += db.execute(
                "select count(*) from raw_orders where customer = (select id from"
                " rejected_customers where reject_reason = 'conflicting duplicate id' limit 1)"
            ).fetchone()[0]
        got = db.execute(
            "select count(*) from rejected_orders where reject_reason = ?", (reason,)
        ).fetchone()[0]
    assert got == count


@pytest.mark.parametrize(
    "item_id, reason",
    [
        ("item-unknown-product", "sku has no clean match in products"),
        ("item-unknown-order", "order_id has no clean match in orders"),
        ("item-of-rejected-order", "order_id has no clean match in orders"),
        (None, "id is missing"),  # an empty CSV field loads as NULL (as stock dbt does)
    ],
)
def test_each_item_fault_is_quarantined(quarantined, item_id, reason):
    root, _ = quarantined
    with _published(root) as db:
        rows = db.execute(
            "select reject_reason from rejected_items where id is ?", (item_id,)
        ).fetchall()
    assert rows == [(reason,)]


def test_customer_faults_are_quarantined(quarantined):
    root, _ = quarantined
    with _published(root) as db:
        reasons = dict(
            db.execute("select reject_reason, count(*) from rejected_customers group by 1")
        )
    assert reasons == {
        "duplicate row": 1,
        "conflicting duplicate id": 2,
        "id is missing": 1,
        "name is missing": 1,
    }


def test_every_source_reconciles(quarantined):
    root, _ = quarantined
    pairs = {
        "raw_customers": ("stg_customers", "rejected_customers"),
        "raw_orders": ("stg_orders", "rejected_orders"),
        "raw_items": ("stg_items", "rejected_items"),
        "raw_products": ("stg_products", "rejected_products"),
        "raw_stores": ("stg_stores", "rejected_stores"),
        "raw_supplies": ("stg_supplies", "rejected_supplies"),
    }
    with _published(root) as db:
        for raw, (clean, rejected) in pairs.items():
            n_raw, n_clean, n_rej = (
                db.execute(f"select count(*) from {t}").fetchone()[0]
                for t in (raw, clean, rejected)
            )
            assert n_raw == n_clean + n_rej, raw
        # Rejected rows keep the values exactly as received.
        assert db.execute(
            "select subtotal from rejected_orders where id = 'bad-number'"
        ).fetchone() == ("12.5O",)
        # Marts never see a quarantined row (an exact duplicate keeps its first copy).
        assert (
            db.execute(
                "select count(*) from orders where order_id in (select id from"
                " rejected_orders where reject_reason <> 'duplicate row')"
            ).fetchone()[0]
            == 0
        )
        assert (
            db.execute(
                "select count(*) from orders where order_id in (select id from"
                " rejected_orders where reject_reason = 'duplicate row')"
            ).fetchone()[0]
            == 1
        )


def _visible_rows(page: str) -> list[str]:
    """The text of each table row of a Data Docs page, tags, styles and scripts removed."""
    import html as html_mod
    import re

    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S | re.I)
    rows = re.findall(r"<tr\b.*?</tr>", page, flags=re.S | re.I)
    return [" ".join(html_mod.unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in rows]


def test_rejected_counts_show_in_data_docs(quarantined):
    import re

    root, _ = quarantined
    with _published(root) as db:
        count = db.execute("select count(*) from rejected_orders").fetchone()[0]
    assert count >= sum(EXPECTED_ORDER_REASONS.values())
    docs = root / "quality" / "uncommitted" / "data_docs" / "local_site" / "validations"
    pages = sorted((docs / "rejected_orders").rglob("*.html"))
    assert len(pages) == 1
    (row,) = [
        r
        for r in _visible_rows(pages[0].read_text(encoding="utf-8"))
        if "rows of raw_orders quarantined" in r
    ]
    # The row-count expectation's observed value, as a whole number in its own row.
    assert re.search(rf"(?<![\d.]){count}(?![\d.])", row), row


def test_halved_table_fails_the_row_count_gate(published_project):
    root, before = published_project
    kept: set[str] = set()

    def halve_orders(header, rows):
        rows = rows[: len(rows) // 2]
        kept.update(r[0] for r in rows)
        return rows

    rewrite_csv(root / "seeds" / "raw_orders.csv", halve_orders)
    # Keep the items of the kept orders, so the only fault is the halved volume.
    rewrite_csv(root / "seeds" / "raw_items.csv", lambda h, rows: [r for r in rows if r[1] in kept])
    result = run_cli(root, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "row counts changed more than allowed" in result.stdout
    assert "raw_orders: 1686 -> 843 rows (-50%; DQ_MAX_ROW_DROP=0.3)" in result.stdout
    assert "--accept row-counts" in result.stdout
    assert sha256(root / "warehouse" / "jaffle_shop.db") == before
    # An intended change is accepted deliberately, for one run, with a reason on record.
    reason = "switched to the half-month extract"
    result = run_cli(root, "run", "--accept", "row-counts", "--reason", reason)
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(root / "warehouse" / "jaffle_shop.db") as db:
        assert db.execute("select count(*) from raw_orders").fetchone()[0] == 843
    record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
    assert [(a["what"], a["reason"]) for a in record["acceptances"]] == [("row-counts", reason)]
    publish = next(s for s in record["steps"] if s["name"] == "publish")
    assert publish["detail"]["row_counts"] == "accepted"
    assert (
        "raw_orders: 1686 -> 843 rows (-50%; DQ_MAX_ROW_DROP=0.3)"
        in (publish["detail"]["row_count_changes"])
    )
