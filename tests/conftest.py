"""Shared fixtures: temporary copies of the project, and one full pipeline run.

Tests never touch the repository's own warehouse, Data Docs or seeds: each
works on a copy under ``tmp_path`` and points ``DQ_ROOT`` at it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dq.sandbox import copy_project, project_env  # the tests import them from here too

REPO = Path(__file__).resolve().parent.parent


def run_cli_process(root: Path, *args: str, timeout: float = 600, **extra: str):
    """``python -m dq <args>`` in a new process on the copy at ``root``: for what only
    a process shows (exit status, signals, two runs at once)."""
    return subprocess.run(
        [sys.executable, "-m", "dq", *args],
        cwd=root,
        env=project_env(root, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(root: Path, *args: str, **extra: str) -> CliResult:
    """``python -m dq <args>`` in this process (``dq.cli.main``, the function
    ``python -m dq`` calls), with the environment a subprocess would get and its
    output captured. Saves dbt's and GX's import time (~17 s) per run."""
    import contextlib
    import io

    from dq import cli

    env = project_env(root, **extra)
    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the project for one test."""
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory: pytest.TempPathFactory):
    """The whole pipeline on the bundled sample (a copy), as a user runs it: a real
    ``python -m dq run`` process. Once per test session: with several pytest-xdist
    workers, the first one runs it and the others wait for it and share it."""
    import fcntl
    import pickle

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this session's folder, the same for every worker
    with open(shared / "bundled.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "bundled.pickle"
        if done.exists():
            return pickle.loads(done.read_bytes())
        root = copy_project(shared / "bundled" / "project")
        result = run_cli_process(root, "run")
        done.write_bytes(pickle.dumps((root, result)))
        return root, result


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def published_project(project: Path, bundled_run) -> tuple[Path, str]:
    """A project copy that already has a published warehouse (from the session
    run) and that warehouse's hash, to prove a failed run leaves it unchanged."""
    source_root, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    warehouse = project / "warehouse"
    warehouse.mkdir()
    target = warehouse / "jaffle_shop.db"
    shutil.copy2(source_root / "warehouse" / "jaffle_shop.db", target)
    return project, sha256(target)


def sqlite_tables(db: Path) -> dict[str, tuple[list[tuple[str, str]], list[tuple]]]:
    """Every table of a SQLite warehouse: its columns with their declared types,
    and its rows (what the other targets' tests compare theirs with)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            )
        ]
        return {
            name: (
                [(c[1], c[2]) for c in con.execute(f'pragma table_info("{name}")')],
                con.execute(f'select * from "{name}"').fetchall(),
            )
            for name in names
        }
    finally:
        con.close()


def last_build_db(root: Path) -> Path:
    """The build warehouse of the latest run (kept when the run failed)."""
    import json

    record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
    return Path(record["build_dir"]) / "jaffle_shop.db"


def visible_text(page: str) -> str:
    """What a browser would show of an HTML page, roughly: tags, styles and scripts removed."""
    import html
    import re

    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def rewrite_csv(path: Path, edit) -> None:
    """Read a CSV as rows, let ``edit(header, rows)`` change them, write it back."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, data = rows[0], rows[1:]
    data = edit(header, data) or data
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *data])


# ------------------------------------------------------------- a local webhook


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.answer)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.posts, server.answer = [], 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/x"
    yield server
    server.shutdown()
    server.server_close()
