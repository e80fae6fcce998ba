"""The same DAG on CeleryExecutor, for real: ``dq.airflow_local.start(distributed=True)``
starts the project's PostgreSQL (Airflow's metadata and the Celery results), its
Redis (the broker) and two Celery workers; a DAG run triggered through the REST
API, building on PostgreSQL (``DQ_TARGET=postgres``), must succeed with every
task run by one of the two workers and leave the published tables in PostgreSQL.

Self-contained: a project copy with its own services folder (a throw-away
PostgreSQL cluster, removed at the end), its own ``AIRFLOW_HOME``, free ports,
retries off, manual schedule. Whatever happens, everything it started is
stopped, and no process of it may be left behind. 4-5 minutes on 2 cores:
~1 min to start (a fresh cluster, migrations), 2-3 min for the DAG run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from dq import airflow_local, config, pgcluster
from dq.pipeline import STEP_NAMES
from tests.airflow_api import api, token, wait
from tests.browser_fixtures import free_port
from tests.conftest import copy_project

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DAG_ID = "jaffle_shop_dq"
TASKS = {"begin", *STEP_NAMES, "docs", "model", "deploy", "conclude"}
#: The model stage (dq/model.py) trains on the published SQLite file a release
#: carries: on the postgres target the DAG skips it, and deploy with it.
MODEL_SKIPPED = {"model": "skipped", "deploy": "skipped"}
CHOSEN_PW = "Celery-test-pw-91c2"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project copy whose services folder the ``postgres`` user can reach
    (pytest's ``tmp_path`` is root's alone, and PostgreSQL refuses to run as
    root), with this test's settings as the only ``DQ_*`` variables of this
    process: ``start`` reads them here and hands them down to every Airflow process."""
    root = copy_project(tmp_path / "project")
    services = Path(tempfile.mkdtemp(prefix="dq-distributed-"))
    services.chmod(0o711)
    for key in [k for k in os.environ if k.startswith("DQ_")]:
        monkeypatch.delenv(key)
    env = {
        "DQ_ROOT": str(root),
        "DQ_SERVICES_DIR": str(services),
        "DQ_PRODUCTION_DIR": str(root / "production"),
        "DQ_RETRIES": "0",
        "DQ_SCHEDULE": "",
        "DQ_SLACK_WEBHOOK_URL": "",
        "DQ_SMTP_HOST": "",
        "DQ_TARGET": "postgres",
        "DQ_PG_PORT": str(free_port()),
        "DQ_REDIS_PORT": str(free_port()),
        "DQ_AIRFLOW_PASSWORD": CHOSEN_PW,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield root
    shutil.rmtree(services, ignore_errors=True)


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    }


def _query(settings: config.Settings, database: str, sql: str) -> list[tuple]:
    """Rows of one query on the project's PostgreSQL, with the settings' credentials."""
    import psycopg2

    con = psycopg2.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        user=settings.pg_user,
        password=settings.pg_password,
        dbname=database,
    )
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        con.close()


def test_the_dag_runs_on_two_celery_workers(project):
    root = project
    home = root.parent / "airflow_home"  # in tmp_path
    settings = config.load()
    started = time.monotonic()
    pids: list[int] = []
    try:
        instance = airflow_local.start(home, free_port(), distributed=True, timeout=240)
        print(f"distributed Airflow ready after {time.monotonic() - started:.1f} s")
        settings = config.load()  # with the passwords start drew
        procs = airflow_local.processes(home)
        pids = [p.pid for p in procs]
        state = json.loads((home / airflow_local.STATE_FILE).read_text(encoding="utf-8"))
        workers = airflow_local.worker_names(2)
        assert set(state["pids"]) == {
            airflow_local.REDIS,
            *airflow_local.COMPONENTS,
            *workers,
        }
        assert state["mode"] == "distributed"
        state_text = json.dumps(state)
        for secret in (CHOSEN_PW, settings.pg_password, settings.redis_password):
            assert secret and secret not in state_text
        # Only the API server and Redis listen, on loopback: no worker log server.
        assert _listening(set(pids)) == {
            ("127.0.0.1", instance.port),
            ("127.0.0.1", settings.redis_port),
        }

        base = instance.url
        bearer = token(base, instance.username, instance.password)
        wait(
            "the DAG to be parsed",
            lambda: api(base, "GET", f"/api/v2/dags/{DAG_ID}", bearer),
            timeout=90,
        )
        api(base, "PATCH", f"/api/v2/dags/{DAG_ID}", bearer, {"is_paused": False})
        body = {"logical_date": None, "conf": {}}
        run_id = api(base, "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", bearer, body)["dag_run_id"]
        began = time.monotonic()
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"

        def finished():
            run_state = api(base, "GET", run_path, bearer)["state"]
            return run_state if run_state in ("success", "failed") else None

        run_state = wait("the DAG run to finish", finished, timeout=420, every=3)
        print(f"DAG run {run_state} after {time.monotonic() - began:.1f} s")
        instances = api(base, "GET", run_path + "/taskInstances", bearer)["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in instances}
        # Each task that ran names the worker that ran it.
        hosts = {ti["task_id"]: ti["hostname"] for ti in instances if ti["state"] == "success"}
        print("hostnames:", hosts)
        assert run_state == "success", states
        assert states == {t: MODEL_SKIPPED.get(t, "success") for t in TASKS}, states

        # Each task ran on one of the two Celery workers (its name is the hostname
        # it records), both took some, and every one went through Celery.
        assert set(hosts.values()) == set(workers), hosts
        # Task states in the Celery result backend (Airflow's database): proof that
        # the tasks went through Celery, not some other executor.
        results = dict(
            _query(
                settings,
                airflow_local.AIRFLOW_DATABASE,
                "select status, count(*) from celery_taskmeta group by status",
            )
        )
        assert results.get("SUCCESS", 0) >= len(hosts), results

        # The publish task emitted the warehouse asset event for this run.
        events = api(base, "GET", "/api/v2/assets/events?source_dag_id=" + DAG_ID, bearer)
        assert any(
            e["source_run_id"] == run_id and e["source_task_id"] == "publish"
            for e in events["asset_events"]
        ), events

        # The warehouse was published by this DAG run, into PostgreSQL: the marts in
        # schema `published` of the warehouse database, no SQLite file.
        record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
        assert record["status"] == "published" and record["origin"] == "airflow"
        assert record["airflow_run_id"] == run_id
        assert not (root / "warehouse" / "jaffle_shop.db").exists()
        counts = {
            table: _query(settings, settings.pg_database, f"select count(*) from published.{table}")
            for table in ("orders", "customers", "order_items")
        }
        assert all(rows[0][0] > 0 for rows in counts.values()), counts
    finally:
        # Task processes come and go: take the whole tree again just before stopping.
        pids += [p.pid for p in airflow_local.processes(home)]
        try:
            airflow_local.stop(home)
        finally:
            with contextlib.suppress(Exception):
                pgcluster.remove(settings)
    left = [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert not left, f"processes left behind: {left}"
    cluster = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if str(settings.pg_data_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert not cluster, f"the throw-away PostgreSQL still runs: {cluster}"
