"""
### Jaffle Shop data-quality pipeline

Loads the raw Jaffle Shop CSVs (`seeds/`) into a fresh SQLite build warehouse
with dbt, validates the raw tables with Great Expectations, builds and tests
the staging, quarantine and mart models, validates them, and only when every
gate passed publishes the warehouse atomically. dbt docs are generated in all
cases; GX Data Docs are updated by every checkpoint, so failed runs are visible.

A successful `publish` emits the `jaffle_shop_warehouse` asset event (DAGs that
read the warehouse can be scheduled on it). `finish` notifies the configured
channels (`DQ_SLACK_WEBHOOK_URL`, `DQ_SMTP_*`) about failures and successes.
Schedule: `DQ_SCHEDULE` (default `@daily`; empty for manual runs only).

Every task is a thin call to `dq.pipeline` — the same functions that
`python -m dq run` calls. Nothing heavy happens at import time.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

# Light to import (no dbt, no GX: those load inside the tasks).
from dq.pipeline import STEP_NAMES

#: The published warehouse, updated only by a successful publish task.
WAREHOUSE = Asset(name="jaffle_shop_warehouse", uri="dq://jaffle_shop/warehouse")


def _run_step(name: str, run_id: str) -> None:
    from airflow.exceptions import AirflowFailException

    from dq import config, pipeline

    try:
        pipeline.run_step(config.load(), run_id, name)
    except (pipeline.GateFailed, pipeline.BadInput) as exc:
        # Bad data does not get better by retrying: fail now, no retries.
        raise AirflowFailException(str(exc)) from exc


def _notify_start_failed(context) -> None:
    """`finish` notifies about every run that started; this covers one that could not."""
    from dq import config, notify, pipeline

    run_id = f"airflow-{context['run_id']}"
    notify.notify_run(pipeline.failed_start(config.load(), run_id, str(context.get("exception"))))


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
    tags=["dataops", "dbt", "great_expectations"],
    doc_md=__doc__,
)
def jaffle_shop_dq():
    @task(on_failure_callback=_notify_start_failed)
    def start(**context) -> str:
        """Create the run record and a fresh build directory; returns the run id."""
        from dq import config, pipeline

        run_id = pipeline.new_run_id()
        settings = config.load()
        with pipeline.warehouse_lock(settings, run_id):
            pipeline.start(settings, run_id)
        return run_id

    def step_task(name: str):
        @task(
            task_id=name,
            doc_md=f"`dq.pipeline.{name}` on this run's build warehouse.",
            outlets=[WAREHOUSE] if name == "publish" else [],
        )
        def run(dq_run_id: str) -> None:
            _run_step(name, dq_run_id)

        return run

    @task(trigger_rule="all_done")
    def docs(dq_run_id: str) -> None:
        """dbt docs generate (lineage + catalog), also after a failed gate."""
        _run_step("docs", dq_run_id)

    @task(trigger_rule="all_done")
    def finish(dq_run_id: str) -> int:
        """Close the run record, notify, and fail the DAG run unless the warehouse was published."""
        from airflow.exceptions import AirflowFailException

        from dq import config, notify, pipeline

        settings = config.load()
        run = pipeline.Run.load(settings, dq_run_id)
        code = pipeline.outcome(run)
        pipeline.finish(run, code)
        notify.notify_run(run)
        if code != pipeline.EXIT_OK:
            raise AirflowFailException(f"run {dq_run_id} ended with exit code {code}: {run.status}")
        return code

    run_id = start()
    previous = run_id
    for name in STEP_NAMES[:-1]:  # docs and finish come after, whatever happened
        current = step_task(name)(run_id)
        previous >> current
        previous = current
    documented = docs(run_id)
    previous >> documented >> finish(run_id)


jaffle_shop_dq()
