"""The Quality trends page (``dq.trends``) from a history written with ``dq.history``'s
own functions: what it shows, that every CSV value stays text, that its specs are
ones the page's vega-lite 5.23 can draw, and that it never fails a run."""

from __future__ import annotations

import datetime as dt
import json
import logging
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from dq import config, history, pipeline, trends
from tests.conftest import visible_text

#: A value that would run, or end a <script> block, if the page used it as markup.
HOSTILE = "<script>alert(1)</script></script><!--\u2028&amp;"
DAYS = [(dt.date(2018, 9, 1) + dt.timedelta(days=d)).isoformat() for d in range(14)]
VL_SCHEMA = config.PROJECT_ROOT / "node_modules" / "vega-lite" / "build" / "vega-lite-schema.json"


def _observation(day: str, observed: float, *, status="ok", metric="volume", **fields) -> dict:
    row = {
        "source": "orders",
        "tbl": "stg_orders",
        "monitor": "volume" if metric == "volume" else "category",
        "metric": metric,
        "segment": "",
        "bucket": day,
        "observed": observed,
        "expected": 62.0,
        "lower": 50.0,
        "upper": 75.0,
        "n": 7,
        "status": status,
        "severity": "stop",
        "line": f"stg_orders {day}: {observed:g} rows",
    }
    return {**row, **fields}


def sample_history(path: Path, runs: int = 8, defect: bool = True) -> None:
    """``runs`` published runs, one more day each (orders by day; items by a
    hostile segment), then (``defect``) a run that found a volume anomaly and a
    category anomaly whose value and line are :data:`HOSTILE`, and did not publish."""
    with history.connect(path) as con:
        for i in range(runs):
            run, day = f"run-{i:02d}", DAYS[i + 5]
            share = _observation(
                day,
                0.1 * (i % 3),
                metric=f"store_id={HOSTILE}.share",
                segment=HOSTILE,
                severity="warn",
                expected=0.1,
                lower=0.0,
                upper=0.3,
            )
            candidates = [
                ("orders", "stg_orders", "volume", "", d, 60 + j % 5, 7)
                for j, d in enumerate(DAYS[: i + 6])
            ]
            candidates += [
                ("items", "stg_items", "volume", segment, d, 40 + j % 3, 7)
                for j, d in enumerate(DAYS[: i + 6])
                for segment in (HOSTILE, "store 2")
            ]
            history.save_run(
                con,
                run,
                f"2026-11-{10 + i:02d}T06:00:00+00:00",
                [_observation(day, 60 + i), share],
                candidates,
                [("raw_orders", 1700, 10 + i, (10 + i) / 1700), ("raw_items", 2500, 5, 0.002)],
            )
            history.promote(con, run)
            history.finish(con, run, "published", 0, f"2026-11-{10 + i:02d}T06:01:00+00:00")
        if not defect:
            return
        day = DAYS[runs + 5]
        history.save_run(
            con,
            "run-bad",
            "2026-11-30T06:00:00+00:00",
            [
                _observation(day, 142, status="anomaly", line=f"{day}: 142 rows {HOSTILE}"),
                _observation(
                    day,
                    0.9,
                    status="anomaly",
                    metric=f"store_id={HOSTILE}.share",
                    segment=HOSTILE,
                    severity="warn",
                    line=f"share of {HOSTILE} jumped",
                    lower=0.0,
                    upper=0.3,
                ),
            ],
            [("orders", "stg_orders", "volume", "", day, 142, 7)],
            [("raw_orders", 1800, 40, 40 / 1800)],
        )


