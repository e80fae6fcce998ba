"""
### Jaffle Shop data-quality pipeline

`begin` (setup) gives the run its own build folder `warehouse/build/<run id>/`;
the steps load the raw Jaffle Shop CSVs (`seeds/`) into it with dbt, validate
the raw tables with Great Expectations, build and test the staging, quarantine
and mart models, validate them, and only when every gate passed on this very
file (its fingerprint is checked) publish it atomically. `conclude` (teardown,
always) builds dbt docs, records the outcome with this DAG run's id, notifies
(`DQ_SLACK_WEBHOOK_URL`, `DQ_SMTP_*`) and cleans old builds. GX Data Docs are
updated by every checkpoint, so failed runs are visible.

A successful `publish` emits the `jaffle_shop_warehouse` asset event (DAGs that
read the warehouse can be scheduled on it). Trigger with config
`{"accept": ["row-counts"], "reason": "..."}` to accept an intended change for
one run (recorded with who and why). Schedule: `DQ_SCHEDULE` (default `@daily`;
empty for manual runs only).

Every task is a thin call to `dq.pipeline` (`begin`, `execute`, `conclude`):
the same functions `python -m dq run` calls. Nothing heavy happens at import time.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, setup, task, teardown

# Light to import (no dbt, no GX: those load inside the tasks).
from dq.pipeline import ACCEPTABLE, STEP_NAMES

#: The published warehouse, updated only by a successful publish task.
WAREHOUSE = Asset(name="jaffle_shop_warehouse", uri="dq://jaffle_shop/warehouse")


def _fail_fast(exc: Exception) -> Exception:
    """Bad data or a failed gate does not get better by retrying: fail now.
    Environment failures (disk full, a busy lock) keep Airflow's retries."""
    from airflow.exceptions import AirflowFailException

    from dq import pipeline

    if isinstance(exc, (pipeline.GateFailed, pipeline.BadInput)):
        return AirflowFailException(str(exc))
    return exc


@dag(
    dag_id="jaffle_shop_dq",
    schedule=os.environ.get("DQ_SCHEDULE", "@daily") or None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": int(os.environ.get("DQ_RETRIES", "2")),
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "accept": Param(
            [],
            type="array",
            items={"type": "string", "enum": sorted(ACCEPTABLE)},
            description="Accept, for this run only: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(ACCEPTABLE.items())),
        ),
        "reason": Param("", type="string", description="Why (required with accept)."),
    },
    tags=["dataops", "dbt", "great_expectations"],
    doc_md=__doc__,
)
def jaffle_shop_dq():
    @setup
    @task
    def begin(**context) -> str:
        """`dq.pipeline.begin`: the run record (with this DAG run's id) and the
        run's own build folder; returns the pipeline's run id."""
        from airflow.exceptions import AirflowFailException

        from dq import config, pipeline

        dag_run = context["dag_run"]
        who = getattr(dag_run, "triggering_user_name", None) or "airflow"
        params = context["params"]
        try:
            accepted = [pipeline.acceptance(w, params["reason"], by=who) for w in params["accept"]]
            run = pipeline.begin(
                config.load(),
                origin="airflow",
                airflow_run_id=context["run_id"],
                acceptances=accepted,
            )
        except pipeline.BadInput as exc:
            raise AirflowFailException(str(exc)) from exc
        return run.run_id

    def step_task(name: str):
        @task(
            task_id=name,
            doc_md=f"`dq.pipeline.execute(..., {name!r})` on this run's own build.",
            outlets=[WAREHOUSE] if name == "publish" else [],
        )
        def run(dq_run_id: str) -> None:
            from dq import config, pipeline

            try:
                pipeline.execute(config.load(), dq_run_id, name)
            except pipeline.PipelineError as exc:
                raise _fail_fast(exc) from exc

        return run

    @teardown(on_failure_fail_dagrun=True)
    @task
    def conclude(dq_run_id: str) -> int:
        """`dq.pipeline.conclude`: dbt docs, the outcome in the run record, one
        notification, clean-up; fails the DAG run unless the warehouse was published."""
        from airflow.exceptions import AirflowFailException

        from dq import config, pipeline

        run = pipeline.conclude(config.load(), dq_run_id)
        if run.exit_code != pipeline.EXIT_OK:
            raise AirflowFailException(f"run {dq_run_id}: {run.status} (exit {run.exit_code})")
        return run.exit_code

    run_id = begin()
    previous = run_id
    for name in STEP_NAMES:
        current = step_task(name)(run_id)
        previous >> current
        previous = current
    previous >> conclude(run_id)


jaffle_shop_dq()
