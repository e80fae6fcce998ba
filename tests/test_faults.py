"""Faults the run must survive: SIGKILL at any step, two runs at once, re-runs,
an unusable warehouse directory, SQL-looking input, and secrets in the repo."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, project_env, run_cli, sha256

pytestmark = pytest.mark.slow


def _start(root: Path, run_id: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dq", "run", "--run-id", run_id],
        cwd=root,
        env=project_env(root, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_step(root: Path, run_id: str, step: str, proc, timeout: float = 300) -> None:
    record = root / "warehouse" / "runs" / f"{run_id}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"run ended before {step}: {proc.communicate()}"
        try:
            steps = json.loads(record.read_text())["steps"]
        except (FileNotFoundError, json.JSONDecodeError):
            steps = []
        if any(s["name"] == step and s["status"] == "running" for s in steps):
            return
        time.sleep(0.05)
    raise AssertionError(f"step {step} never started")


def _dump(db_path: Path) -> dict[str, list]:
    with sqlite3.connect(db_path) as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return {
            t: sorted(db.execute(f'select * from "{t}"').fetchall(), key=repr)
            for t in sorted(tables)
        }


def _record(root: Path, run_id: str) -> dict:
    return json.loads((root / "warehouse" / "runs" / f"{run_id}.json").read_text())


def test_killed_runs_leave_the_published_warehouse_intact_and_are_closed(
    published_project, monkeypatch
):
    root, before = published_project
    published = root / "warehouse" / "jaffle_shop.db"
    # SIGKILL: nothing runs on our side; the record says "running" until the
    # next run finds its process gone. (preflight is too short to aim at.)
    proc = _start(root, "kill-seed")
    _wait_for_step(root, "kill-seed", "seed", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert sha256(published) == before
    # SIGTERM (kill, Airflow marking a task failed or timing it out): the run
    # closes its own record and exits 143.
    proc = _start(root, "term-transform")
    _wait_for_step(root, "term-transform", "transform", proc)
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, out + err
    record = _record(root, "term-transform")
    assert record["status"] == "terminated" and record["exit_code"] == 143
    assert [s["status"] for s in record["steps"] if s["name"] == "transform"] == ["terminated"]
    assert "TERMINATED (exit 143)" in out
    assert sha256(published) == before
    # Leftovers of a publish killed half-way (the copy and its journal).
    for leftover in (".jaffle_shop.db.4242.tmp", ".jaffle_shop.db.4242.tmp-journal"):
        (root / "warehouse" / leftover).write_bytes(b"half a copy")
    # The next run to begin closes every abandoned record.
    from dq import config, pipeline

    monkeypatch.setenv("DQ_ROOT", str(root))
    run = pipeline.begin(config.load())
    record = _record(root, "kill-seed")
    assert record["status"] == "abandoned"
    assert [s["status"] for s in record["steps"] if s["name"] == "seed"] == ["terminated"]
    assert _record(root, "term-transform")["status"] == "terminated"  # closed already
    assert not list((root / "warehouse").glob(".jaffle_shop.db.*"))
    assert sha256(published) == before
    pipeline.conclude(config.load(), run.run_id)


def test_a_busy_lock_is_refused_naming_its_holder(project, monkeypatch):
    from dq import config, lock

    monkeypatch.setenv("DQ_ROOT", str(project))
    settings = config.load()
    with lock.warehouse_lock(settings, "holder-run"):
        refused = run_cli(project, "run", DQ_LOCK_TIMEOUT="0")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "another pipeline run holds" in refused.stdout
    assert "run holder-run" in refused.stdout  # says who holds it
    assert "DQ_LOCK_TIMEOUT" in refused.stdout


def test_two_runs_at_once_each_publish_their_own_audited_build(project):
    first = _start(project, "first", DQ_LOCK_TIMEOUT="600")
    _wait_for_step(project, "first", "seed", first)
    # The second run, in this process, overlaps the first one's whole run.
    second = run_cli(project, "run", "--run-id", "second", DQ_LOCK_TIMEOUT="600")
    assert second.returncode == 0, second.stdout + second.stderr
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, out + err
    records = {r: _record(project, r) for r in ("first", "second")}
    assert {r["status"] for r in records.values()} == {"published"}
    assert records["first"]["build_dir"] != records["second"]["build_dir"]
    fingerprints = {
        next(s for s in r["steps"] if s["name"] == "publish")["detail"]["fingerprint"]
        for r in records.values()
    }
    assert sha256(project / "warehouse" / "jaffle_shop.db") in fingerprints
    _dump(project / "warehouse" / "jaffle_shop.db")


@pytest.fixture
def read_only_dir(tmp_path):
    path = tmp_path / "ro"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"needs root to mount a read-only file system: {mounted.stderr.strip()}")
    yield path
    subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize(
    "where, message",
    [
        ("ro", "is not writable"),
        ("ro/warehouse", "cannot be created: Read-only file system"),
        ("file/warehouse", "cannot be created: Not a directory"),
    ],
)
def test_unusable_warehouse_directory_is_a_clear_exit_3(project, read_only_dir, where, message):
    (read_only_dir.parent / "file").write_text("not a directory")
    target = read_only_dir.parent / where
    result = run_cli(project, "run", DQ_WAREHOUSE_DIR=str(target))
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"warehouse directory {target} {message}" in result.stdout
    assert "ENVIRONMENT FAILURE (exit 3)" in result.stdout


SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/"),
    re.compile(r"xox[baprs]-[0-9A-Za-z-]{10,}"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"(?i)(password|passwd|secret|token)\s*[:=]\s*['\"][^'\"$<{ ]{8,}['\"]"),
]


def test_no_secrets_in_the_repository():
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    hits = []
    for name in files:
        path = REPO / name
        if path.suffix in {".png", ".db"} or not path.is_file() or name.endswith("-lock.json"):
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        hits += [f"{name}: {m.group(0)[:40]}" for p in SECRET_PATTERNS for m in p.finditer(text)]
    assert hits == []
