"""The Airflow DAG: imports cleanly, has the expected shape, and really runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dq.pipeline import STEP_NAMES
from tests.conftest import REPO, copy_project, project_env

DAG_ID = "jaffle_shop_dq"
ORDER = ["start", *STEP_NAMES, "finish"]


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
    # A straight line: each task's only downstream is the next one (start also
    # feeds the run id to every task, so it fans out).
    for before, after in zip(ORDER[1:-1], ORDER[2:], strict=True):
        assert tasks[before] == [after], (before, tasks[before])
    assert "preflight" in tasks["start"]
    assert tasks["finish"] == []
    assert info["schedule"] == "@daily" and info["catchup"] is False
    assert info["max_active_runs"] == 1 and info["retries"] == 0


@pytest.mark.slow
def test_airflow_dags_test_runs_the_pipeline(airflow_env, tmp_path):
    root = copy_project(tmp_path / "project")
    env = {**project_env(root), **airflow_env}
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    migrate = subprocess.run(
        [str(bin_dir / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    result = subprocess.run(
        [str(bin_dir / "airflow"), "dags", "test", DAG_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "state=success" in log
    # It ran the real pipeline on the copy: the warehouse was published there.
    import json

    record = json.loads((root / "warehouse" / "runs" / "latest.json").read_text())
    assert record["status"] == "published"
    assert [s["name"] for s in record["steps"]] == ORDER[1:-1]
    assert (root / "warehouse" / "jaffle_shop.db").exists()
