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

After `publish`, the run's dbt docs are built (`docs`), the model stage trains
on the freshly published warehouse and gates the candidate (`model`: F1 against
the threshold, the baseline and production), and `deploy` promotes the model with
that data release into production (`DQ_PRODUCTION_DIR`, atomically): scheduled
runs keep production current. A failed gate or a refused deploy fails its task
at once and notifies the reason (`F1 0.41 < threshold 0.60`); production is
left as it was.

A successful `publish` emits the `jaffle_shop_warehouse` asset event (DAGs that
read the warehouse can be scheduled on it). Trigger with config
`{"accept": ["row-counts"], "reason": "..."}` to accept an intended change for
one run (recorded with who and why). Schedule: `DQ_SCHEDULE` (default `@daily`;
empty for manual runs only).

Every task is a thin call to `dq.pipeline` (`begin`, `execute`, `document`,
`conclude`), `dq.model.run_stage` or `dq.release.deploy`: the same functions
`python -m dq run`, `model` and `deploy` call. Nothing heavy happens at import time.
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
    from airflow.sdk.exceptions import AirflowFailException

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
    """The tasks in order; the DAG's own docs are this module's docstring."""

    @setup
    @task
    def begin(**context) -> str:
        """`dq.pipeline.begin`: the run record (with this DAG run's id) and the
        run's own build folder; returns the pipeline's run id."""
        from airflow.sdk.exceptions import AirflowFailException

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

    @task
    def docs(dq_run_id: str) -> None:
        """`dq.pipeline.document`: dbt docs of this run's build now, so that the
        release `deploy` makes carries them (`conclude` then skips them)."""
        from dq import config, pipeline

        try:
            pipeline.document(config.load(), dq_run_id)
        except pipeline.PipelineError as exc:
            raise _fail_fast(exc) from exc

    @task
    def model() -> None:
        """`dq.model.run_stage`: features of the published warehouse -> train ->
        gate. A failed gate fails the task at once (no retry) and is notified."""
        from airflow.sdk.exceptions import AirflowSkipException

        from dq import config, pipeline
        from dq import model as model_stage
        from dq.notify import notify_stage

        settings = config.load()
        if settings.target != "sqlite":  # deploy is skipped with it
            raise AirflowSkipException(
                f"DQ_TARGET={settings.target}: the model stage trains on the published"
                " SQLite warehouse that a release carries (README: Scaling out)"
            )
        try:
            model_stage.run_stage(settings)
        except pipeline.PipelineError as exc:
            notify_stage("model", False, str(exc))
            raise _fail_fast(exc) from exc

    @task
    def deploy(dq_run_id: str) -> str:
        """`dq.release.deploy`: the gated model with this run's data release into
        production, atomically (a no-op when it is already there); returns its id.
        The deploy notifies its outcome itself."""
        from dq import config, pipeline, release

        try:
            return release.deploy(config.load(), run_id=dq_run_id).release_id
        except pipeline.PipelineError as exc:
            raise _fail_fast(exc) from exc

    # Not on_failure_fail_dagrun: then Airflow judges the DAG run by `deploy`, the
    # last work task, so a failed model gate fails the run even though the
    # warehouse was published (with it, the succeeding teardown decided alone).
    # A failed step fails the run the same way: everything after it is upstream_failed.
    @teardown
    @task
    def conclude(dq_run_id: str) -> int:
        """`dq.pipeline.conclude`: dbt docs, the outcome in the run record, one
        notification, clean-up; fails the DAG run unless the warehouse was published."""
        from airflow.sdk.exceptions import AirflowFailException

        from dq import config, pipeline

        run = pipeline.conclude(config.load(), dq_run_id)
        if run.exit_code != pipeline.EXIT_OK:
            raise AirflowFailException(f"run {dq_run_id}: {run.status} (exit {run.exit_code})")
        return run.exit_code

    # `a >> b` sets a dependency: an expression used for its effect.
    # pylint: disable=pointless-statement,expression-not-assigned
    run_id = begin()
    previous = run_id
    for name in STEP_NAMES:
        current = step_task(name)(run_id)
        previous >> current
        previous = current
    previous >> docs(run_id) >> model() >> deploy(run_id) >> conclude(run_id)


jaffle_shop_dq()
