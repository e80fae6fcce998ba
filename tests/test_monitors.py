"""Anomaly monitors: the ranges (dq.anomaly), the declarations (dq.monitor_spec)
and the checks (dq.monitors) on the bundled month, in-process.

Each scenario is a next-day delivery: "yesterday" (the month without its last
day) is measured and promoted into a fresh quality history as a publish would,
then "today" (the whole month, edited with SQL so that every row stays valid)
is checked against it. The pipeline runs these same functions in its
``monitor`` step (tests/test_pipeline_e2e.py runs one for real).
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import copy_project

from dq import anomaly, config, history, monitors, targets
from dq.contracts import ContractError
from dq.sources import load_sources

LAST_DAY = "2018-09-29"  # the bundled month's last day (a Saturday)


# ------------------------------------------------------------------ dq.anomaly


def _shop(days: int, seed: int = 1, growth: float = 0.004) -> dict:
    """Orders per day of a growing shop: weekdays ~100, weekends ~30, Poisson noise."""
    rng = random.Random(seed)
    start = dt.date(2024, 1, 1)
    out = {}
    for i in range(days):
        day = start + dt.timedelta(days=i)
        mean = (100 if day.weekday() < 5 else 30) * (1 + growth) ** i
        # Poisson by inversion is slow for large means; a rounded normal is fine here.
        value = max(0, round(rng.gauss(mean, mean**0.5)))
        out[day] = (float(value), value)
    return out


def _backtest(series: dict, kind: str = anomaly.COUNT, tuning: anomaly.Tuning | None = None):
    tuning = tuning or anomaly.Tuning()
    checked, alarms = 0, []
    for day, (value, n) in sorted(series.items()):
        training = anomaly.training_window(series, day, tuning)
        expected = anomaly.band(training, day, n, kind, tuning)
        if expected is not None:
            checked += 1
            if not expected.holds(value):
                alarms.append((day, value, expected))
    return checked, alarms


def test_a_growing_shop_with_quiet_weekends_raises_almost_no_alarm():
    """Poisson-like noise has tails: a few alarms in a couple of thousand checks
    are chance (jafgen's own data is quieter: bench/backtest_monitors.py);
    ignoring the weekly pattern gives dozens."""
    checked, alarms = 0, []
    for seed in range(10):
        n, found = _backtest(_shop(200, seed))
        checked, alarms = checked + n, alarms + found
    assert checked > 1500
    assert len(alarms) <= 4, alarms
    _, flat = _backtest(_shop(200), tuning=anomaly.Tuning(seasonality="none"))
    assert len(flat) > 20  # the weekly pattern is what keeps it quiet


def test_weekday_and_weekend_get_their_own_range_and_growth_is_followed():
    series = _shop(120)
    monday, saturday = dt.date(2024, 4, 29), dt.date(2024, 5, 4)
    tuning = anomaly.Tuning()
    ranges = {
        day: anomaly.band(anomaly.training_window(series, day, tuning), day, 100, "count", tuning)
        for day in (monday, saturday)
    }
    assert ranges[saturday].upper < ranges[monday].lower  # not one range for every day
    # 119 days of 0.4 % growth: the expected Monday is above the first Mondays.
    assert ranges[monday].expected > 1.3 * 100


def test_a_doubled_or_missing_day_and_too_little_history():
    series = _shop(90)
    day = max(series)
    tuning = anomaly.Tuning()
    training = anomaly.training_window(series, day, tuning)
    expected = anomaly.band(training, day, 100, "count", tuning)
    value = series[day][0]
    assert expected.holds(value)
    assert not expected.holds(2 * value)
    assert not expected.holds(0)
    short = dict(list(training.items())[-10:])
    assert anomaly.band(short, day, 100, "count", tuning) is None  # learning


def test_shares_have_a_chance_floor_and_an_absolute_minimum_change():
    days = {dt.date(2024, 1, 1) + dt.timedelta(days=i): (0.0, 50) for i in range(40)}
    tuning = anomaly.Tuning(min_change=0.1)
    expected = anomaly.band(days, dt.date(2024, 2, 15), 50, anomaly.SHARE, tuning)
    assert expected.lower == 0.0
    assert 0.09 < expected.upper < 0.2  # always 0 before, yet 5 % tomorrow is no alarm
    assert not expected.holds(0.5)


# ------------------------------------------------------------------ declarations


def _declare(seeds: Path, text: str) -> None:
    path = seeds / "orders.yml"
    body = path.read_text(encoding="utf-8")
    body = body[: body.index("monitors:")] + text
    path.write_text(body, encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("monitors:\n  volum: {}\n", "unknown monitor setting 'volum'"),
        ("monitors:\n  time: ordered_at\n  volume: {severity: loud}\n", "severity must be"),
        ("monitors:\n  time: customer_id\n", "must name a date or timestamp column"),
        ("monitors:\n  time: ordered_at\n  volume: {by: store}\n", "volume by store: no column"),
        (
            "monitors:\n  time: ordered_at\n  ratios:\n    - {name: r, numerator: x,"
            " denominator: products.price}\n",
            "does not reference products",
        ),
        ("monitors:\n  sensitivity: -1\n", "sensitivity must be a number"),
    ],
)
def test_a_wrong_monitor_declaration_names_file_line_and_column(tmp_path, text, message):
    seeds = tmp_path / "seeds"
    shutil.copytree(Path(__file__).parent.parent / "seeds", seeds)
    _declare(seeds, text)
    with pytest.raises(ContractError) as caught:
        load_sources(seeds)
    problems = [p for p in caught.value.problems if message in str(p)]
    assert problems, caught.value.problems
    assert problems[0].path.name == "orders.yml" and problems[0].line is not None


def test_defaults_and_overrides():
    seeds = Path(__file__).parent.parent / "seeds"
    orders = load_sources(seeds)["orders"].monitors
    assert orders.time == "ordered_at"
    assert orders.check("volume").option("by") == "location_id"
    assert orders.check("volume").severity == "stop"
    assert orders.check("spread").severity == "warn"
    assert orders.tuning.seasonality == "day_of_week"
    assert load_sources(seeds)["customers"].monitors.time is None  # rows + reference


# ------------------------------------------------------------------ dq.monitors


@pytest.fixture(scope="module")
def month(bundled_run) -> Path:
    """The published warehouse of the bundled month (read-only here)."""
    root, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "warehouse" / "jaffle_shop.db"


@pytest.fixture
def shop(tmp_path, month):
    """A project whose quality history holds "yesterday" as published, and a
    function that checks "today" (the month after ``edits``)."""
    root = copy_project(tmp_path / "project")
    settings = config.for_root(root)
    sources = load_sources(root / "seeds")
    yesterday = tmp_path / "yesterday.db"
    shutil.copy(month, yesterday)
    _edit(
        yesterday,
        f"delete from stg_items where order_id in"
        f" (select order_id from stg_orders where ordered_at >= '{LAST_DAY}')",
        f"delete from stg_orders where ordered_at >= '{LAST_DAY}'",
    )
    _publish(settings, yesterday, sources, "yesterday")

    def today(*edits: str) -> monitors.Report:
        db = tmp_path / "today.db"
        shutil.copy(month, db)
        _edit(db, *edits)
        return _check(settings, db, sources)

    return today


def _check(settings, db: Path, sources) -> monitors.Report:
    """The monitors on ``db`` as a run's build on the SQLite target."""
    build = config.Build(db.parent / f"build-{db.stem}")
    build.root.mkdir(exist_ok=True)
    shutil.copy(db, build.db)
    return monitors.check_build(settings, targets.of(settings), build, sources)


def _edit(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    with con:
        for statement in statements:
            con.execute(statement)
    con.close()


def _publish(settings, db: Path, sources, run_id: str) -> None:
    report = _check(settings, db, sources)
    assert not report.anomalies, [o.line for o in report.anomalies]
    with history.connect(settings.history_db) as con:
        history.save_run(con, run_id, "2026-11-27T00:00:00+00:00", [], report.candidates, [])
        history.promote(con, run_id)
    shutil.copy(db, settings.published_db)


def _lines(report) -> list[str]:
    return [f"{o.severity} {o.monitor} {o.line}" for o in report.anomalies]


def test_a_clean_next_day_raises_nothing_and_checks_only_the_new_day(shop):
    report = shop()
    assert report.anomalies == []
    days = {o.bucket for o in report.observations if o.monitor == "volume"}
    assert days == {LAST_DAY}


def test_a_day_loaded_twice_with_fresh_ids(shop):
    report = shop(
        f"insert into stg_orders select order_id || '-again', customer_id, ordered_at,"
        f" location_id, subtotal, tax_paid, order_total from stg_orders"
        f" where ordered_at >= '{LAST_DAY}'"
    )
    lines = _lines(report)
    # 40 orders on a Saturday is within chance of the volume range (20 expected,
    # Saturdays vary a lot); that every order has a twin is not.
    assert lines == [
        f"stop duplicates stg_orders {LAST_DAY}: share of rows repeating another row but"
        " for the key 50%, expected 0%–10% for a Saturday"
    ]
    assert report.stops


def test_amounts_in_dollars_instead_of_cents(shop):
    report = shop(
        f"update stg_orders set subtotal = round(subtotal / 100, 2), tax_paid = 0,"
        f" order_total = round(subtotal / 100, 2) where ordered_at >= '{LAST_DAY}'"
    )
    monitors_found = {o.monitor for o in report.stops}
    assert {"level", "ratios"} <= monitors_found, _lines(report)


def test_timestamps_shifted_by_a_time_zone(shop):
    report = shop(
        f"update stg_orders set ordered_at = datetime(ordered_at, '+7 hours')"
        f" where ordered_at >= '{LAST_DAY}'"
    )
    assert any(o.monitor == "clock" for o in report.stops), _lines(report)


def test_a_published_day_rewritten_and_data_going_back_in_time(shop):
    report = shop("delete from stg_orders where ordered_at like '2018-09-20%' and rowid % 2 = 0")
    history_lines = [o.line for o in report.stops if o.monitor == "history"]
    assert history_lines and "2018-09-20" in history_lines[0], _lines(report)
    back = shop("delete from stg_orders where ordered_at >= '2018-09-26'")
    assert any("went back in time" in o.line for o in back.stops), _lines(back)


def test_rows_dated_before_the_published_data(shop):
    report = shop(
        "update stg_orders set ordered_at = '2017' || substr(ordered_at, 5)"
        f" where ordered_at >= '{LAST_DAY}'"
    )
    assert any(o.monitor == "range" and "before the published" in o.line for o in report.stops)


def test_reference_data_changed_by_orders_of_magnitude(shop):
    report = shop(
        "update stg_products set product_price = product_price * 100",
        "update stg_stores set tax_rate = tax_rate / 10",
    )
    changed = {o.metric for o in report.stops if o.monitor == "reference"}
    assert changed == {"reference:product_price", "reference:tax_rate"}, _lines(report)


def test_a_table_ten_times_larger(shop):
    copies = " union all ".join(
        f"select customer_id || '-{i}', customer_name from stg_customers" for i in range(9)
    )
    report = shop(f"insert into stg_customers {copies}")
    assert [o.tbl for o in report.stops if o.monitor == "rows"] == ["stg_customers"]


def test_a_category_that_collapses_to_one_value(shop):
    report = shop(
        "update stg_items set product_id = 'JAF-001' where order_id in"
        f" (select order_id from stg_orders where ordered_at >= '{LAST_DAY}')"
    )
    assert any("product_id = 'JAF-001'" in o.line for o in report.stops), _lines(report)


def test_csv_values_in_a_line_are_escaped_for_data_docs():
    hostile = monitors.Observation(
        "items", "stg_items", "categories", "product_id=<x>.share", "", LAST_DAY, 0.9, 0.1, 0,
        0.3, 10, "anomaly", "stop", "stg_items: share of product_id = '<script>x</script>' 90%",
    )  # fmt: skip
    (expectation,) = monitors.expectations([hostile])["monitors_items"]
    assert "<script>" not in expectation.description
    assert "&lt;script&gt;" in expectation.description


def test_a_joined_source_is_read_once_and_measured_the_same(bundled_run):
    """Items take their day from orders: the join is staged once as a temporary
    table (issue 13) and every series equals the one read through the join."""
    root, _ = bundled_run
    settings = config.for_root(root)
    sources = load_sources(root / "seeds")
    target = targets.of(settings)
    con = target.connect()
    statements: list[str] = []
    con.set_trace_callback(statements.append)
    try:
        items = sources["items"]
        staged = monitors.measure(con, sources, items, stage=target.stage_rows)
        reads_of_the_join = [s for s in statements if " join " in s.lower()]
        joined = monitors.measure(con, sources, items)
    finally:
        con.close()
    assert len(reads_of_the_join) == 1 and "create temp table" in reads_of_the_join[0]
    assert {k: v.points for k, v in staged.items()} == {k: v.points for k, v in joined.items()}
    assert any(v.points for v in staged.values())