class _Scripts(HTMLParser):
    """Every <script> of a page: its attributes and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data):
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


def _scripts(page: str) -> list[tuple[dict, str]]:
    parser = _Scripts()
    parser.feed(page)
    return parser.scripts


def _specs(page: str) -> dict[str, dict]:
    return {
        attrs["data-chart"]: json.loads(text)
        for attrs, text in _scripts(page)
        if attrs.get("type") == "application/json"
    }


def _layers(spec: dict, name: str) -> list[dict]:
    return [layer for layer in spec.get("layer", []) if layer.get("name") == name]


def _values(spec: dict, layer: dict | None = None) -> list[dict]:
    """The data rows a layer (or the whole chart) draws, inline or named."""
    data = (layer or {}).get("data") or spec["data"]
    return data["values"] if "values" in data else spec["datasets"][data["name"]]


@pytest.fixture
def settings(tmp_path) -> config.Settings:
    return config.for_root(tmp_path / "project")


@pytest.fixture
def rendered(settings) -> str:
    sample_history(settings.history_db)
    return trends.render(settings).read_text(encoding="utf-8")


def test_empty_history_gives_a_clear_page(settings):
    page = trends.render(settings).read_text(encoding="utf-8")
    assert "No runs measured yet" in visible_text(page)
    assert not _specs(page)
    assert not settings.history_db.exists()  # reading never creates the database
    # An existing but empty database is the same.
    with history.connect(settings.history_db):
        pass
    assert "No runs measured yet" in trends.render(settings).read_text(encoding="utf-8")


def test_hostile_values_are_text_and_cannot_close_a_script(rendered):
    scripts = _scripts(rendered)
    # Only the page's own scripts: three vendor files, trends.js, and JSON data blocks.
    code = [a.get("src") for a, _ in scripts if a.get("type") != "application/json"]
    assert code == [*(f"vendor/{n}" for n in trends.VENDOR_FILES), "trends.js"]
    assert all(not text for a, text in scripts if "src" in a)
    for attrs, text in scripts:
        if attrs.get("type") == "application/json":
            assert not set("<>&\u2028\u2029") & set(text), attrs
    assert "<script>alert" not in rendered and "<!--" not in rendered
    # The table shows the lines, segments and metric names as text.
    shown = visible_text(rendered)
    assert f"share of {HOSTILE} jumped".replace("\u2028", " ") in shown
    table = rendered.split("<table id='anomalies'>")[1].split("</table>")[0]
    assert table.count("&lt;script&gt;alert(1)&lt;/script&gt;&lt;/script&gt;&lt;!--") == 4
    # The charts get the values unchanged, as data.
    specs = _specs(rendered)
    assert any(HOSTILE in json.dumps(spec, ensure_ascii=False) for spec in specs.values())


def test_script_json_round_trips_what_it_escapes():
    value = {"line": HOSTILE, "other": "a\u2029b > c & d"}
    text = trends.script_json(value)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == value


def test_anomalies_are_in_the_charts(rendered):
    specs = _specs(rendered)
    volume = specs["chart-volume-1"]  # items, orders: sorted
    assert volume["title"] == "orders: rows per day"
    (anomalies,) = _layers(volume, "anomalies")
    (point,) = _values(volume, anomalies)
    assert point["observed"] == 142 and point["line"].endswith(HOSTILE)
    assert anomalies["mark"]["color"] == "#c62828"
    assert {t["field"] for t in anomalies["encoding"]["tooltip"]} >= {"line", "observed"}
    (band,) = _layers(volume, "band")
    assert {(b["day"], b["lower"], b["upper"]) for b in _values(volume, band)} >= {
        (DAYS[5], 50.0, 75.0)
    }
    metrics = specs["chart-metrics"]
    values = _values(metrics)
    flagged = [v for v in values if v["status"] == "anomaly"]
    assert {v["observed"] for v in flagged} == {142, 0.9}
    # The selector starts on a series with an anomaly.
    (param,) = metrics["params"]
    assert param["value"] in {v["series"] for v in flagged}
    assert HOSTILE in " ".join(param["bind"]["options"])


def test_volume_published_segments_summed_and_the_unpublished_run_apart(rendered):
    specs = _specs(rendered)
    items = specs["chart-volume-0"]
    (line,) = _layers(items, "volume")
    values = _values(items, line)
    assert {v["kind"] for v in values} == {"published"}
    # Two segments of 40 rows, no total: summed.
    assert values[0] == {"day": DAYS[0], "date": DAYS[0], "rows": 80, "kind": "published"}
    orders = specs["chart-volume-1"]
    (line,) = _layers(orders, "volume")
    kinds = {v["kind"] for v in _values(orders, line)}
    assert kinds == {"published", "not published (run run-bad)"}
    unpublished = [v for v in _values(orders, line) if v["kind"] != "published"]
    assert unpublished == [
        {"day": DAYS[13], "date": DAYS[13], "rows": 142, "kind": "not published (run run-bad)"}
    ]


def test_unpublished_days_outlive_the_failed_run_until_a_run_publishes(settings):
    """Closing a failed run drops its candidate values; the days it checked still
    show (from its observations) until a newer run publishes."""
    sample_history(settings.history_db)
    with history.connect(settings.history_db) as con:
        history.finish(con, "run-bad", "gate failed", 1, "2026-11-30T06:02:00+00:00")
        assert not con.execute("select count(*) from candidates").fetchone()[0]
    page = trends.render(settings).read_text(encoding="utf-8")
    spec = _specs(page)["chart-volume-1"]
    (line,) = _layers(spec, "volume")
    assert [v for v in _values(spec, line) if v["kind"] != "published"] == [
        {"day": DAYS[13], "date": DAYS[13], "rows": 142, "kind": "not published (run run-bad)"}
    ]
    assert "gate failed" in visible_text(page)  # the latest run's status
    with history.connect(settings.history_db) as con:
        history.save_run(con, "run-fixed", "2026-12-01T06:00:00+00:00", [], [], [])
        history.promote(con, "run-fixed")
    spec = _specs(trends.render(settings).read_text(encoding="utf-8"))["chart-volume-1"]
    (line,) = _layers(spec, "volume")
    assert {v["kind"] for v in _values(spec, line)} == {"published"}


def test_rejected_share_per_run(rendered):
    spec = _specs(rendered)["chart-rejected"]
    values = _values(spec)
    assert len(values) == 8 * 2 + 1
    assert {v["table"] for v in values} == {"raw_orders", "raw_items"}
    assert spec["encoding"]["y"]["field"] == "share"


def test_specs_are_vega_lite_5_for_the_installed_vega_lite(rendered):
    """Altair 6 writes Vega-Lite 6; the page loads vega-lite 5.23: each spec is
    stamped 5.23 and valid under vega-lite 5.23's own schema."""
    installed = json.loads((VL_SCHEMA.parent.parent / "package.json").read_text())["version"]
    assert trends.VEGA_LITE_SCHEMA.endswith(f"/v{installed}.json")
    validator = jsonschema.Draft7Validator(json.loads(VL_SCHEMA.read_text()))
    specs = _specs(rendered)
    assert len(specs) == 4
    for chart, spec in specs.items():
        assert spec["$schema"] == trends.VEGA_LITE_SCHEMA, chart
        errors = [e.message for e in validator.iter_errors(spec)]
        assert not errors, (chart, errors[:3])


