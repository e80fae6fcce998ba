"""Airflow 3 for real: start it with ``dq.airflow_local``, log in through the UI,
run the DAG, see every task succeed (the data pipeline, then the model stage and
a deploy into production), get the success notifications, stop it.

Self-contained: its own ``AIRFLOW_HOME`` and project copy under ``tmp_path``,
free ports, retries off (``DQ_RETRIES=0``), manual schedule (``DQ_SCHEDULE=``);
the webhook notification lands on a local ``http.server``. No Airflow process
listens beyond 127.0.0.1, the chosen admin password stays out of the state file,
the processes' environment and the logs, and stopping Airflow must leave none of
its processes behind.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from dq import airflow_local
from dq.pipeline import STEP_NAMES
from tests import browser_fixtures as fx
from tests.airflow_api import api as _api
from tests.airflow_api import wait as _wait
from tests.conftest import REPO, copy_project

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # The DAG's model task runs the model stage (dq/model.py, issue 10).
    pytest.mark.skipif(
        importlib.util.find_spec("dq.model") is None, reason="needs the model stage"
    ),
]

browser, offline_page = fx.browser, fx.offline_page

DAG_ID = "jaffle_shop_dq"
TASKS = {"begin", *STEP_NAMES, "docs", "model", "deploy", "conclude"}
CHOSEN_PW = "Browser-test-pw-4e1d"


def _listening(procs: list[psutil.Process]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket these processes listen on."""
    pids = {p.pid for p in procs}
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    }


class _Webhook(BaseHTTPRequestHandler):
    posts: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        type(self).posts.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def test_airflow_runs_the_dag_and_shows_it(tmp_path, offline_page):
    root = copy_project(tmp_path / "project")
    if not (root / "model").exists():
        shutil.copytree(REPO / "model", root / "model")
    home = tmp_path / "airflow_home"
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    extra = {
        "DQ_ROOT": str(root),
        # Explicit: a DQ_PRODUCTION_DIR in the caller's environment (make ci in a
        # throw-away production) must not send this test's releases elsewhere.
        "DQ_PRODUCTION_DIR": str(root / "production"),
        "DQ_RETRIES": "0",
        "DQ_SCHEDULE": "",
        "DQ_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_address[1]}/hook",
        "DQ_SMTP_HOST": "",
        "DQ_DOCS_BASE_URL": "http://127.0.0.1:8765",
        "DQ_AIRFLOW_PASSWORD": CHOSEN_PW,
    }
    started = time.monotonic()
    instance = airflow_local.start(home, fx.free_port(), extra_env=extra)
    pids = []
    try:
        print(f"Airflow healthy after {time.monotonic() - started:.1f} s")
        procs = airflow_local.processes(home)
        pids = [p.pid for p in procs]
        # Only the API server listens, on loopback: no log server on *:8793.
        assert _listening(procs) == {("127.0.0.1", instance.port)}
        assert instance.password == CHOSEN_PW
        assert CHOSEN_PW not in (home / airflow_local.STATE_FILE).read_text(encoding="utf-8")
        assert not [p for p in procs if "DQ_AIRFLOW_PASSWORD" in p.environ()]
        base = instance.url
        token = _api(
            base,
            "POST",
            "/auth/token",
            body={"username": instance.username, "password": instance.password},
        )["access_token"]
        _wait(
            "the DAG to be parsed",
            lambda: _api(base, "GET", f"/api/v2/dags/{DAG_ID}", token),
            timeout=90,
        )
        _api(base, "PATCH", f"/api/v2/dags/{DAG_ID}", token, {"is_paused": False})
        run = _api(
            base,
            "POST",
            f"/api/v2/dags/{DAG_ID}/dagRuns",
            token,
            {"logical_date": None, "conf": {}},
        )
        run_id = run["dag_run_id"]

        page = offline_page
        page.goto(base + "/")
        page.wait_for_selector("input[type=password]")
        page.locator("input:not([type=password])").first.fill(instance.username)
        page.fill("input[type=password]", instance.password)
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "/auth/" not in url, timeout=30_000)
        page.goto(f"{base}/dags/{DAG_ID}")
        page.get_by_text(DAG_ID).first.wait_for()

        state = _wait(
            "the DAG run to finish",
            lambda: (
                _api(base, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token)["state"]
                in ("success", "failed")
                and _api(base, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token)["state"]
            ),
            timeout=300,
            every=3,
        )
        instances = _api(
            base, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", token
        )["task_instances"]
        states = {ti["task_id"]: ti["state"] for ti in instances}
        assert state == "success", states
        assert states == dict.fromkeys(TASKS, "success")

        # Task logs still reach the UI without the log server: read from the files.
        log = _api(
            base,
            "GET",
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/publish/logs/1",
            token,
        )
        events = [str(line.get("event", "")) for line in log["content"]]
        assert any(str(home / "logs") in e for e in events), events[:5]  # a local file
        assert len(events) > 5 and not any("Could not read served logs" in e for e in events)

        # The publish task emitted the warehouse asset event for this run.
        events = _api(base, "GET", "/api/v2/assets/events?source_dag_id=" + DAG_ID, token)
        assert any(
            e["source_run_id"] == run_id and e["source_task_id"] == "publish"
            for e in events["asset_events"]
        ), events

        # The run record: this DAG run's id, every step in order, published.
        record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
        assert record["status"] == "published" and record["origin"] == "airflow"
        assert record["airflow_run_id"] == run_id
        assert [s["name"] for s in record["steps"]] == [*STEP_NAMES, "docs"]
        assert (root / "warehouse" / "jaffle_shop.db").exists()

        # The deploy task put this run's data and the gated model into production.
        manifest = json.loads((root / "production/current/manifest.json").read_text())
        assert manifest["data"]["run_id"] == record["run_id"]
        assert manifest["model"]["gate"]["passed"] is True

        # Two notifications: the deploy naming the release, the conclude task's
        # success with links.
        texts = [post["text"] for post in _Webhook.posts]
        assert len(texts) == 2, texts
        assert any("deploy: OK" in t and manifest["release_id"] in t for t in texts)
        [text] = [t for t in texts if "PUBLISHED" in t]
        assert "http://127.0.0.1:8765/gx/index.html" in text

        # The grid of this run in the UI: every task there, each marked successful.
        page.goto(f"{base}/dags/{DAG_ID}/runs/{run_id}")
        for task_id in ("publish", "validate_transformed", "conclude"):
            page.get_by_text(task_id, exact=True).first.wait_for()
        page.get_by_text("success", exact=False).first.wait_for()
        page.wait_for_load_state("networkidle")
        fx.save_screenshot(page, "airflow.png", readme=True)
    finally:
        hook.shutdown()
        hook.server_close()
        # Task processes come and go: take the whole tree again just before stopping.
        pids += [p.pid for p in airflow_local.processes(home)]
        airflow_local.stop(home)
    left = [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert not left, f"Airflow processes left behind: {left}"
    for path in (home / "logs").rglob("*"):
        if path.is_file():
            assert CHOSEN_PW.encode() not in path.read_bytes(), path
