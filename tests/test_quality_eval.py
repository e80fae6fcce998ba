"""The silent-defect corpus (dq.scenarios) and its runner (dq.quality_eval).

Fast tests check, without the pipeline, that snapshots truncate a simulation as
the source would deliver it, that every defect keeps every row valid against the
declarations in seeds/*.yml (checked generically from them: key, required,
types, values, bounds, references, custom rules) while really containing its
defect, and that the same inputs give the same bytes. One slow test runs the
runner end to end on a clean and a defect scenario and reads the real records.
"""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
import json
import re
import shutil
import sqlite3
import statistics
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from dq import data, quality_eval, scenarios
from dq.sources import load_sources
from tests.conftest import REPO

#: The clean "today" of the fast tests: Brooklyn (opened 2019-03-12) has traded a week.
SIM_DAYS, TODAY = 200, "2019-03-19"


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """200 days of jafgen (seed 42), generated once for the module (~7 s)."""
    out = tmp_path_factory.mktemp("sim")
    data.generate(out, years=SIM_DAYS / 365, seed=42)
    return out


@pytest.fixture(scope="module")
def clean(sim, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    scenarios.snapshot(sim, out, TODAY)
    return out


def read(folder: Path, table: str) -> list[dict]:
    with open(folder / f"raw_{table}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def by_day(orders: list[dict]) -> Counter:
    return Counter(o["ordered_at"][:10] for o in orders)


def on_day(orders: list[dict], day: str) -> list[dict]:
    return [o for o in orders if o["ordered_at"][:10] == day]


# ------------------------------------------------------------------ row validity


def _clean_values(column, texts: list[str]) -> list:
    """The clean values of a column's cells (None for blank); fails as a row rule would."""
    out = []
    for text in (t.strip() for t in texts):
        if not text:
            assert not column.required, f"{column.header} is missing"
            out.append(None)
        elif column.type in ("integer", "money"):
            value = int(text)  # whole numbers (of cents), as the rules demand
            out.append(value / 100 if column.type == "money" and column.unit != "units" else value)
        elif column.type == "decimal":
            out.append(float(text))
        elif column.type == "boolean":
            true = [w.lower() for w in column.true_values or ("true",)]
            false = [w.lower() for w in column.false_values or ("false",)]
            assert text.lower() in true + false, f"{column.header}={text!r}"
            out.append(int(text.lower() in true))
        elif column.type == "timestamp":
            out.append(dt.datetime.fromisoformat(text))
        elif column.type == "date":
            out.append(dt.date.fromisoformat(text))
        else:
            out.append(text.lower() if column.lowercase else text)
    return out


def _bound(column, bound):
    return dt.datetime.now() if bound == "now" else bound


def assert_rows_valid(folder: Path) -> None:
    """Every row of every raw CSV in ``folder`` passes every rule its declaration
    (seeds/<noun>.yml) states: key, required, type, values, min/max, references
    and the named custom rules (evaluated by SQLite on the clean values). Nothing
    would be quarantined."""
    sources = load_sources(REPO / "seeds")
    tables = scenarios.read_folder(folder)
    key_sets = {
        noun: {r[tables[noun].col(s.key[0])].strip() for r in tables[noun].rows}
        for noun, s in sources.items()
    }
    for noun, source in sources.items():
        table = tables[noun]
        assert table.header == [c.header for c in source.columns], noun
        assert all(len(r) == len(table.header) for r in table.rows), f"{noun}: ragged"
        keys = [tuple(r[table.col(k)].strip() for k in source.key) for r in table.rows]
        assert all(all(k) for k in keys) and len(set(keys)) == len(keys), f"{noun}: key"
        clean = {}
        for c in source.columns:
            texts = table.column(c.header)
            values = clean[c.name] = _clean_values(c, texts)
            present = [v for v in values if v is not None]
            if c.values:
                allowed = {v.lower() if c.lowercase else v for v in c.values}
                assert set(present) <= allowed, f"{noun}.{c.header}: {set(present) - allowed}"
            if c.min is not None:
                assert all(v >= _bound(c, c.min) for v in present), f"{noun}.{c.header} < min"
            if c.max is not None:
                assert all(v <= _bound(c, c.max) for v in present), f"{noun}.{c.header} > max"
            if c.references:
                dangling = {t.strip() for t in texts if t.strip()} - key_sets[c.references]
                assert not dangling, f"{noun}.{c.header}: {len(dangling)} dangling references"
        if source.rules:
            db = sqlite3.connect(":memory:")
            names = list(clean)
            db.execute(f"create table t ({', '.join(names)})")
            db.executemany(
                f"insert into t values ({', '.join('?' * len(names))})",
                [
                    [v if not isinstance(v, dt.date) else str(v) for v in row]
                    for row in zip(*clean.values(), strict=True)
                ],
            )
            for rule in source.rules:
                hits = db.execute(f"select count(*) from t where {rule.reject_if}").fetchone()[0]
                assert not hits, f"{noun}: {hits} rows break {rule.name!r}"
            db.close()


# ------------------------------------------------------------------ snapshots


def test_snapshot_of_a_longer_simulation_is_the_shorter_one(sim, tmp_path):
    """The bundled sample is 29 days of seed 42: a snapshot of 200 days at its last
    day has the same bytes, except the stores that had not opened yet."""
    scenarios.snapshot(sim, tmp_path, "2018-09-29")
    for table in ("customers", "orders", "items", "products", "supplies"):
        assert filecmp.cmp(
            tmp_path / f"raw_{table}.csv", REPO / "seeds" / f"raw_{table}.csv", False
        )
    opened = [s for s in read(REPO / "seeds", "stores") if s["opened_at"][:10] <= "2018-09-29"]
    assert read(tmp_path, "stores") == opened and [s["name"] for s in opened] == ["Philadelphia"]


def test_snapshot_keeps_what_exists_on_the_day(sim, tmp_path):
    yesterday, today = tmp_path / "y", tmp_path / "t"
    scenarios.snapshot(sim, yesterday, "2019-03-11")
    scenarios.snapshot(sim, today, "2019-03-12")
    orders = read(today, "orders")
    assert max(by_day(orders)) == "2019-03-12" and by_day(orders)["2019-03-12"] > 100
    all_orders = read(sim, "orders")
    assert orders == [o for o in all_orders if o["ordered_at"][:10] <= "2019-03-12"]
    ids = {o["id"] for o in orders}
    assert read(today, "items") == [i for i in read(sim, "items") if i["order_id"] in ids]
    buyers = {o["customer"] for o in orders}
    assert [c["id"] for c in read(today, "customers")] == [
        c["id"] for c in read(sim, "customers") if c["id"] in buyers
    ]
    # Brooklyn opens on the new day: one more store; products and supplies as simulated.
    assert [s["name"] for s in read(yesterday, "stores")] == ["Philadelphia"]
    assert [s["name"] for s in read(today, "stores")] == ["Philadelphia", "Brooklyn"]
    for table in ("products", "supplies"):
        assert filecmp.cmp(today / f"raw_{table}.csv", sim / f"raw_{table}.csv", False)
    # Yesterday's rows are a prefix of today's (the source only appends).
    for table in ("customers", "orders", "items"):
        old = read(yesterday, table)
        assert read(today, table)[: len(old)] == old
    assert_rows_valid(today)


def test_read_and_write_keep_the_simulator_bytes(sim, tmp_path):
    scenarios.write_folder(scenarios.read_folder(sim), tmp_path)
    for table in data.TABLES:
        assert filecmp.cmp(tmp_path / f"raw_{table}.csv", sim / f"raw_{table}.csv", False)


# ------------------------------------------------------------------ defects


def test_the_corpus_covers_every_family_and_each_kind_once():
    assert len(scenarios.DEFECTS) >= 12
    families = Counter(d.family for d in scenarios.DEFECTS.values())
    assert set(families) == {"volume", "distribution", "time", "consistency"}
    defect_scenarios = [s for s in scenarios.SCENARIOS.values() if s.defect]
    assert sorted(s.defect for s in defect_scenarios) == sorted(scenarios.DEFECTS)
    assert len({s.base for s in defect_scenarios}) == 1
    assert scenarios.SCENARIOS["day_missing"].new_days == ["2019-04-24", "2019-04-25"]


@pytest.mark.parametrize("name", sorted(scenarios.DEFECTS))
def test_defect_keeps_every_row_valid_and_is_deterministic(name, clean, tmp_path):
    what = scenarios.apply_defect(name, clean, tmp_path / "a")
    assert what and scenarios.apply_defect(name, clean, tmp_path / "b") == what
    for table in data.TABLES:
        a, b = tmp_path / "a" / f"raw_{table}.csv", tmp_path / "b" / f"raw_{table}.csv"
        assert a.read_bytes() == b.read_bytes(), f"{name}: {table} differs between two runs"
        assert a.read_bytes().splitlines()[0] == (clean / a.name).read_bytes().splitlines()[0]
    assert_rows_valid(tmp_path / "a")
    assert any(
        (tmp_path / "a" / f"raw_{t}.csv").read_bytes() != (clean / f"raw_{t}.csv").read_bytes()
        for t in data.TABLES
    ), f"{name} changed nothing"


def _amounts(orders, column="subtotal"):
    return [int(o[column]) for o in orders]


def _unchanged_before(name, clean, out, day):
    before = [o for o in read(clean, "orders") if o["ordered_at"][:10] < day]
    assert [o for o in read(out, "orders") if o["ordered_at"][:10] < day] == before, name


def test_each_defect_contains_its_defect(clean, tmp_path):
    """What each defect changes, measured on its output against the clean folder."""
    orders, items = read(clean, "orders"), read(clean, "items")
    days = sorted(by_day(orders))
    newest, n = days[-1], by_day(orders)[days[-1]]
    today = on_day(orders, newest)
    rates = {s["id"]: Decimal(s["tax_rate"]) for s in read(clean, "stores")}

    def out(name):
        folder = tmp_path / name
        scenarios.apply_defect(name, clean, folder)
        return folder, read(folder, "orders")

    folder, got = out("day_missing")
    assert by_day(got)[days[-2]] == 0 and by_day(got)[newest] == n
    assert len(read(folder, "items")) < len(items)

    folder, got = out("day_loaded_twice")
    assert by_day(got)[newest] == 2 * n
    _unchanged_before("day_loaded_twice", clean, folder, newest)
    ids = {o["id"] for o in on_day(got, newest)}
    ids_clean = {o["id"] for o in today}
    assert len(ids) == 2 * n
    day_items = [i for i in read(folder, "items") if i["order_id"] in ids]
    assert len(day_items) == 2 * len([i for i in items if i["order_id"] in ids_clean])

    folder, _ = out("table_10x")
    assert len(read(folder, "customers")) == 10 * len(read(clean, "customers"))

    folder, got = out("slow_leak")
    kept = [by_day(got)[d] / by_day(orders)[d] for d in days[-7:]]
    assert kept[0] == pytest.approx(0.95, abs=0.02) and kept[-1] == pytest.approx(0.5, abs=0.02)
    assert kept == sorted(kept, reverse=True)
    _unchanged_before("slow_leak", clean, folder, days[-7])

    _, got = out("dollars_not_cents")
    assert sum(_amounts(on_day(got, newest))) == pytest.approx(sum(_amounts(today)) / 100, rel=0.05)

    _, got = out("level_jump")
    assert statistics.mean(_amounts(on_day(got, newest))) == pytest.approx(
        1.5 * statistics.mean(_amounts(today)), rel=0.01
    )

    _, got = out("spread_jump")
    new = _amounts(on_day(got, newest))
    assert sum(new) == sum(_amounts(today))
    assert statistics.pstdev(new) > 1.4 * statistics.pstdev(_amounts(today))

    _, got = out("category_collapse")
    assert (
        len({o["store_id"] for o in today}) == 2
        and len({o["store_id"] for o in on_day(got, newest)}) == 1
    )

    folder, got = out("new_value_takes_over")
    assert read(folder, "products")[-1]["sku"] == "JAF-006"
    day_items = [i for i in read(folder, "items") if i["order_id"] in {o["id"] for o in today}]
    assert sum(i["sku"] == "JAF-006" for i in day_items) == round(0.8 * len(day_items))

    _, got = out("zero_share_jump")
    assert _amounts(on_day(got, newest), "tax_paid") == [0] * n

    _, got = out("timezone_shift")
    shifted = {o["id"]: dt.datetime.fromisoformat(o["ordered_at"]) for o in got}
    for o in today:
        assert shifted[o["id"]] - dt.datetime.fromisoformat(o["ordered_at"]) == dt.timedelta(
            hours=7
        )

    _, got = out("year_typo")
    assert by_day(got)[newest] == 0 and len(got) == len(orders)
    assert sum(o["ordered_at"][:10] < days[0] for o in got) == n

    _, got = out("back_in_time")
    assert max(by_day(got)) == (dt.date.fromisoformat(newest) - dt.timedelta(days=3)).isoformat()

    _, got = out("tax_rate_mismatch")
    for o in on_day(got, newest):
        if o["subtotal"] == "0":
            continue
        rate = Decimal(o["tax_paid"]) / Decimal(o["subtotal"])
        assert rate == pytest.approx(rates[o["store_id"]] + Decimal("0.02"), abs=Decimal("0.002"))

    _, got = out("swapped_amounts")
    assert _amounts(on_day(got, newest)) == _amounts(today, "tax_paid")

    folder, got = out("reference_price_change")
    prices = [int(p["price"]) for p in read(folder, "products")]
    assert prices == [100 * int(p["price"]) for p in read(clean, "products")] and got == orders

    folder, got = out("reference_rate_change")
    assert read(folder, "stores")[0]["tax_rate"] == "0.006" and got == orders


def test_a_defect_that_cannot_apply_says_so(sim, tmp_path):
    """One store only: nothing to collapse onto, and the defect refuses."""
    scenarios.snapshot(sim, tmp_path / "clean", "2018-12-01")
    with pytest.raises(scenarios.NotApplicable, match="two stores"):
        scenarios.apply_defect("category_collapse", tmp_path / "clean", tmp_path / "out")


def test_clean_scenarios_cover_weekends_a_store_opening_and_two_new_days(sim):
    clean = [s for s in scenarios.SCENARIOS.values() if not s.defect]
    assert len(clean) >= 6 and len({(s.base.sim, s.base.published) for s in clean}) == len(clean)
    weekdays = {dt.date.fromisoformat(s.today).strftime("%a") for s in clean}
    assert {"Sat", "Sun", "Mon"} <= weekdays
    assert any(len(s.new_days) == 2 for s in clean)
    assert len({s.base.sim.seed for s in clean}) >= 3
    opening = {s["opened_at"][:10] for s in read(sim, "stores")}
    assert any(s.today in opening and s.base.published not in opening for s in clean)
    for s in scenarios.SCENARIOS.values():  # today lies inside its simulation
        assert (dt.date.fromisoformat(s.today) - scenarios.FIRST_DAY).days < s.base.sim.days


# ------------------------------------------------------------------ classification


def _record(exit_code, *steps):
    return {"exit_code": exit_code, "status": "x", "steps": list(steps)}


def _step(name, status="ok", anomalies=None, message="", exit_code=0, **detail):
    if anomalies is not None:
        detail = {"checks": 12, "anomalies": anomalies, **detail}
    return {
        "name": name,
        "status": status,
        "message": message,
        "exit_code": exit_code,
        "detail": detail,
    }


STOP = {"severity": "stop", "line": "stg_orders 2019-04-24: 700 rows, expected 300-400"}
WARN = {"severity": "warn", "line": "stg_orders 2019-04-24: amount mean 21.0, expected 12-16"}


@pytest.mark.parametrize(
    ("record", "clean", "result"),
    [
        (_record(1, _step("monitor", "failed", [WARN, STOP], exit_code=1)), False, "caught"),
        (_record(0, _step("monitor", "ok", [WARN]), _step("publish")), False, "warned"),
        (_record(0, _step("monitor", "ok", []), _step("publish")), False, "missed"),
        (_record(0, _step("publish")), False, "missed"),
        (
            _record(
                1, _step("publish", "failed", exit_code=1, row_count_changes=["stg_customers: 9"])
            ),
            False,
            "caught by publish",
        ),
        (_record(1, _step("validate_transformed", "failed", exit_code=1)), False, "corpus bug"),
        (_record(3, _step("seed", "failed", exit_code=3)), False, "error"),
        (_record(1, _step("monitor", "failed", [], exit_code=1)), False, "error"),
        (_record(0, _step("monitor", "ok", []), _step("publish")), True, "ok"),
        (_record(0, _step("monitor", "ok", [WARN]), _step("publish")), True, "false alarm"),
        (_record(1, _step("monitor", "failed", [STOP], exit_code=1)), True, "false alarm"),
        (None, True, "error"),
    ],
)
def test_classify(record, clean, result):
    assert quality_eval.classify(record, clean)["result"] == result


def test_report_and_failure():
    def outcome(kind, result, anomalies=()):
        return quality_eval.Outcome(
            kind, kind, "volume", "b", ["2019-04-24"], result, anomalies=list(anomalies)
        )

    good = [outcome("day_missing", "caught", [WARN, STOP]), outcome("clean", "ok")]
    assert not quality_eval.eval_failed(good)
    text = quality_eval.report(good)
    assert "day_missing" in text and STOP["line"] in text.splitlines()[2]  # stop first
    assert "0 of 1 with false alarms" in text
    assert quality_eval.eval_failed([outcome("table_10x", "missed")])
    assert not quality_eval.eval_failed([outcome("table_10x", "caught by publish")])
    assert quality_eval.eval_failed([outcome("clean", "false alarm", [WARN])])
    assert WARN["line"] in quality_eval.report([outcome("clean", "false alarm", [WARN])])


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_quality_eval_end_to_end(tmp_path, monkeypatch, capsys):
    """The runner on a small base: yesterday publishes, a clean next day publishes
    without anomalies (or is a false alarm named as such), and ten times the
    customers never publishes. Results come from the real run records."""
    base = scenarios.Base("e2e-base", scenarios.Simulation(7, 64), "2018-11-01")
    clean = scenarios.Scenario("e2e_clean", base, "2018-11-02")
    defect = scenarios.Scenario("e2e_table_10x", base, "2018-11-02", defect="table_10x")
    monkeypatch.setattr(scenarios, "SCENARIOS", {s.name: s for s in (clean, defect)})
    code = quality_eval.main(
        ["--only", "e2e_clean", "e2e_table_10x", "--out", str(tmp_path), "--keep"]
    )
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    by_name = {o["scenario"]: o for o in results["outcomes"]}
    work = Path(out.split("kept: ")[1].split()[0])
    records = work / "records"
    try:
        assert (tmp_path / "cache" / "seed7-64d" / "raw_orders.csv").exists()
        # The last run was the defect's: its record is the one classified.
        last = json.loads((records / "qe-e2e_table_10x.json").read_text())
        assert last["exit_code"] == 1 and last["status"] == "gate failed"
        failed_step = next(s for s in last["steps"] if s["status"] == "failed")["name"]
        expected = {"monitor": "caught", "publish": "caught by publish"}[failed_step]
        assert by_name["e2e_table_10x"]["result"] == expected
        if expected == "caught by publish":
            assert "customers" in by_name["e2e_table_10x"]["message"]
        before, after = re.fullmatch(
            r"customers: (\d+) -> (\d+) rows", by_name["e2e_table_10x"]["changed"]
        ).groups()
        assert int(after) == 10 * int(before) > 1000
        # The clean next day publishes unless a monitor stops it (a false alarm).
        clean_record = json.loads((records / "qe-e2e_clean.json").read_text())
        assert by_name["e2e_clean"]["result"] in ("ok", "false alarm")
        assert (clean_record["exit_code"] == 0) == (by_name["e2e_clean"]["failed_step"] == "")
        assert clean_record["exit_code"] in (0, 1)
        assert (by_name["e2e_clean"]["result"] == "ok") == (not by_name["e2e_clean"]["anomalies"])
        assert by_name["e2e_clean"]["new_days"] == ["2018-11-02"]
        assert code == (
            1
            if quality_eval.eval_failed([quality_eval.Outcome(**o) for o in results["outcomes"]])
            else 0
        )
        assert "e2e_table_10x" in out and "Clean next-day snapshots" in out
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("orders", "order_total", "1"),  # subtotal + tax_paid is not order_total
        ("orders", "ordered_at", "2999-01-01T10:00:00"),  # in the future
        ("items", "order_id", "no-such-order"),  # a dangling reference
        ("stores", "tax_rate", "0.5"),  # above max
        ("customers", "id", ""),  # a blank key
    ],
)
def test_the_validity_check_sees_an_invalid_row(clean, tmp_path, table, column, value):
    """The check the defects pass would fail on a row the pipeline quarantines."""
    tables = scenarios.read_folder(clean)
    tables[table].rows[-1][tables[table].col(column)] = value
    scenarios.write_folder(tables, tmp_path)
    with pytest.raises(AssertionError):
        assert_rows_valid(tmp_path)
