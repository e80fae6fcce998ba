"""A run owns its build: what another run, a plain `dbt build` or any other
writer does cannot change what a run's gates audited, and publish proves it
copies exactly the audited bytes (issue 8, points 1 and 2)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dq import build, config, pipeline
from dq.record import Run
from tests.conftest import REPO, last_build_db, rewrite_csv, run_cli, sha256, visible_text

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


def _break_orders_and_a_store(root: Path) -> int:
    """Every 10th order gets a negative subtotal (10 % rejected, over the 5 %
    budget) and one store an impossible tax rate (the reference tables' budget
    is 0). Returns the number of broken orders."""
    broken = []

    def orders(header, rows):
        subtotal = header.index("subtotal")
        # A few orders have a zero subtotal, and -0 is not negative: skip those.
        broken.extend([row for row in rows if row[subtotal] != "0"][::10])
        for row in broken:
            row[subtotal] = "-" + row[subtotal]

    rewrite_csv(root / "seeds" / "raw_orders.csv", orders)
    # The last store (Los Angeles) has no orders in the sample: no cascade.
    rewrite_csv(
        root / "seeds" / "raw_stores.csv",
        lambda h, rows: [*rows[:-1], rows[-1][:3] + ["1.5"]],
    )
    return len(broken)


def _dump(db_path: Path) -> dict[str, list]:
    with sqlite3.connect(db_path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return {t: sorted(db.execute(f'select * from "{t}"').fetchall(), key=repr) for t in tables}


def test_a_run_publishes_only_its_own_audited_build_whatever_happens_in_between(clone):
    """The reproduction of issue 8: DAG steps, then a plain `dbt build` and a CLI
    run with bad CSVs in between, then the DAG's publish. Also: a failed run is
    kept for inspection and shows in Data Docs, a build changed after its audit
    is refused, and a re-run after the failure gives the same warehouse."""
    settings = config.load()
    published = settings.published_db
    before = sha256(published)
    good_seeds = {p.name: p.read_bytes() for p in (clone / "seeds").glob("*.csv")}
    # The DAG's run gets as far as its last gate.
    run = pipeline.begin(settings, origin="airflow", airflow_run_id="manual__interleaved")
    for name in BEFORE_PUBLISH:
        pipeline.execute(settings, run.run_id, name)
    audited = Run.load(settings, run.run_id).step("validate_transformed").detail["audited"]

    # A developer's plain `dbt build` in the fresh clone: it works, and it builds
    # its own sandbox, touching neither the published warehouse nor the run's build.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    # `make setup` generates the source models for plain dbt (`dq sync`) in a clone.
    subprocess.run([sys.executable, "-m", "dq", "sync"], cwd=clone, env=env, check=True)
    dev = subprocess.run(
        [DBT, "build"], cwd=clone / "dbt_project", env=env, capture_output=True, text=True
    )
    assert dev.returncode == 0, dev.stdout[-3000:]
    assert (clone / "dbt_project" / "dev" / "jaffle_shop.db").stat().st_size > 0
    assert build.fingerprint(run.build.db) == audited and sha256(published) == before

    # A command-line run with bad CSVs starts and fails its gates in between.
    n_broken = _break_orders_and_a_store(clone)
    bad = run_cli(clone, "run")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "GATE FAILED (exit 1)" in bad.stdout
    assert "rejected share of raw_orders is at most 5.0%" in bad.stdout
    assert "rejected share of raw_stores is at most 0.0%" in bad.stdout
    assert sha256(published) == before
    # Its build is kept for inspection: the bad rows are in quarantine with their
    # reason, nothing was dropped.
    with sqlite3.connect(last_build_db(clone)) as db:
        reasons = dict(db.execute("select reject_reason, count(*) from rejected_orders group by 1"))
        raw, clean = db.execute(
            "select (select count(*) from raw_orders), (select count(*) from stg_orders)"
        ).fetchone()
        stores = db.execute("select reject_reason from rejected_stores").fetchall()
    assert reasons == {"subtotal is below 0": n_broken} and raw == clean + n_broken
    assert stores == [("tax_rate is above 0.25",)]
    # The failure is in the stored GX result and in Data Docs.
    results = [
        json.loads(p.read_text())
        for p in (clone / "gx" / "uncommitted" / "validations" / "stg_orders").rglob("*.json")
    ]
    assert [r["success"] for r in results].count(False) == 1
    bad_run = json.loads((clone / "warehouse" / "runs" / "latest.json").read_text())["run_id"]
    site = clone / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert f"'validations/stg_orders/{bad_run}-transformed/" in (site / "index.html").read_text()
    (page,) = (site / "validations" / "stg_orders" / f"{bad_run}-transformed").rglob("*.html")
    assert "Expectation Suite: stg_orders Data asset: stg_orders Status: Failed" in visible_text(
        page.read_text()
    )

    # Anyone writing to the DAG's build after its audit: publish refuses.
    good_build = run.build.db.read_bytes()
    with sqlite3.connect(run.build.db) as db:
        db.execute("update orders set order_total = order_total + 1 where rowid = 1")
    with pytest.raises(pipeline.GateFailed, match="changed after validate_transformed"):
        pipeline.execute(settings, run.run_id, "publish")
    assert sha256(published) == before

    # Untouched, the DAG's own audited file is published, byte for byte.
    run.build.db.write_bytes(good_build)
    pipeline.execute(settings, run.run_id, "publish")
    assert sha256(published) == audited
    with sqlite3.connect(published) as db:
        assert db.execute("select count(*) from rejected_orders").fetchone()[0] == 0
    run = pipeline.conclude(settings, run.run_id)
    assert run.status == "published" and run.airflow_run_id == "manual__interleaved"
    assert not run.build.root.exists()  # published builds are removed

    # With the CSVs mended, a re-run publishes the same warehouse again.
    expected = _dump(published)
    for name, data in good_seeds.items():
        (clone / "seeds" / name).write_bytes(data)
    again = run_cli(clone, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _dump(published) == expected


def test_publish_refuses_when_a_gate_did_not_pass(tmp_path):
    """No dbt, no GX: a record without a passed validate_transformed (a task
    cleared by hand, a step skipped) has nothing to prove; publish refuses."""
    from dq import steps
    from dq.record import StepRecord

    settings = config.for_root(tmp_path)
    run = Run(settings=settings, run_id="skipped-gate")
    run.build.root.mkdir(parents=True)
    run.build.db.write_bytes(b"a build")
    audited = build.fingerprint(run.build.db)
    run.steps = [
        StepRecord("validate_raw", "ok", 1.0, detail={"audited": audited}),
        StepRecord("transform", "ok", 1.0, detail={"fingerprint": audited}),
    ]
    with pytest.raises(pipeline.GateFailed, match="validate_transformed has not passed"):
        steps.publish(run)
    run.steps.append(StepRecord("validate_transformed", "failed", 1.0, exit_code=1))
    with pytest.raises(pipeline.GateFailed, match="validate_transformed has not passed"):
        steps.publish(run)
    assert not settings.published_db.exists()
