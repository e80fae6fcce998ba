"""A run owns its build: what another run, a plain `dbt build` or any other
writer does cannot change what a run's gates audited, and publish proves it
copies exactly the audited bytes (issue 8, points 1 and 2)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dq import build, config, pipeline
from dq.record import Run
from tests.conftest import REPO, last_build_db, rewrite_csv, run_cli, sha256

pytestmark = pytest.mark.slow

DBT = str(Path(sys.executable).with_name("dbt"))
BEFORE_PUBLISH = pipeline.STEP_NAMES[: pipeline.STEP_NAMES.index("publish")]


def fresh_clone(dest: Path) -> Path:
    """What `git clone` of the working tree gives: tracked and new files, nothing ignored."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), dest / name)
        else:
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture
def clone(tmp_path, bundled_run, monkeypatch) -> Path:
    """A fresh clone with a published warehouse, and the environment pointing at it."""
    root = fresh_clone(tmp_path / "clone")
    (root / "warehouse").mkdir()
    shutil.copy2(bundled_run[0] / "warehouse" / "jaffle_shop.db", root / "warehouse")
    for key in [k for k in os.environ if k.startswith("DQ_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DQ_ROOT", str(root))
    monkeypatch.setenv("DQ_LOCK_TIMEOUT", "0")
    return root


def _reject_many_orders(header, rows):
    # 150 of 1,686 orders (8.9 %) with an unknown customer: over the 5 % budget.
    for row in rows[:150]:
        row[header.index("customer")] = "no-such-customer"
    return rows


def test_dag_steps_publish_their_own_audited_build_whatever_runs_in_between(clone):
    settings = config.load()
    published = settings.published_db
    # The DAG's run gets as far as its last gate.
    run = pipeline.begin(settings, origin="airflow", airflow_run_id="manual__interleaved")
    for name in BEFORE_PUBLISH:
        pipeline.execute(settings, run.run_id, name)
    audited = Run.load(settings, run.run_id).step("validate_transformed").detail["audited"]

    # A developer's plain `dbt build` in the fresh clone: it works, and it builds
    # its own sandbox, touching neither the published warehouse nor the run's build.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    dev = subprocess.run(
        [DBT, "build"], cwd=clone / "dbt_project", env=env, capture_output=True, text=True
    )
    assert dev.returncode == 0, dev.stdout[-3000:]
    assert (clone / "dbt_project" / "dev" / "jaffle_shop.db").stat().st_size > 0
    assert build.fingerprint(run.build.db) == audited

    # A command-line run with a bad CSV starts and fails its gate in between.
    rewrite_csv(clone / "seeds" / "raw_orders.csv", _reject_many_orders)
    bad = run_cli(clone, "run")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "rejected share of raw_orders is at most 5.0%" in bad.stdout
    with sqlite3.connect(last_build_db(clone)) as db:  # its failed build is kept
        assert db.execute("select count(*) from rejected_orders").fetchone()[0] == 150

    # The DAG's publish publishes its own audited file, byte for byte.
    pipeline.execute(settings, run.run_id, "publish")
    assert sha256(published) == audited
    with sqlite3.connect(published) as db:
        assert db.execute("select count(*) from rejected_orders").fetchone()[0] == 0
    run = pipeline.conclude(settings, run.run_id)
    assert run.status == "published" and run.airflow_run_id == "manual__interleaved"
    assert not run.build.root.exists()  # published builds are removed


def test_publish_refuses_a_build_changed_after_its_audit(clone):
    settings = config.load()
    before = sha256(settings.published_db)
    run = pipeline.begin(settings)
    for name in BEFORE_PUBLISH:
        pipeline.execute(settings, run.run_id, name)
    with sqlite3.connect(run.build.db) as db:  # any writer after the last gate
        db.execute("update orders set order_total = order_total + 1 where rowid = 1")
    with pytest.raises(pipeline.GateFailed, match="changed after validate_transformed"):
        pipeline.execute(settings, run.run_id, "publish")
    assert sha256(settings.published_db) == before
    run = pipeline.conclude(settings, run.run_id)
    assert run.exit_code == pipeline.EXIT_GATE
    assert run.build.root.exists()  # a failed build stays for inspection


def test_publish_refuses_when_a_gate_did_not_pass(clone):
    settings = config.load()
    run = pipeline.begin(settings)
    for name in ("preflight", "seed", "validate_raw", "transform"):
        pipeline.execute(settings, run.run_id, name)
    # validate_transformed skipped (e.g. a task cleared by hand): nothing to prove.
    with pytest.raises(pipeline.GateFailed, match="validate_transformed has not passed"):
        pipeline.execute(settings, run.run_id, "publish")
