"""The Spark target (``DQ_TARGET=spark``, :mod:`dq.spark_target`) on a local
session: ``python -m dq run`` builds, audits and publishes the bundled data
with the same declarations, models, dbt tests and GX suites; the published
views hold what the SQLite target publishes; and publish refuses a build whose
data changed after its audit.

One project copy for the whole module: a process holds one Spark session,
whose warehouse and Derby metastore (one process at a time) are the copy's.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from conftest import copy_project, run_cli_process, sqlite_tables

from dq import config, pipeline, spark_target
from dq.errors import GateFailed
from dq.targets import NotAudited

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def spark_project(tmp_path_factory) -> tuple[Path, dict]:
    """A copy published by ``python -m dq run`` on Spark (a process of its own:
    its JVM and its hold on the metastore end with it), and its run record."""
    root = copy_project(tmp_path_factory.mktemp("spark") / "project")
    result = run_cli_process(root, "run", timeout=1200, DQ_TARGET="spark")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
    return root, record


@pytest.fixture(scope="module")
def settings(spark_project) -> config.Settings:
    return dataclasses.replace(config.for_root(spark_project[0]), target="spark")


@pytest.fixture(scope="module")
def spark(settings):
    """This process's session on the copy's warehouse, after the CLI run ended."""
    session = spark_target.session(settings)
    yield session
    session.stop()


def test_the_run_publishes_on_spark(spark_project) -> None:
    root, record = spark_project
    assert record["exit_code"] == 0 and record["target"] == "spark"
    steps = {s["name"]: s for s in record["steps"]}
    assert [n for n in pipeline.STEP_NAMES if steps[n]["status"] != "ok"] == []
    for layer in ("validate_raw", "validate_transformed"):
        suites = steps[layer]["detail"]["suites"]
        assert suites and all(s["evaluated"] > 0 and s["passed"] == s["evaluated"] for s in suites)
    names = {s["suite"] for s in steps["validate_transformed"]["detail"]["suites"]}
    assert {"stg_orders", "rejected_orders", "orders", "order_features"} <= names
    # The monitors measured the build through Spark SQL and checked it.
    assert steps["monitor"]["detail"]["checks"] > 0
    assert steps["monitor"]["detail"]["anomalies"] == []
    assert steps["transform"]["detail"]["dbt"].get("pass", 0) > 0


def _rows(rows) -> list[tuple]:
    """Rows comparable across targets: floats to 6 places, in a fixed order."""
    return sorted(
        (tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows),
        key=repr,
    )


def test_published_views_hold_what_sqlite_publishes(spark_project, bundled_run, spark) -> None:
    sqlite_root, sqlite_result = bundled_run
    assert sqlite_result.returncode == 0, sqlite_result.stdout + sqlite_result.stderr
    expected = {
        table: ([name for name, _ in columns], rows)
        for table, (columns, rows) in sqlite_tables(
            sqlite_root / "warehouse" / "jaffle_shop.db"
        ).items()
    }
    published = sorted(t.name for t in spark.catalog.listTables(spark_target.PUBLISHED))
    assert published == sorted(expected)
    for table, (columns, rows) in expected.items():
        frame = spark.table(f"{spark_target.PUBLISHED}.{table}")
        assert frame.columns == columns, table
        got = [tuple(r) for r in frame.collect()]
        assert len(got) == len(rows), table
        for mine, theirs in zip(_rows(got), _rows(rows), strict=True):
            assert len(mine) == len(theirs)
            for a, b in zip(mine, theirs, strict=True):
                same = math.isclose(a, b, abs_tol=1e-6) if isinstance(b, float) else a == b
                assert same, f"{table}: {mine} != {theirs}"
    # The run record's counts are the published ones.
    steps = {s["name"]: s for s in spark_project[1]["steps"]}
    assert steps["transform"]["detail"]["rows"]["orders"] == len(expected["orders"][1])


def test_publish_refuses_a_build_changed_after_its_audit(spark_project, settings, spark) -> None:
    target = spark_target.Spark(settings)
    published_before = target.published_build()
    # The views point at the first run's build, which outlived its folder.
    assert published_before == config.Build(Path(spark_project[1]["build_dir"])).schema
    counts_before = target.table_counts()
    run = pipeline.begin(settings)
    try:
        for name in pipeline.STEP_NAMES[: pipeline.STEP_NAMES.index("publish")]:
            pipeline.execute(settings, run.run_id, name, run)
        audited = run.step("monitor").detail["audited"]
        assert target.fingerprint(run.build) == audited
        database = run.build.schema
        # Someone writes to the audited build: one row more in a mart.
        spark.sql(f"insert into {database}.orders select * from {database}.orders limit 1")
        assert target.fingerprint(run.build) != audited
        with pytest.raises(GateFailed, match="changed after"):
            pipeline.execute(settings, run.run_id, "publish", run)
        # Publish itself re-checks, whoever calls it.
        with pytest.raises(NotAudited, match="changed after its audit"):
            target.publish(run.build, audited)
    finally:
        pipeline.conclude(settings, run.run_id, run)
    assert run.step("publish").status == "failed"
    assert target.published_build() == published_before
    assert target.table_counts() == counts_before
