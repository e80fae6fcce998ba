"""dbt's connections to a run's throw-away build skip durability (dq.dbt_hooks);
a plain dbt connection (the dev sandbox) keeps SQLite's defaults."""

from __future__ import annotations

import dataclasses

import pytest

from dq import config, dbt_hooks
from dq.dbt import environment

pytestmark = pytest.mark.usefixtures("sqlite_target")


@pytest.fixture
def sqlite_target(monkeypatch):
    monkeypatch.delenv("DQ_TARGET", raising=False)
    monkeypatch.delenv("DQ_DBT_TARGET", raising=False)


@pytest.fixture
def settings():
    return config.load()


def _settings_seen_by_dbt(tmp_path, project_dir, profiles_dir, pragmas: bool):
    from dbt.cli.main import dbtRunner

    dbt_hooks.install()
    env = {"DQ_BUILD_DB": str(tmp_path / "jaffle_shop.db"), "DQ_BUILD_DIR": str(tmp_path)}
    env[dbt_hooks.ENV] = "1" if pragmas else "0"
    sql = (
        "select (select synchronous from pragma_synchronous) as synchronous,"
        " (select journal_mode from pragma_journal_mode) as journal,"
        " (select cache_size from pragma_cache_size) as cache"
    )
    args = ["show", "--inline", sql, "--project-dir", str(project_dir)]
    args += ["--profiles-dir", str(profiles_dir), "--target-path", str(tmp_path / "target")]
    args += ["--log-path", str(tmp_path / "logs"), "--log-level", "none"]
    with environment(env):
        outcome = dbtRunner().invoke(args)
    assert outcome.success, outcome.exception
    table = outcome.result.results[0].agate_table
    return dict(zip(table.column_names, table.rows[0], strict=True))


def test_a_build_connection_skips_durability_and_dev_keeps_it(tmp_path, settings):
    build = _settings_seen_by_dbt(
        tmp_path / "b", settings.dbt_project_dir, settings.profiles_dir, pragmas=True
    )
    assert build == {"synchronous": 0, "journal": "memory", "cache": -65536}
    dev = _settings_seen_by_dbt(
        tmp_path / "d", settings.dbt_project_dir, settings.profiles_dir, pragmas=False
    )
    assert dev["synchronous"] != 0 and dev["journal"] == "delete" and dev["cache"] == -2000


def test_the_pipeline_sets_it_for_sqlite_builds_only(settings):
    build = settings.build("r1")
    assert settings.dbt_env(build)[dbt_hooks.ENV] == "1"
    server = dataclasses.replace(settings, target="postgres", pg_password="x")
    assert dbt_hooks.ENV not in server.dbt_env(build)


def test_the_pipeline_streams_seeds_unless_switched_off(settings, monkeypatch):
    """dq.seed_stream reads the seeds of sqlite and postgres runs; DQ_STREAM_SEEDS=off
    gives dbt's own reader back; spark's loader is left with agate."""
    build = settings.build("r1")
    assert settings.dbt_env(build)[dbt_hooks.STREAM_ENV] == "1"
    server = dataclasses.replace(settings, target="postgres", pg_password="x")
    assert server.dbt_env(build)[dbt_hooks.STREAM_ENV] == "1"
    spark = dataclasses.replace(settings, target="spark")
    assert dbt_hooks.STREAM_ENV not in spark.dbt_env(build)
    monkeypatch.setenv("DQ_STREAM_SEEDS", "off")
    assert config.load().dbt_env(build)[dbt_hooks.STREAM_ENV] == "0"
