"""What issue 13 took out of a run's fixed cost must not change what a run checks:

- dbt's parse of one run is reused by the next (:mod:`dq.dbt`), yet every run reads
  its own seeds, and a changed source declaration is parsed again and used;
- a GX layer is registered with one write of its ``great_expectations.yml``
  (:func:`dq.validate._config_written_once`), yet a new context read from disk (the
  next Airflow task, a retry) finds every suite, asset and batch of it.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from dq import build as build_mod
from dq import config, validate
from dq import dbt as dq_dbt
from dq.record import Run
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """How dbt's manifest loader parsed, one entry per dbt command of this process:
    "full", "partial" (only changed files parsed again) or "skipped" (nothing changed)."""
    from dbt.parser.manifest import ManifestLoader

    seen: list[str] = []
    load = ManifestLoader.load

    def spy(self, *args, **kwargs):
        result = load(self, *args, **kwargs)
        if self.skip_parsing:
            seen.append("skipped")
        else:
            seen.append("partial" if self.partially_parsing else "full")
        return result

    monkeypatch.setattr(ManifestLoader, "load", spy)
    return seen


def _settings(root, monkeypatch) -> config.Settings:
    monkeypatch.setenv("DQ_ROOT", str(root))
    return config.load()


def test_the_next_run_reuses_the_dbt_parse_and_still_sees_its_own_inputs(
    project, parses, monkeypatch
):
    # The first run parses the whole project and keeps the parse.
    first = run_cli(project, "run", "--run-id", "first")
    assert first.returncode == 0, first.stdout + first.stderr
    assert parses[0] == "full"
    settings = _settings(project, monkeypatch)
    assert dq_dbt.parse_cache(settings).is_file()
    # Published: its build (seed CSVs included) is gone.
    assert not settings.build("first").root.exists()

    # Same inputs: dbt reuses the parse for every command, and the seeds are read
    # from this run's own build (a parse pointing into the first build would fail).
    del parses[:]
    second = run_cli(project, "run", "--run-id", "second")
    assert second.returncode == 0, second.stdout + second.stderr
    assert parses and set(parses) == {"skipped"}, parses
    seeded = Run.load(settings, "second").step("seed").detail["rows"]
    for table, rows in seeded.items():
        with open(project / "seeds" / f"{table}.csv", newline="", encoding="utf-8") as handle:
            assert rows == sum(1 for _ in csv.reader(handle)) - 1, table
    # Nothing in the reused parse points into the first run's build: the dbt docs of
    # the second run (its manifest) name no path of another run.
    manifest = json.loads((settings.dbt_docs_dir / "manifest.json").read_text(encoding="utf-8"))
    roots = {n["root_path"] for n in manifest["nodes"].values() if n["resource_type"] == "seed"}
    first_build = str(settings.build("first").root)
    assert roots and not any(root.startswith(first_build) for root in roots), roots

    # A changed declaration: the models generated from it are parsed again and used.
    declaration = project / "seeds" / "stores.yml"
    text = declaration.read_text(encoding="utf-8")
    assert "max: 0.25" in text
    declaration.write_text(text.replace("max: 0.25", "max: 0.05"), encoding="utf-8")
    with open(project / "seeds" / "raw_stores.csv", newline="", encoding="utf-8") as handle:
        over = sum(1 for row in csv.DictReader(handle) if float(row["tax_rate"]) > 0.05)
    assert over > 0
    del parses[:]
    third = run_cli(project, "run", "--run-id", "third")
    assert parses[0] == "partial", parses
    transform = Run.load(settings, "third").step("transform")
    assert transform.detail["rejected"]["raw_stores"] == over
    assert third.returncode == 1  # the stores' rejected-share budget is 0


def test_a_gx_layer_is_registered_with_one_config_write_and_reloads_from_disk(
    published_project, monkeypatch
):
    import great_expectations as gx
    from great_expectations.data_context.data_context.file_data_context import (
        FileDataContext,
    )

    root, _ = published_project
    settings = _settings(root, monkeypatch)
    build = build_mod.create(settings, "gx-once")
    shutil.copy2(settings.published_db, build.db)
    build_mod.snapshot_seeds(
        settings.seeds_dir, build, sorted(p.name for p in settings.seeds_dir.iterdir())
    )
    writes = []
    save = FileDataContext._save_project_config

    def counting(self, *args, **kwargs):
        writes.append(1)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(FileDataContext, "_save_project_config", counting)

    reports = {}
    for layer in ("raw", "transformed"):
        before = len(writes)
        reports[layer] = validate.run_checkpoint(settings, build, layer, "gx-once")
        # The first layer also adds the datasource (one write of its own).
        assert len(writes) - before == (2 if layer == "raw" else 1), layer
        assert reports[layer].suites and reports[layer].success, layer

    # A new context from disk finds both layers complete and validates the same.
    fresh = gx.get_context(mode="file", context_root_dir=str(build.root / "gx"))
    for layer, report in reports.items():
        result = fresh.checkpoints.get(layer).run()
        statistics = {
            v.suite_name: (
                v.statistics["evaluated_expectations"],
                v.statistics["successful_expectations"],
            )
            for v in result.run_results.values()
        }
        assert statistics == {s.suite: (s.evaluated, s.passed) for s in report.suites}, layer
