"""The target switch without a server: the setting, what a run records, the
schema names, and suites written in the target's SQL (the server-side behaviour
is in tests/test_postgres.py)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from dq import config, suites, targets
from dq.errors import BadInput
from dq.record import Run
from dq.sources import load_sources


def test_an_unknown_target_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("DQ_TARGET", "oracle")
    with pytest.raises(BadInput, match="DQ_TARGET='oracle': use one of sqlite, postgres, spark"):
        config.load()


def test_each_target_picks_its_dbt_output(monkeypatch):
    monkeypatch.setenv("DQ_TARGET", "postgres")
    assert config.load().dbt_target == "postgres"
    monkeypatch.delenv("DQ_TARGET")
    assert config.load().dbt_target == "dev"  # SQLite's output in profiles.yml


def test_a_run_keeps_the_target_it_began_with(project):
    settings = dataclasses.replace(config.for_root(project), target="postgres")
    Run(settings=settings, run_id="r1").save()
    # Another process (an Airflow task) configured for SQLite continues the run.
    later = Run.load(config.for_root(project), "r1")
    assert later.settings.target == "postgres"
    assert isinstance(later.target, targets.Postgres)
    assert later.target.where().endswith("schema published")


def test_build_schemas_are_safe_identifiers_within_postgres_limit():
    assert (
        config.Build(config.Path("20261128T124711Z-a0ad")).schema == "build_20261128t124711z_a0ad"
    )
    long = config.Build(config.Path("manual__2026-11-28T12:00:00.123456+00:00" * 3)).schema
    other = config.Build(config.Path("manual__2026-11-28T12:00:00.123457+00:00" * 3)).schema
    assert len(long) <= 63 and re.fullmatch(r"[a-z0-9_]+", long)
    assert long != other


def test_postgres_suites_use_no_sqlite_functions(project):
    sources = load_sources(project / "seeds")
    queries = []
    for dialect in ("sqlite", "postgres"):
        declared = suites.declare(sources, dialect=dialect)["transformed"]
        queries.append(
            " ".join(
                e.unexpected_rows_query
                for expectations in declared.values()
                for e in expectations
                if hasattr(e, "unexpected_rows_query")
            )
        )
    lite, pg = queries
    assert "datetime(" in lite and "datetime('now')" in lite
    assert "datetime(" not in pg and "date('now')" not in pg and " is not ordered_at" not in pg
    assert "to_char(now() at time zone 'UTC'" in pg and "!~" in pg
    # GX formats queries with str.format: no {n} regex quantifiers may reach it.
    assert not re.search(r"\{\d", pg.replace("{batch}", ""))
