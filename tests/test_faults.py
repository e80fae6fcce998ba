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

from tests.conftest import REPO, project_env, rewrite_csv, run_cli, sha256

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


def test_sigkill_at_every_step_leaves_the_published_warehouse_intact(published_project):
    root, before = published_project
    published = root / "warehouse" / "jaffle_shop.db"
    # (preflight takes milliseconds: too short to aim a kill at.)
    for step in ("seed", "validate_raw", "transform", "validate_transformed"):
        proc = _start(root, f"kill-{step}")
        _wait_for_step(root, f"kill-{step}", step, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert sha256(published) == before, f"published warehouse changed by a kill in {step}"
    # Killed after publishing, while docs are built: the new warehouse is whole.
    proc = _start(root, "kill-docs")
    _wait_for_step(root, "kill-docs", "docs", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert _dump(published)["orders"]
    # The next run succeeds (stale build files and the lock are no obstacle).
    result = run_cli(root, "run")
    assert result.returncode == 0, result.stdout + result.stderr


def test_second_run_refuses_or_waits_while_the_first_holds_the_lock(project):
    first = _start(project, "first")
    _wait_for_step(project, "first", "seed", first)
    refused = run_cli(project, "run", DQ_LOCK_TIMEOUT="0")
    assert refused.returncode == 2
    assert "another pipeline run holds" in refused.stdout
    assert "run first" in refused.stdout  # says who holds it
    waiting = _start(project, "second", DQ_LOCK_TIMEOUT="600")
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, out + err
    out, err = waiting.communicate(timeout=600)
    assert waiting.returncode == 0, out + err
    records = {
        r: json.loads((project / "warehouse" / "runs" / f"{r}.json").read_text())
        for r in ("first", "second")
    }
    assert records["first"]["status"] == records["second"]["status"] == "published"
    _dump(project / "warehouse" / "jaffle_shop.db")


def test_rerun_after_a_failure_is_safe_and_gives_the_same_result(published_project):
    root, _ = published_project
    published = root / "warehouse" / "jaffle_shop.db"
    expected = _dump(published)
    good = (root / "seeds" / "raw_stores.csv").read_bytes()
    rewrite_csv(root / "seeds" / "raw_stores.csv", lambda h, rows: [r[:3] + ["-1"] for r in rows])
    assert run_cli(root, "run").returncode == 1
    (root / "seeds" / "raw_stores.csv").write_bytes(good)
    for _ in range(2):
        result = run_cli(root, "run")
        assert result.returncode == 0, result.stdout + result.stderr
        assert _dump(published) == expected


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
def test_unusable_warehouse_directory_is_a_clear_exit_2(project, read_only_dir, where, message):
    (read_only_dir.parent / "file").write_text("not a directory")
    target = read_only_dir.parent / where
    result = run_cli(project, "run", DQ_WAREHOUSE_DIR=str(target))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"warehouse directory {target} {message}" in result.stdout
    assert "BAD INPUT (exit 2)" in result.stdout


ODD_NAMES = [
    "Robert'); DROP TABLE raw_orders; --",
    "Zoë Ångström 李雷",
    "Smith, John",
    'The "Jaffle" King',
    "Line one\nLine two",
    "  padded  ",
]


def test_valid_oddities_load_exactly(project):
    path = project / "seeds" / "raw_customers.csv"
    rewrite_csv(path, lambda h, rows: rows + [[f"odd-{i}", n] for i, n in enumerate(ODD_NAMES)])
    # A UTF-8 BOM and CRLF line endings, as spreadsheet exports write them.
    text = path.read_text(encoding="utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    result = run_cli(project, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(project / "warehouse" / "jaffle_shop.db") as db:
        raw = dict(db.execute("select id, name from raw_customers where id like 'odd-%'"))
        clean = dict(
            db.execute(
                "select customer_id, customer_name from stg_customers"
                " where customer_id like 'odd-%'"
            )
        )
        assert db.execute("select count(*) from raw_orders").fetchone()[0] > 0
        header = [r[1] for r in db.execute("pragma table_info(raw_customers)")]
    assert header == ["id", "name"]  # the BOM did not leak into the first column name
    # dbt's CSV reader (agate) turns a CRLF inside quotes into \n, stock and fast
    # loader alike; every other character arrives as written.
    expected = ODD_NAMES
    assert [raw[f"odd-{i}"] for i in range(len(ODD_NAMES))] == expected
    assert [clean[f"odd-{i}"] for i in range(len(ODD_NAMES))] == [n.strip() for n in expected]


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