def test_render_copies_the_vendor_files_and_its_script(settings):
    out = trends.render(settings).parent
    modules = trends.node_modules()
    for name, path in trends.VENDOR_FILES.items():
        assert (out / "vendor" / name).read_bytes() == (modules / path).read_bytes()
    assert (out / "trends.js").read_bytes() == trends.SCRIPT.read_bytes()
    assert not list(out.rglob(".*.tmp"))


def test_conclude_writes_the_page_for_a_failed_run(settings):
    run = pipeline.begin(settings)
    concluded = pipeline.conclude(settings, run.run_id, run)
    assert concluded.exit_code != 0
    assert (settings.trends_dir / "index.html").is_file()


def test_a_render_failure_never_fails_or_hides_the_run(settings, monkeypatch, caplog):
    def broken(_settings):
        raise sqlite3_error

    sqlite3_error = RuntimeError("database disk image is malformed")
    monkeypatch.setattr(trends, "render", broken)
    run = pipeline.begin(settings)
    with caplog.at_level(logging.WARNING, logger="dq.pipeline"):
        concluded = pipeline.conclude(settings, run.run_id, run)
    assert concluded.exit_code == pipeline.EXIT_ENVIRONMENT  # the run's own outcome
    assert json.loads(concluded.record_path.read_text())["exit_code"] == pipeline.EXIT_ENVIRONMENT
    assert "Quality trends page was not updated: RuntimeError: database disk image" in caplog.text
