"""The model stage: trained only on the audited published warehouse, gated on F1.

Tests marked ``slow`` use the session's pipeline run on the bundled sample
(``bundled_run``, once per session); each copies its published warehouse and run
records into a root of its own instead of running the pipeline again. The
others build what they need by hand and take a second or two.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from dq import config, model
from dq.errors import BadInput, GateFailed
from dq.record import Run, StepRecord, last_published
from tests.conftest import REPO, run_cli, sha256

slow = pytest.mark.slow


def model_root(dest: Path, bundled_run) -> Path:
    """A root with the session run's published warehouse, its run records and
    the versioned model configuration: what the model stage finds after `dq run`."""
    source, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    (dest / "warehouse").mkdir(parents=True)
    shutil.copy2(source / "warehouse" / "jaffle_shop.db", dest / "warehouse" / "jaffle_shop.db")
    shutil.copytree(source / "warehouse" / "runs", dest / "warehouse" / "runs")
    (dest / "model").mkdir()
    shutil.copy2(REPO / "model" / "config.yml", dest / "model" / "config.yml")
    return dest


@pytest.fixture(scope="module")
def trained(tmp_path_factory, bundled_run):
    """`python -m dq model` once on a copy of the bundled published warehouse."""
    root = model_root(tmp_path_factory.mktemp("trained") / "project", bundled_run)
    result = run_cli(root, "model")
    return root, result


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def write_config(path: Path, **changes) -> Path:
    """The versioned configuration with some top-level keys replaced."""
    data = yaml.safe_load((REPO / "model" / "config.yml").read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# ------------------------------------------------------------------ the features


@slow
def test_order_features_hold_only_what_is_known_when_the_order_starts(bundled_run):
    """One row per order; the history counts only the customer's earlier orders
    (recomputed here in Python); no item or amount column can leak the label."""
    db = bundled_run[0] / "warehouse" / "jaffle_shop.db"
    columns = [r[1] for r in query(db, "pragma table_info(order_features)")]
    assert columns == [
        "order_id",
        "customer_id",
        "location_id",
        "order_hour",
        "order_day_of_week",
        "previous_orders",
        "previous_food_share",
        "includes_food",
        "ordered_at",
    ]
    orders = query(db, "select order_id, customer_id, ordered_at, is_food_order from orders")
    features = {
        r[0]: r[1:]
        for r in query(
            db,
            "select order_id, previous_orders, previous_food_share, includes_food, order_hour,"
            " order_day_of_week from order_features",
        )
    }
    assert len(features) == len(orders) > 1000
    firsts = 0
    for order_id, customer, at, food in orders:
        before = [o for o in orders if o[1] == customer and o[2] < at]
        previous, share, label, hour, day = features[order_id]
        assert (previous, label, hour) == (len(before), food, int(at[11:13]))
        assert 0 <= day <= 6
        if before:
            assert share == pytest.approx(sum(o[3] for o in before) / len(before))
        else:
            assert share is None
            firsts += 1
    assert firsts == len({o[1] for o in orders})


@slow
def test_the_feature_suite_gates_a_broken_feature_table(bundled_run, tmp_path):
    """GX holds order_features to its rules: an hour out of range, a share above
    1 and a duplicated order fail the transformed checkpoint, each named."""
    from dq import build as build_mod
    from dq import generate, validate
    from tests.conftest import copy_project

    root = copy_project(tmp_path / "project")
    settings = config.for_root(root)
    run = build_mod.create(settings, "broken-features")
    build_mod.snapshot_seeds(root / "seeds", run, [p.name for p in (root / "seeds").iterdir()])
    generate.for_build(run)
    shutil.copyfile(bundled_run[0] / "warehouse" / "jaffle_shop.db", run.db)
    with sqlite3.connect(run.db) as db:
        db.execute("update order_features set order_hour = 24 where rowid = 1")
        db.execute("update order_features set previous_food_share = 1.5 where rowid = 2")
        db.execute("update order_features set order_id = (select order_id from order_features"
                   " where rowid = 4) where rowid = 3")  # fmt: skip
    report = validate.run_checkpoint(settings, run, "transformed", "broken-features")
    failed = {s.suite: " | ".join(s.failed_critical) for s in report.suites if not s.success}
    assert set(failed) == {"order_features"}
    assert "expect_column_values_to_be_between {'column': 'order_hour'}" in failed["order_features"]
    assert "{'column': 'previous_food_share'}" in failed["order_features"]
    assert "expect_column_values_to_be_unique {'column': 'order_id'}" in failed["order_features"]


# ------------------------------------------------------------------ training and the gate


@slow
def test_defaults_pass_the_gate_on_bundled_data(trained):
    root, result = trained
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Gate: PASSED" in result.stdout
    settings = config.for_root(root)
    folder = settings.model_dir / "candidate"
    assert sorted(p.name for p in folder.iterdir()) == [
        "card.json",
        "gate.json",
        "metrics.json",
        "model.skops",
    ]
    metrics = json.loads((folder / "metrics.json").read_text())
    orders = query(settings.published_db, "select count(*), avg(is_food_order) from orders")[0]
    assert metrics["rows"] == orders[0] == metrics["train_rows"] + metrics["test_rows"]
    assert metrics["test_rows"] == pytest.approx(0.25 * orders[0], abs=1)
    assert metrics["positive_share"] == pytest.approx(orders[1])
    # Always "food": precision = the share of food orders, recall 1.
    p = orders[1]
    assert metrics["baseline_f1"] == pytest.approx(2 * p / (1 + p), abs=0.02)
    gate_min = yaml.safe_load(settings.model_config.read_text())["gate"]["f1_min"]
    assert gate_min <= metrics["f1"] < 0.9
    assert metrics["f1"] > metrics["baseline_f1"] + 0.2
    assert 0 < metrics["precision"] <= 1 and 0 < metrics["recall"] <= 1
    assert metrics["accuracy"] > 1 - p - 0.1  # not much worse than always "no food"
    verdict = json.loads((folder / "gate.json").read_text())
    assert verdict["passed"] is True and verdict["reasons"] == []
    candidate = model.load_candidate(settings)
    assert candidate.passed and candidate.metrics == metrics


@slow
def test_the_card_says_what_the_model_is_and_where_it_came_from(trained):
    root, _ = trained
    settings = config.for_root(root)
    folder = settings.model_dir / "candidate"
    card = json.loads((folder / "card.json").read_text())
    published = last_published(settings)
    assert card["data"] == {
        "run_id": published.run_id,
        "warehouse_sha256": sha256(settings.published_db),
        "warehouse": str(settings.published_db),
    }
    assert published.step("publish").detail["fingerprint"] == card["data"]["warehouse_sha256"]
    assert card["config"] == {"path": "model/config.yml", "sha256": sha256(settings.model_config)}
    assert card["code"] == {"git_commit": "unknown"}  # the test root is no git checkout
    assert card["model_sha256"] == sha256(folder / "model.skops")
    assert card["metrics"] == json.loads((folder / "metrics.json").read_text())
    assert card["estimator"]["class"] == "RandomForestClassifier"
    assert card["estimator"]["params"]["random_state"] == card["random_state"]
    assert card["question"].startswith("Will this order include food")
    assert "previous_food_share" in card["features"]["impute"]
    assert {"scikit-learn", "skops", "python"} <= set(card["versions"])
    assert card["trained_at"].endswith("+00:00")


@slow
def test_same_data_and_config_give_identical_metrics(trained, tmp_path, bundled_run):
    root, _ = trained
    first = json.loads((root / "warehouse" / "model" / "candidate" / "metrics.json").read_text())
    again = model.train(config.for_root(model_root(tmp_path / "again", bundled_run)))
    assert again.metrics == first


@slow
def test_a_bad_config_fails_the_gate_names_the_reasons_and_notifies(tmp_path, bundled_run, webhook):
    """A classifier that always answers "food" is the baseline: it cannot beat it."""
    root = model_root(tmp_path / "project", bundled_run)
    bad = write_config(
        tmp_path / "always-food.yml",
        estimator={"class": "DummyClassifier", "params": {"strategy": "constant", "constant": 1}},
    )
    result = run_cli(root, "model", "--config", str(bad), DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert result.returncode == 1, result.stdout + result.stderr
    candidate = model.load_candidate(config.for_root(root))
    assert candidate is not None and candidate.passed is False
    f1 = candidate.metrics["f1"]
    assert f1 == candidate.metrics["baseline_f1"]
    assert candidate.reasons == (
        f"F1 {f1:.2f} < threshold 0.50",
        f"F1 {f1:.2f} does not beat the baseline's {f1:.2f} (always 'food')",
    )
    assert "Gate: FAILED" in result.stdout and "threshold 0.50" in result.stderr
    verdict = json.loads((candidate.folder / "gate.json").read_text())
    assert verdict["passed"] is False and verdict["reasons"] == list(candidate.reasons)
    [(_, _, payload)] = webhook.posts
    assert "model: FAILED" in payload["text"] and "does not beat the baseline" in payload["text"]


def _candidate(f1: float, baseline: float = 0.3) -> model.Candidate:
    return model.Candidate(
        folder=Path("candidate"),
        metrics={"f1": f1, "baseline_f1": baseline},
        card={"gate": {"f1_min": 0.5, "max_f1_drop": 0.05}},
    )


def _production(settings, f1: float) -> None:
    release = settings.production / "releases" / "r1" / "model"
    release.mkdir(parents=True)
    (release / "metrics.json").write_text(json.dumps({"f1": f1}))
    (settings.production / "current").symlink_to("releases/r1")


def test_the_gate_rules(tmp_path):
    settings = config.for_root(tmp_path)
    assert model.gate(_candidate(0.6), settings) == []
    assert model.gate(_candidate(0.41), settings) == ["F1 0.41 < threshold 0.50"]
    assert model.gate(_candidate(0.4999), settings) == ["F1 0.4999 < threshold 0.5000"]
    assert model.gate(_candidate(0.55, baseline=0.56), settings) == [
        "F1 0.55 does not beat the baseline's 0.56 (always 'food')"
    ]
    _production(settings, 0.62)
    assert model.gate(_candidate(0.57), settings) == []  # exactly 0.05 below: allowed
    assert model.gate(_candidate(0.56), settings) == [
        "F1 0.56 is more than 0.05 below production's 0.62"
    ]


# ------------------------------------------------------------------ audited data only


def _record(settings, run_id: str, publish: str | None, fingerprint: str = "0" * 64, at=None):
    run = Run(settings=settings, run_id=run_id)
    if publish:
        detail = {"fingerprint": fingerprint}
        if at:
            detail["published_at"] = at
        run.steps.append(StepRecord("publish", publish, 1.0, detail=detail))
    run.close(0 if publish == "ok" else 1)
    return run


def test_training_refuses_when_no_run_published(tmp_path):
    settings = config.for_root(tmp_path)
    with pytest.raises(BadInput, match="no run has published"):
        model.train(settings, REPO / "model" / "config.yml")
    _record(settings, "r1", publish="failed")
    _record(settings, "r2", publish=None)
    with pytest.raises(BadInput, match="no run has published"):
        model.train(settings, REPO / "model" / "config.yml")
    result = run_cli(tmp_path, "model", "--config", str(REPO / "model" / "config.yml"))
    assert result.returncode == 2 and "no run has published" in result.stderr
    assert not (settings.model_dir / "candidate").exists()


def test_the_publish_in_force_is_the_last_one_made(tmp_path):
    settings = config.for_root(tmp_path)
    assert last_published(settings) is None
    _record(settings, "b-later", "ok", "b" * 64, at="2026-01-01T10:00:00.000002+00:00")
    _record(settings, "a-earlier", "ok", "a" * 64, at="2026-01-01T10:00:00.000001+00:00")
    _record(settings, "c-failed", "failed", "c" * 64, at="2026-01-02T00:00:00+00:00")
    assert last_published(settings).run_id == "b-later"


@slow
def test_training_refuses_a_warehouse_that_is_not_what_was_audited(tmp_path, bundled_run):
    """Changed after publishing (one row, by hand): its sha256 no longer matches the
    fingerprint the publishing run recorded, so no model is trained on it, and an
    earlier candidate is not left behind for deploy to pick up."""
    root = model_root(tmp_path / "project", bundled_run)
    settings = config.for_root(root)
    stale = settings.model_dir / "candidate"
    stale.mkdir(parents=True)
    (stale / "gate.json").write_text('{"passed": true, "reasons": []}')
    with sqlite3.connect(settings.published_db) as db:
        db.execute("update order_features set includes_food = 1 - includes_food where rowid = 1")
    result = run_cli(root, "model")
    assert result.returncode == 1
    assert "is not what run" in result.stderr and "audited and published" in result.stderr
    assert model.load_candidate(settings) is None
    with pytest.raises(GateFailed, match="refusing to use it"):
        model.train(settings)


# ------------------------------------------------------------------ production


@slow
def test_predict_scores_every_order_with_the_production_model(trained, tmp_path, bundled_run):
    """The release helper's layout, made by hand: releases/r1/model/ and current -> r1."""
    root = model_root(tmp_path / "project", bundled_run)
    settings = config.for_root(root)
    release = settings.production / "releases" / "r1" / "model"
    release.mkdir(parents=True)
    for name in ("model.skops", "metrics.json", "card.json"):
        shutil.copy2(trained[0] / "warehouse" / "model" / "candidate" / name, release / name)
    (settings.production / "current").symlink_to("releases/r1")
    before = sha256(settings.published_db)

    result = run_cli(root, "predict")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sha256(settings.published_db) == before  # only read: still what was audited
    orders = {r[0] for r in query(settings.published_db, "select order_id from orders")}
    out = settings.predictions_dir
    import csv

    with open(out / "order_food_predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(orders) and {r["order_id"] for r in rows} == orders
    assert all(0 <= float(r["probability"]) <= 1 and r["predicted"] in "01" for r in rows)
    assert {r["release_id"] for r in rows} == {"r1"}
    card = json.loads((release / "card.json").read_text())
    assert {r["model_sha256"] for r in rows} == {card["model_sha256"]}
    table = query(
        out / "predictions.db",
        "select count(*), count(distinct order_id), min(probability), max(probability),"
        " sum(predicted), min(release_id) from order_food_predictions",
    )[0]
    assert table[:2] == (len(orders), len(orders)) and 0 <= table[2] <= table[3] <= 1
    assert 0 < table[4] < len(orders) and table[5] == "r1"
    assert "order_food_predictions" not in {
        r[0] for r in query(settings.published_db, "select name from sqlite_master")
    }


def test_predict_without_a_production_model_is_bad_input(tmp_path):
    result = run_cli(tmp_path, "predict")
    assert result.returncode == 2 and "no production model" in result.stderr


# ------------------------------------------------------------------ configuration and files


def _tiny_frame():
    import pandas as pd

    n = 40
    return pd.DataFrame(
        {
            "location_id": ["a", "b"] * (n // 2),
            "order_hour": [7 + i % 12 for i in range(n)],
            "order_day_of_week": [i % 7 for i in range(n)],
            "previous_orders": [i % 5 for i in range(n)],
            "previous_food_share": [None if i % 5 == 0 else (i % 3) / 2 for i in range(n)],
            "includes_food": [int(i % 4 == 0) for i in range(n)],
        }
    )


@pytest.mark.parametrize("estimator", sorted(model.ESTIMATORS))
def test_every_allowed_estimator_saves_only_trusted_types(estimator, tmp_path):
    import skops.io as sio

    cfg = model.load_config(
        write_config(tmp_path / "c.yml", estimator={"class": estimator, "params": {}})
    )
    frame = _tiny_frame()
    pipeline = model.build_pipeline(cfg).fit(frame[cfg.features], frame[cfg.label])
    sio.dump(pipeline, tmp_path / "m.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "m.skops")) <= set(model.TRUSTED_TYPES)
    loaded = model.load_model(tmp_path / "m.skops")
    assert (loaded.predict(frame[cfg.features]) == pipeline.predict(frame[cfg.features])).all()


def test_loading_refuses_a_model_file_with_an_unknown_type(tmp_path):
    """A model file that would call os.system is refused before anything is built."""
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(Pipeline([("run", FunctionTransformer(os.system))]), tmp_path / "evil.skops")
    with pytest.raises(BadInput, match="does not trust: .*system"):
        model.load_model(tmp_path / "evil.skops")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features": {"passthrough": ["order_hour", "includes_food"]}}, "includes_food cannot"),
        ({"features": {"one_hot": ["order_id"]}}, "order_id cannot be a feature"),
        ({"estimator": {"class": "os.system"}}, "is not one of"),
        ({"test_size": 1.5}, "test_size 1.5"),
        ({"table": "orders; drop table orders"}, "not a plain table or column name"),
        ({"gate": {"f1_min": 0.5}}, "missing setting 'max_f1_drop'"),
    ],
)
def test_the_configuration_is_checked(tmp_path, changes, message):
    with pytest.raises(BadInput, match=message):
        model.load_config(write_config(tmp_path / "c.yml", **changes))


def test_unknown_hyperparameters_are_bad_input(tmp_path):
    cfg = model.load_config(
        write_config(
            tmp_path / "c.yml",
            estimator={"class": "RandomForestClassifier", "params": {"n_trees": 3}},
        )
    )
    with pytest.raises(BadInput, match="n_trees"):
        model.build_pipeline(cfg)
