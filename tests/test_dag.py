"""The Airflow DAG: imports cleanly and has the expected shape. (It really runs in
tests/test_browser_airflow.py, under a real scheduler, with the UI.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dq.pipeline import STEP_NAMES
from tests.conftest import REPO

DAG_ID = "jaffle_shop_dq"
#: After publish: this run's dbt docs, the model stage on the fresh data, the deploy.
ORDER = ["begin", *STEP_NAMES, "docs", "model", "deploy", "conclude"]


@pytest.fixture
def airflow_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "airflow_home"
    home.mkdir()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "DQ_RETRIES": "0",
    }


def test_dagbag_imports_without_errors_and_keeps_the_order(airflow_env, monkeypatch):
    for key, value in airflow_env.items():
        monkeypatch.setenv(key, value)
    code = f"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(REPO / "dags")!r})
dag = bag.dags[{DAG_ID!r}]
print(json.dumps({{
    "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
    "tasks": {{t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}},
    "schedule": str(dag.schedule),
    "catchup": dag.catchup,
    "max_active_runs": dag.max_active_runs,
    "retries": dag.default_args["retries"],
    "setup": [t.task_id for t in dag.tasks if t.is_setup],
    "teardown": [t.task_id for t in dag.tasks if t.is_teardown],
    "fail_dagrun": dag.get_task("conclude").on_failure_fail_dagrun,
}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    import json

    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    tasks = info["tasks"]
    assert set(tasks) == set(ORDER)
    # A straight line: each task's only downstream is the next one (begin also
    # feeds the run id to every task, so it fans out).
    for before, after in zip(ORDER[1:-1], ORDER[2:], strict=True):
        assert tasks[before] == [after], (before, tasks[before])
    assert {"preflight", "docs", "deploy", "conclude"} <= set(tasks["begin"])
    assert "model" not in tasks["begin"]  # it trains on the published warehouse, not a run
    assert tasks["conclude"] == []
    # begin/conclude are Airflow's setup/teardown: conclude runs whatever failed.
    # Airflow then judges the DAG run by `deploy`, the last work task: a failed
    # step or model gate fails the run even when conclude succeeds (with
    # on_failure_fail_dagrun, a published run with a failed gate ended "success").
    assert info["setup"] == ["begin"] and info["teardown"] == ["conclude"]
    assert info["fail_dagrun"] is False
    assert info["schedule"] == "@daily" and info["catchup"] is False
    assert info["max_active_runs"] == 1 and info["retries"] == 0
