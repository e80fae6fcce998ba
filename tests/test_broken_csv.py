"""A deliberately broken CSV makes the GX checkpoint fail and the run exit non-zero."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from tests.conftest import last_build_db, run_cli

pytestmark = pytest.mark.slow


def test_too_many_bad_orders_fail_the_gate_and_show_in_data_docs(project):
    path = project / "seeds" / "raw_orders.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, data = rows[0], rows[1:]
    # Make every 10th order's subtotal negative: 10 % rejected > the 5 % budget.
    # (A few orders have a zero subtotal, and -0 is not negative: skip those.)
    broken = [row for row in data if row[header.index("subtotal")] != "0"][::10]
    for row in broken:
        row[header.index("subtotal")] = "-" + row[header.index("subtotal")]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *data])

    result = run_cli(project, "run")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "GATE FAILED (exit 1)" in result.stdout
    assert "rejected share of raw_orders is at most 5.0%" in result.stdout
    # Nothing published.
    assert not (project / "warehouse" / "jaffle_shop.db").exists()
    # Quarantine holds the bad rows with their reason; nothing was dropped.
    with sqlite3.connect(last_build_db(project)) as db:
        reasons = dict(
            db.execute("select reject_reason, count(*) from rejected_orders group by 1").fetchall()
        )
        raw, clean = db.execute(
            "select (select count(*) from raw_orders), (select count(*) from stg_orders)"
        ).fetchone()
    assert reasons == {"negative amount": len(broken)}
    assert raw == clean + len(broken)
    # The failure is visible in the stored GX result and in Data Docs.
    results = [
        json.loads(p.read_text())
        for p in (project / "gx" / "uncommitted" / "validations" / "stg_orders").rglob("*.json")
    ]
    assert results and results[-1]["success"] is False
    index = (project / "gx/uncommitted/data_docs/local_site/index.html").read_text()
    assert "stg_orders" in index and "Failed" in index
