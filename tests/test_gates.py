"""In-process tests of single rules: the row-count gate, run ids, exit codes,
retention of builds and GX results, settings (issue 8, points 1, 4, 6, 9)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from dq import build, config, errors, pipeline, record
from dq.steps import row_count_changes
from tests.conftest import run_cli


def _settings(tmp_path: Path, **overrides) -> config.Settings:
    return config.for_root(tmp_path, **overrides)


# ----------------------------------------------------------- row-count gate


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ({"orders": 1000}, {"orders": 1000}, []),
        ({"orders": 1000}, {"orders": 701}, []),  # -29.9 %: within DQ_MAX_ROW_DROP
        (
            {"orders": 1000},
            {"orders": 699},
            ["orders: 1000 -> 699 rows (-30%; DQ_MAX_ROW_DROP=0.3)"],
        ),
        ({"customers": 163}, {"customers": 1000163}, ["customers: 163 -> 1000163 rows"]),
        ({"customers": 163}, {"customers": 326}, []),  # doubled: within DQ_MAX_ROW_GROWTH=1
        ({"stores": 6}, {"stores": 1}, []),  # fewer rows than DQ_ROW_CHANGE_MIN_ROWS moved
        ({"stores": 6}, {"stores": 60}, ["stores: 6 -> 60 rows"]),
        ({"supplies": 65}, {}, ["supplies: 65 rows -> table gone"]),
        ({}, {"promotions": 10}, []),  # a new source
        ({"rejected_orders": 0}, {"rejected_orders": 900}, []),  # budgets gate quarantine
    ],
)
def test_row_count_gate_names_the_table_and_the_setting(tmp_path, old, new, expected):
    changes = row_count_changes(old, new, _settings(tmp_path))
    assert len(changes) == len(expected)
    for change, start in zip(changes, expected, strict=True):
        assert change.startswith(start)
    if new.get("customers", 0) > 1000:
        assert "DQ_MAX_ROW_GROWTH=1" in changes[0]


def test_row_count_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DQ_MAX_ROW_DROP", "0.9")
    monkeypatch.setenv("DQ_MAX_ROW_GROWTH", "100")
    settings = config.load()
    assert row_count_changes({"orders": 1000}, {"orders": 200}, settings) == []
    assert row_count_changes({"c": 163}, {"c": 10000}, settings) == []
    monkeypatch.setenv("DQ_MAX_ROW_DROP", "a lot")
    with pytest.raises(errors.BadInput, match="DQ_MAX_ROW_DROP='a lot' is not a number"):
        config.load()


def test_a_malformed_setting_is_usage_exit_2(project):
    result = run_cli(project, "run", DQ_KEEP_FAILED_BUILDS="three")
    assert result.returncode == 2
    assert "DQ_KEEP_FAILED_BUILDS='three' is not a whole number" in result.stderr


def test_acceptance_is_recorded_with_who_and_why():
    accepted = pipeline.acceptance("row-counts", "  new extract  ")
    assert accepted["what"] == "row-counts" and accepted["reason"] == "new extract"
    assert accepted["by"] and accepted["at"]
    with pytest.raises(errors.BadInput, match="needs a --reason"):
        pipeline.acceptance("row-counts", " ")
    with pytest.raises(errors.BadInput, match="cannot accept"):
        pipeline.acceptance("everything", "because")


# ----------------------------------------------------------- run ids


@pytest.mark.parametrize("bad", ["../../x", "a/b", ".hidden", "", "x" * 101, "a b", "run\n1", "é"])
def test_run_ids_cannot_name_paths(bad):
    with pytest.raises(errors.BadInput, match="invalid run id"):
        record.check_run_id(bad)


def test_cli_refuses_a_run_id_that_escapes_runs(project):
    result = run_cli(project, "run", "--run-id", "../../x")
    assert result.returncode == 2
    assert "invalid run id" in result.stderr
    assert not (project / "warehouse").exists() and not (project.parent / "x.json").exists()


def test_good_run_ids_pass():
    assert record.check_run_id("manual-2026.11.28_1") == "manual-2026.11.28_1"
    assert record.RUN_ID.fullmatch(record.new_run_id())


# ----------------------------------------------------------- exit codes


def test_each_failure_has_its_own_exit_code():
    assert errors.classify(errors.GateFailed("x")) == 1
    assert errors.classify(errors.BadInput("x")) == 2
    assert errors.classify(errors.EnvironmentFailure("x")) == 3
    assert errors.classify(errors.Busy("x")) == 3
    assert errors.classify(OSError(28, "No space left on device")) == 3
    assert errors.classify(RuntimeError("a bug")) == 3
    assert errors.classify(errors.Terminated()) == 143
    assert errors.looks_environmental("sqlite3.OperationalError: database or disk is full")
    assert not errors.looks_environmental("near 'mm': syntax error")


# ----------------------------------------------------------- retention


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_published_builds_go_and_the_newest_failed_ones_stay(tmp_path):
    settings = _settings(tmp_path, keep_failed_builds=2)
    statuses = {}
    for age, (run_id, status) in enumerate(
        [
            ("published-1", "published"),
            ("failed-new", "gate failed"),
            ("running-1", "running"),
            ("failed-mid", "bad input"),
            ("failed-old", "environment failure"),
        ]
    ):
        folder = settings.build(run_id).root
        folder.mkdir(parents=True)
        (folder / "jaffle_shop.db").write_bytes(b"x")
        _age(folder, age * 60)
        statuses[run_id] = status
    (settings.builds_dir / "no-record-yet").mkdir()  # a run begun this instant
    removed = build.clean_builds(settings, statuses, settings.keep_failed_builds)
    assert sorted(removed) == ["failed-old", "published-1"]
    left = sorted(p.name for p in settings.builds_dir.iterdir())
    assert left == ["failed-mid", "failed-new", "no-record-yet", "running-1"]


def test_gx_results_and_pages_of_old_runs_are_removed(tmp_path):
    settings = _settings(tmp_path)
    for n in range(5):
        for layer in ("raw", "transformed"):
            for root, suffix in (
                (settings.validations_dir, ".json"),
                (settings.data_docs_dir / "validations", ".html"),
            ):
                folder = root / f"suite_{layer}" / f"run{n}-{layer}" / "20261128T000000Z"
                folder.mkdir(parents=True)
                (folder / f"batch{suffix}").write_text("{}")
                _age(folder.parent, (5 - n) * 60)
    removed = build.clean_validations(settings, keep_runs=2)
    assert removed == 6  # 3 runs x 2 layers
    for root in (settings.validations_dir, settings.data_docs_dir / "validations"):
        kept = sorted(p.name for p in root.glob("*/*"))
        assert kept == ["run3-raw", "run3-transformed", "run4-raw", "run4-transformed"]


def test_an_abandoned_record_is_closed_and_a_live_one_is_not(tmp_path):
    import subprocess
    import sys

    settings = _settings(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    gone = record.Run(
        settings=settings,
        run_id="gone",
        owner={"pid": int(dead), "create_time": 1.0, "host": record._host()},
    )
    gone.steps.append(record.StepRecord("seed", "running", 0.0))
    gone.save()
    alive = record.Run(settings=settings, run_id="alive", owner=record.process_identity())
    alive.steps.append(record.StepRecord("seed", "running", 0.0))
    alive.save()
    between = record.Run(
        settings=settings,
        run_id="airflow-between-tasks",
        origin="airflow",
        owner={"pid": int(dead), "create_time": 1.0, "host": record._host()},
    )
    between.steps.append(record.StepRecord("seed", "ok", 1.0))
    between.save()
    assert record.mark_abandoned(settings) == ["gone"]
    data = json.loads((settings.runs_dir / "gone.json").read_text())
    assert data["status"] == "abandoned" and data["steps"][0]["status"] == "terminated"
    assert json.loads((settings.runs_dir / "alive.json").read_text())["status"] == "running"


# ----------------------------------------------------------- publish


def test_publish_copies_only_the_audited_bytes(tmp_path):
    from dq import publish

    build_db, published = tmp_path / "build.db", tmp_path / "warehouse" / "jaffle_shop.db"
    published.parent.mkdir()
    published.write_bytes(b"the old warehouse")
    build_db.write_bytes(b"the audited build")
    audited = build.fingerprint(build_db)
    build_db.write_bytes(b"the audited build, changed afterwards")
    with pytest.raises(publish.NotAudited, match="changed after its audit"):
        publish.publish(build_db, published, audited)
    assert published.read_bytes() == b"the old warehouse"
    assert sorted(p.name for p in published.parent.iterdir()) == ["jaffle_shop.db"]
    build_db.write_bytes(b"the audited build")
    publish.publish(build_db, published, audited, keep_old=tmp_path / "broken" / "old.db")
    assert published.read_bytes() == b"the audited build"
    assert (tmp_path / "broken" / "old.db").read_bytes() == b"the old warehouse"
