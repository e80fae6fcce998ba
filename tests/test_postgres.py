"""The PostgreSQL target on a real server the test starts (``dq.pgcluster``):
the same pipeline publishes the same rows as on SQLite, publish refuses a build
written after its audit, and a run killed in the middle of publish leaves the
published schema exactly as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import copy_project, project_env, run_cli_process, sqlite_tables

from dq import config, pgcluster, pipeline, targets
from dq.errors import EnvironmentFailure, GateFailed

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: Declared column types on SQLite and data types on PostgreSQL, by kind.
KINDS = {
    "text": "text",
    "varchar": "text",
    "character varying": "text",
    "integer": "integer",
    "int": "integer",
    "bigint": "integer",
    "real": "float",
    "float": "float",
    "double precision": "float",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    root: Path
    settings: config.Settings
    env: dict[str, str]

    def connect(self):
        import psycopg2

        s = self.settings
        return psycopg2.connect(
            host=s.pg_host, port=s.pg_port, user=s.pg_user, password=s.pg_password,
            dbname=s.pg_database,
        )  # fmt: skip

    def published_digest(self) -> str:
        with contextlib.closing(self.connect()) as con, con.cursor() as cur:
            return targets.Postgres(self.settings)._digest(cur, targets.PUBLISHED)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    """A throw-away cluster (initdb + pg_ctl, ~2 s) and a project copy whose run
    published on it. The cluster lives outside pytest's tmp folder, which user
    postgres may not enter."""
    root = copy_project(tmp_path_factory.mktemp("pg") / "project")
    services = Path(tempfile.mkdtemp(prefix="dq-pg-"))
    services.chmod(0o755)
    port = _free_port()
    settings = dataclasses.replace(
        config.for_root(root), target="postgres", pg_port=port, services_path=services
    )
    try:
        pgcluster.start(settings)
        settings = dataclasses.replace(
            settings, pg_password=(services / "pg-password").read_text().strip()
        )
        env = {"DQ_TARGET": "postgres", "DQ_PG_PORT": str(port), "DQ_SERVICES_DIR": str(services)}
        first = run_cli_process(root, "run", **env)
        assert first.returncode == 0, first.stdout + first.stderr
        yield Server(root, settings, env)
    finally:
        pgcluster.remove(settings)
        shutil.rmtree(services, ignore_errors=True)


def _postgres_tables(server: Server) -> dict[str, tuple[list, list]]:
    with contextlib.closing(server.connect()) as con, con.cursor() as cur:
        cur.execute(
            "select table_name, column_name, data_type from information_schema.columns"
            " where table_schema = 'published' order by table_name, ordinal_position"
        )
        columns: dict[str, list] = {}
        for table, column, kind in cur.fetchall():
            columns.setdefault(table, []).append((column, KINDS[kind]))
        out = {}
        for table, cols in columns.items():
            cur.execute(f'select * from published."{table}"')
            out[table] = (cols, cur.fetchall())
        return out


def _normal(row: tuple) -> tuple:
    # Floats to 9 significant digits: both sides hold the same doubles up to the
    # last bits of sums taken in another order.
    return tuple(
        ("", float(f"{v:.9g}")) if isinstance(v, float) else ("", v) if v is not None else ("0",)
        for v in row
    )


def test_the_same_pipeline_publishes_the_same_rows_and_types_as_on_sqlite(server, bundled_run):
    sqlite_root, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    lite = {
        table: ([(name, KINDS[kind.lower()]) for name, kind in columns], rows)
        for table, (columns, rows) in sqlite_tables(
            sqlite_root / "warehouse" / "jaffle_shop.db"
        ).items()
    }
    pg = _postgres_tables(server)
    assert sorted(pg) == sorted(lite)
    for table in ("customers", "orders", "order_items", "order_features", "stg_orders"):
        assert table in pg
    for table, (columns, rows) in lite.items():
        pg_columns, pg_rows = pg[table]
        assert pg_columns == columns, table
        assert len(pg_rows) == len(rows), table
        assert sorted(map(_normal, pg_rows)) == sorted(map(_normal, rows)), table
    # Not vacuous: the marts hold money and counts.
    assert len(lite["orders"][1]) > 1000
    assert any(isinstance(v, float) and not math.isclose(v, round(v)) for v in lite["orders"][1][0])


def _settings(server: Server) -> config.Settings:
    return dataclasses.replace(server.settings, lock_timeout=0)


def test_publish_refuses_a_build_written_after_its_audit(server):
    settings = _settings(server)
    before = server.published_digest()
    run = pipeline.begin(settings, "pg-tampered")
    for name in pipeline.STEP_NAMES[:-1]:
        pipeline.execute(settings, run.run_id, name, run)
    with contextlib.closing(server.connect()) as con, con, con.cursor() as cur:
        cur.execute(
            f"update {run.build.schema}.orders set order_total = order_total + 1"
            " where order_id = (select min(order_id) from "
            f"{run.build.schema}.orders)"
        )
    with pytest.raises(GateFailed, match="changed after validate_transformed"):
        pipeline.execute(settings, run.run_id, "publish", run)
    pipeline.conclude(settings, run.run_id, run)
    assert server.published_digest() == before


def _wait(predicate, what: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_run_killed_inside_publish_leaves_the_published_schema_unchanged(server):
    """The run is held inside its publish transaction after it renamed
    ``published`` away and before it renamed its build in, then killed (-9)."""
    before = server.published_digest()
    customers = server.root / "seeds" / "raw_customers.csv"
    lines = customers.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].split(",")[0] + ",Changed Name\n"
    customers.write_text("".join(lines), encoding="utf-8")
    run_id = "pg-killed"
    schema = config.Build(Path(run_id)).schema

    gate = server.connect()  # holds every publish at its first statement
    gate.autocommit = True
    gate.cursor().execute("select pg_advisory_lock(hashtext('dq publish'))")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dq", "run", "--run-id", run_id],
        cwd=server.root,
        env=project_env(server.root, **server.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    holder = server.connect()
    try:
        record = server.root / "warehouse" / "runs" / f"{run_id}.json"

        def publishing():
            assert proc.poll() is None, "the run ended before publish"
            return record.exists() and '"name": "publish"' in record.read_text()

        _wait(publishing, "the run to reach publish")
        # Block the second rename: an uncommitted change to the build's schema row.
        holder.cursor().execute(f"alter schema {schema} rename to {schema}_held")
        gate.cursor().execute("select pg_advisory_unlock(hashtext('dq publish'))")

        def waiting_on_rename():
            cur = gate.cursor()
            cur.execute(
                "select 1 from pg_stat_activity where application_name = 'dq'"
                " and wait_event_type = 'Lock' and query like %s",
                (f'alter schema "{schema}" rename to published%',),
            )
            return cur.fetchone()

        _wait(waiting_on_rename, "publish to block on its second rename", 60)
        # Readers meanwhile see the published schema as it was, and are not blocked.
        reader = gate.cursor()
        reader.execute("set statement_timeout = '5s'")
        reader.execute("select count(*) from published.stg_customers")
        assert reader.fetchone()[0] > 0
        assert server.published_digest() == before
        # Inside the run's transaction, `published` is renamed away now.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        with contextlib.suppress(Exception):
            os.killpg(proc.pid, signal.SIGKILL)
        holder.rollback()
        holder.close()
        gate.close()

    # The server ends the dead client's transaction: nothing of it is committed.
    def settled():
        with contextlib.closing(server.connect()) as con, con.cursor() as cur:
            cur.execute("select count(*) from pg_stat_activity where application_name = 'dq'")
            return cur.fetchone()[0] == 0

    _wait(settled, "the killed run's session to end", 60)
    assert server.published_digest() == before
    with contextlib.closing(server.connect()) as con, con.cursor() as cur:
        cur.execute("select nspname from pg_namespace where nspname like 'retired_%'")
        assert cur.fetchall() == []
        cur.execute("select 1 from published.stg_customers where customer_name = 'Changed Name'")
        assert cur.fetchall() == []

    # The next run publishes the change: the killed run left no lock behind.
    again = run_cli_process(server.root, "run", **server.env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert server.published_digest() != before


def test_start_does_not_take_another_server_on_its_port_for_its_own(server):
    """A second project whose port another cluster holds: a clear error naming the
    log and the setting, not a connection to someone else's server."""
    services = Path(tempfile.mkdtemp(prefix="dq-pg-other-"))
    services.chmod(0o755)
    other = dataclasses.replace(server.settings, services_path=services, pg_password="")
    try:
        with pytest.raises(EnvironmentFailure, match="could not create any TCP/IP sockets"):
            pgcluster.start(other)
        assert pgcluster.status(other) is None
    finally:
        pgcluster.remove(other)
        shutil.rmtree(services, ignore_errors=True)
