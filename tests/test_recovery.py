"""Honest outcomes when the machine, not the data, fails: a broken published
warehouse (named, kept as evidence, recovered on request), a full disk, and
tools that cannot run (issue 8, points 5 and 6)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from dq import errors, publish
from tests.conftest import run_cli, sha256


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage_a_page(path: Path) -> None:
    with sqlite3.connect(path) as db:
        page_size = db.execute("pragma page_size").fetchone()[0]
        pages = db.execute("pragma page_count").fetchone()[0]
    with open(path, "r+b") as handle:  # scribble over a page in the middle
        handle.seek(page_size * (pages // 2))
        handle.write(b"\xa5" * page_size)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_truncate, _damage_a_page], ids=["truncated", "damaged-page"])
def test_a_broken_published_warehouse_stops_the_run_and_names_the_file(
    published_project,
    damage,
    webhook,
):
    root, _ = published_project
    published = root / "warehouse" / "jaffle_shop.db"
    damage(published)
    broken = sha256(published)
    result = run_cli(root, "run", DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ENVIRONMENT FAILURE (exit 3)" in result.stdout
    assert f"the published warehouse {published} is broken" in result.stdout
    assert "--accept broken-warehouse" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert sha256(published) == broken  # left as it was
    assert len(webhook.posts) == 1 and "ENVIRONMENT FAILURE" in webhook.posts[0][2]["text"]


@pytest.mark.slow
def test_recovery_publishes_the_audited_build_and_keeps_the_broken_file(published_project):
    root, _ = published_project
    published = root / "warehouse" / "jaffle_shop.db"
    _truncate(published)
    broken = sha256(published)
    reason = "disk failure on 2026-11-27, ticket OPS-12"
    result = run_cli(root, "run", "--accept", "broken-warehouse", "--reason", reason)
    assert result.returncode == 0, result.stdout + result.stderr
    assert publish.check_published(published) is None
    evidence = list((root / "warehouse" / "broken").glob("*.db"))
    assert [sha256(p) for p in evidence] == [broken]
    record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
    (accepted,) = record["acceptances"]
    assert accepted["what"] == "broken-warehouse" and accepted["reason"] == reason
    assert accepted["by"]
    step = next(s for s in record["steps"] if s["name"] == "publish")
    assert step["detail"]["row_counts"].startswith("skipped")
    assert step["detail"]["broken_kept_as"] == str(evidence[0])


def test_accept_needs_a_reason(project):
    result = run_cli(project, "run", "--accept", "row-counts")
    assert result.returncode == 2
    assert "needs a --reason" in result.stderr
    assert not (project / "warehouse").exists()


# --------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a given size, mounted for the test (needs root, as CI has)."""
    mounted = []

    def mount(size: str) -> Path:
        path = tmp_path / f"disk-{len(mounted)}"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"needs root to mount a small file system: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=True)


def _fill(path: Path) -> None:
    with open(path / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass


@pytest.mark.slow
@pytest.mark.parametrize("size, step", [("64k", "begin"), ("1500k", "seed")])
def test_a_full_disk_is_an_environment_failure_not_bad_input(
    project,
    small_disk,
    webhook,
    size,
    step,
):
    disk = small_disk(size)
    if step == "begin":
        _fill(disk)  # not one free block left
    result = run_cli(
        project, "run", DQ_WAREHOUSE_DIR=str(disk / "warehouse"), DQ_SLACK_WEBHOOK_URL=webhook.url
    )
    out = result.stdout + result.stderr
    assert result.returncode == 3, out
    assert "ENVIRONMENT FAILURE (exit 3)" in result.stdout
    assert "No space left on device" in result.stdout
    assert f"  {step} " in result.stdout and "BAD INPUT" not in out
    assert "Traceback" not in out
    assert len(webhook.posts) == 1  # notified like any failure
    assert not (disk / "warehouse" / "jaffle_shop.db").exists()


def test_publish_onto_a_full_disk_fails_cleanly(tmp_path, small_disk):
    build = tmp_path / "build.db"
    with sqlite3.connect(build) as db:
        db.execute("create table t (x)")
        db.executemany("insert into t values (?)", [("x" * 1000,)] * 2000)
    target = small_disk("256k") / "jaffle_shop.db"
    with pytest.raises(OSError) as raised:
        publish.publish(build, target, audited=publish_fingerprint(build))
    assert errors.classify(raised.value) == errors.EXIT_ENVIRONMENT
    assert list(target.parent.iterdir()) == []  # no half-written copy left behind


def publish_fingerprint(path: Path) -> str:
    from dq.build import fingerprint

    return fingerprint(path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path, addition, expected",
    [
        (  # dbt cannot even parse the project
            "models/marts/orders.yml",
            "\n  - name: [unclosed\n",
            "dbt seed --full-refresh could not run",
        ),
        (  # a model that cannot compile: code, not data
            "models/marts/orders.sql",
            "\n{{ this_macro_does_not_exist() }}\n",
            "dbt build could not build every node",
        ),
    ],
    ids=["parse-error", "compile-error"],
)
def test_a_tool_that_cannot_run_is_exit_3_with_its_whole_error(project, path, addition, expected):
    """dbt failing on the project is the tool or the code, not the data: exit 3,
    and the summary shows dbt's whole message, not its first line."""
    model = project / "dbt_project" / path
    model.write_text(model.read_text() + addition)
    result = run_cli(project, "run")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ENVIRONMENT FAILURE (exit 3)" in result.stdout
    assert expected in result.stdout
    message = result.stdout.split(expected, 1)[1].split("\n\n", 1)[0]
    assert len(message.splitlines()) > 1, message  # more than dbt's first line
    assert ("orders.yml" if "yml" in path else "this_macro_does_not_exist") in message
