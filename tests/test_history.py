"""The quality history (dq.history) and where a run's anomalies are named: the
run summary, the notifications and the settings that switch the monitors off."""

from __future__ import annotations

import datetime as dt

import pytest

from dq import config, history, notify, pipeline, summary
from dq.errors import BadInput

LINE = "stg_orders 2018-09-27: 174 rows, expected 46–119 for a Thursday"
WARN = "stg_orders 2018-09-27: share of zeros in tax_paid 85%, expected 0%–10% for a Thursday"


def _observation(status: str = "ok", severity: str = "stop", line: str = LINE) -> dict:
    return {
        "source": "orders", "tbl": "stg_orders", "monitor": "volume", "metric": "volume",
        "segment": "", "bucket": "2018-09-27", "observed": 174.0, "expected": 80.0,
        "lower": 46.0, "upper": 119.0, "n": 174, "status": status, "severity": severity,
        "line": line,
    }  # fmt: skip


def _save(con, run_id: str, started: str, value: float) -> None:
    candidates = [("orders", "stg_orders", "volume", "", "2018-09-27", value, int(value))]
    layers = [("stg_orders", 100, 2, 0.02)]
    history.save_run(con, run_id, started, [_observation()], candidates, layers)


def test_a_published_run_becomes_the_series_and_a_failed_one_leaves_only_its_checks(tmp_path):
    path = tmp_path / "history" / "quality.db"
    with history.connect(path) as con:
        _save(con, "good", "2026-11-27T10:00:00+00:00", 80.0)
        history.promote(con, "good")
        history.finish(con, "good", "published", 0, "2026-11-27T10:01:00+00:00")
        _save(con, "bad", "2026-11-28T10:00:00+00:00", 174.0)
        history.finish(con, "bad", "gate failed", 1, "2026-11-28T10:01:00+00:00")
    with history.connect(path) as con:
        assert history.published_series(con, "orders") == {
            ("volume", ""): {"2018-09-27": (80.0, 80)}
        }
        assert con.execute("select count(*) from candidates").fetchone() == (0,)
        runs = con.execute("select run_id, status, published from runs order by 1").fetchall()
        assert runs == [("bad", "gate failed", 0), ("good", "published", 1)]
        # What the failed run measured is kept: the trends page and people read it.
        kept = con.execute("select count(*) from observations where run_id = 'bad'").fetchone()
        assert kept == (1,)


def test_retention_deletes_old_runs_but_keeps_the_published_series(tmp_path):
    path = tmp_path / "quality.db"
    with history.connect(path) as con:
        _save(con, "old", "2025-01-01T00:00:00+00:00", 80.0)
        history.promote(con, "old")
        _save(con, "new", "2026-11-27T00:00:00+00:00", 81.0)
        assert history.retain(con, 400, today=dt.date(2026, 11, 28)) == 1
        assert [r for (r,) in con.execute("select run_id from runs")] == ["new"]
        assert con.execute("select count(*) from observations").fetchone() == (1,)
        assert con.execute("select count(*) from layers").fetchone() == (1,)
        assert history.published_series(con, "orders")[("volume", "")]["2018-09-27"][0] == 80.0
        assert history.retain(con, 0) == 0  # 0 keeps everything


def _run(tmp_path, anomalies: list[dict]) -> pipeline.Run:
    run = pipeline.Run(settings=config.for_root(tmp_path), run_id="20261128T120000Z-abcd")
    stop = any(a["severity"] == "stop" for a in anomalies)
    run.steps.append(
        pipeline.StepRecord(
            "monitor",
            "failed" if stop else "ok",
            1.0,
            message=("anomaly monitors found:\n  " + LINE) if stop else "",
            exit_code=pipeline.EXIT_GATE if stop else 0,
            detail={"checks": 52, "anomalies": anomalies, "learning": []},
        )
    )
    run.exit_code = pipeline.EXIT_GATE if stop else pipeline.EXIT_OK
    run.status = "gate failed" if stop else "published"
    return run


def test_the_summary_and_the_notification_name_each_anomaly_in_one_line(tmp_path):
    run = _run(
        tmp_path,
        [_observation("anomaly", "stop"), _observation("anomaly", "warn", WARN)],
    )
    text = summary.render(run)
    assert "Anomaly monitors: 52 checks, 2 anomalies" in text
    assert f"  STOP  {LINE}" in text and f"  warn  {WARN}" in text
    _, body = notify.compose(run, {})
    assert f"  - STOP  {LINE}" in body and f"  - warn  {WARN}" in body
    quiet = _run(tmp_path, [])
    assert "Anomalies" not in notify.compose(quiet, {})[1]


def test_the_monitors_switch(monkeypatch):
    monkeypatch.setenv("DQ_MONITORS", "off")
    assert config.load().monitors is False
    monkeypatch.setenv("DQ_MONITORS", "on")
    assert config.load().monitors is True
    monkeypatch.setenv("DQ_MONITORS", "sometimes")
    with pytest.raises(BadInput, match="DQ_MONITORS"):
        config.load()
