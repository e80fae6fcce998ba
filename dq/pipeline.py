"""One orchestration API for every front end: ``begin -> steps -> conclude``.

The command line (:func:`run_all`) and the Airflow DAG (a setup task, one task
per step, a teardown task) call exactly these functions, so they cannot
diverge::

    run = begin(settings)                 # record, private build folder, checks
    for name in STEP_NAMES:
        execute(settings, run.run_id, name)   # raises on failure; stop there
    conclude(settings, run.run_id)        # docs, outcome, notification, clean-up

A step that finds bad input raises :class:`BadInput` (exit 2); a failed gate
:class:`GateFailed` (exit 1); the machine or a tool :class:`EnvironmentFailure`
(exit 3). Nothing is published unless every gate passed on this run's own
build, and publish proves it copies the audited bytes.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import socket
from collections.abc import Iterable

from dq import build as build_mod
from dq import steps as steps_mod
from dq.config import Settings
from dq.errors import (
    EXIT_ENVIRONMENT,
    EXIT_GATE,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_TERMINATED,
    BadInput,
    Busy,
    EnvironmentFailure,
    GateFailed,
    PipelineError,
    Terminated,
    classify,
)
from dq.lock import warehouse_lock
from dq.record import (
    Run,
    StepRecord,
    check_run_id,
    mark_abandoned,
    new_run_id,
    now_iso,
    process_identity,
)
from dq.steps import ACCEPT_BROKEN_WAREHOUSE, ACCEPT_ROW_COUNTS, STEPS

log = logging.getLogger(__name__)

__all__ = [
    "EXIT_ENVIRONMENT",
    "EXIT_GATE",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "ACCEPTABLE",
    "BadInput",
    "Busy",
    "EnvironmentFailure",
    "GateFailed",
    "Run",
    "STEP_NAMES",
    "StepRecord",
    "begin",
    "conclude",
    "document",
    "execute",
    "new_run_id",
    "render_trends",
    "run_all",
]

#: Step names in order: what the DAG's tasks and the run record call them.
STEP_NAMES: tuple[str, ...] = tuple(step.__name__ for step in STEPS)

#: What a run may be told to accept, with a reason (``--accept WHAT --reason WHY``).
ACCEPTABLE = {
    ACCEPT_ROW_COUNTS: "row counts that moved more than DQ_MAX_ROW_DROP / DQ_MAX_ROW_GROWTH allow",
    ACCEPT_BROKEN_WAREHOUSE: "replace a broken published warehouse (kept aside as evidence)",
}


def acceptance(what: str, reason: str, by: str | None = None) -> dict:
    """A deliberate, recorded decision to accept one gate's finding for one run."""
    if what not in ACCEPTABLE:
        raise BadInput(f"cannot accept {what!r}; choose one of {', '.join(ACCEPTABLE)}")
    if not (reason or "").strip():
        raise BadInput(f"--accept {what} needs a --reason: who reads the record must know why")
    if by is None:
        with contextlib.suppress(Exception):
            by = f"{getpass.getuser()}@{socket.gethostname()}"
    return {"what": what, "reason": reason.strip(), "by": by or "unknown", "at": now_iso()}


def _start_failed(settings: Settings, run_id: str, exc: BaseException, **fields) -> Run:
    """The record of a run that could not begin, notified; saved when the disk allows
    (and never under a run id that is not a safe file name)."""
    run = Run(settings=settings, run_id=run_id, **fields)
    run.steps.append(
        StepRecord(
            name="begin", status="failed", seconds=0.0, message=str(exc), exit_code=classify(exc)
        )
    )
    run.exit_code = classify(exc)
    run.status = {EXIT_INPUT: "bad input", EXIT_TERMINATED: "terminated"}.get(
        run.exit_code, "environment failure"
    )
    run.finished_at = now_iso()
    if _safe(run_id):
        with contextlib.suppress(Exception):
            run.save()
    _notify(run)
    return run


def begin(
    settings: Settings,
    run_id: str | None = None,
    *,
    origin: str = "cli",
    airflow_run_id: str | None = None,
    acceptances: Iterable[dict] = (),
) -> Run:
    """Start a run: its record and its private build folder.

    Also closes records of runs that were killed (abandoned), removes half-written
    publish files, and checks the published warehouse: a broken one stops the run
    here (exit 3) unless the run accepts replacing it. On failure the run is
    recorded and notified, and the exception carries it as ``exc.run``.
    """
    fields = {
        "origin": origin,
        "airflow_run_id": airflow_run_id,
        "acceptances": list(acceptances),
    }
    run_id = run_id or new_run_id()
    try:
        check_run_id(run_id)
        with warehouse_lock(settings, run_id):
            for stale in mark_abandoned(settings):
                log.warning("run %s was abandoned (its process is gone)", stale)
            # Publish files of a killed publish: nobody publishes while we hold the lock.
            for stale in settings.warehouse_dir.glob(f".{settings.published_db.name}.*.tmp*"):
                stale.unlink(missing_ok=True)
            try:
                build_mod.create(settings, run_id)
            except FileExistsError:
                raise BadInput(f"run id {run_id} was used before; choose another") from None
            except OSError as exc:
                raise EnvironmentFailure(
                    f"cannot create the build folder {settings.build(run_id).root}: {exc.strerror}"
                ) from exc
            run = Run(settings=settings, run_id=run_id, owner=process_identity(), **fields)
            run.save()
    except (PipelineError, OSError, Terminated) as exc:
        failed = _start_failed(settings, run_id, exc, **fields)
        if isinstance(exc, OSError):
            exc = EnvironmentFailure(f"cannot start the run: {exc}")
        exc.run = failed
        raise exc from None
    try:
        broken = run.target.check_published()
    except EnvironmentFailure as exc:  # the database server is unreachable
        run.steps.append(
            StepRecord("begin", "failed", 0.0, message=str(exc), exit_code=EXIT_ENVIRONMENT)
        )
        run.save()
        exc.run = conclude(settings, run_id, run)
        raise exc from None
    if broken and not run.accepted(ACCEPT_BROKEN_WAREHOUSE):
        exc = EnvironmentFailure(steps_mod.broken_warehouse_message(settings, broken))
        run.steps.append(
            StepRecord("begin", "failed", 0.0, message=str(exc), exit_code=EXIT_ENVIRONMENT)
        )
        run.save()
        exc.run = conclude(settings, run_id, run)
        raise exc
    return run


def _safe(run_id: str) -> bool:
    try:
        check_run_id(run_id)
        return True
    except BadInput:
        return False


def execute(settings: Settings, run_id: str, name: str, run: Run | None = None) -> StepRecord:
    """Run one named step of a begun run. Airflow runs each in its own task
    process (the record is read from disk); the command line passes its ``run``
    along, so a record that a full disk could not save is not lost in between.
    Raises the step's failure."""
    step = {s.__name__: s for s in STEPS}[name]
    return step(run if run is not None else Run.load(settings, run_id))


def document(settings: Settings, run_id: str) -> StepRecord:
    """dbt docs of the run's build now instead of in :func:`conclude` (which then
    skips them): the DAG deploys a release before the run concludes, and a release
    carries the docs of the run that published its data. Raises on failure."""
    return steps_mod.docs(Run.load(settings, run_id))


def outcome(run: Run) -> int:
    """The run's exit code from its step records."""
    for record in run.steps:
        if record.status in ("failed", "terminated") and record.name != "docs":
            return record.exit_code or EXIT_GATE
    publish = run.step("publish")
    return EXIT_OK if publish and publish.status == "ok" else EXIT_ENVIRONMENT


def conclude(settings: Settings, run_id: str, run: Run | None = None) -> Run:
    """End a run however it went: dbt docs when a warehouse was built (also for
    failed runs), the outcome in the record, the Quality trends page, one
    notification, and clean-up of old builds and GX results. Never raises for a
    failed run; returns the record."""
    run = run if run is not None else Run.load(settings, run_id)
    stopped = any(s.status == "terminated" for s in run.steps)  # be quick: we were asked to stop
    if run.step("seed") is not None and run.step("docs") is None and not stopped:
        with contextlib.suppress(Exception, Terminated):
            steps_mod.docs(run)
    code = outcome(run)
    if code != EXIT_OK and not any(s.status in ("failed", "terminated") for s in run.steps):
        run.steps.append(
            StepRecord(
                "conclude",
                "failed",
                0.0,
                message="the run ended before publishing (a step never ran)",
                exit_code=code,
            )
        )
    try:
        run.close(code)
    except OSError as exc:  # a full disk: the notification still goes out
        log.error("[%s] cannot save the run record: %s", run_id, exc)
        run.exit_code, run.status = code, "environment failure"
    _close_history(settings, run)
    render_trends(settings, run_id)
    _notify(run)
    with contextlib.suppress(Exception):
        clean_up(settings)
    return run


def _close_history(settings: Settings, run: Run) -> None:
    """The run's outcome in the quality history, and its retention."""
    from dq import history

    if run.step("monitor") is None:
        return  # the run never measured anything
    try:
        with history.connect(settings.history_db) as con:
            history.finish(con, run.run_id, run.status, run.exit_code, run.finished_at)
            history.retain(con, settings.history_keep_days)
    except Exception as exc:  # noqa: BLE001 (the outcome stands; the history is a record)
        log.error("[%s] cannot close the run in the quality history: %s", run.run_id, exc)


def render_trends(settings: Settings, run_id: str | None = None) -> bool:
    """Rewrite the Quality trends page (:mod:`dq.trends`) from the history, for every
    run however it ended. A page that cannot be written is logged, never raised:
    it must not fail or hide the run's outcome. Returns whether it was written."""
    try:
        from dq import trends

        trends.render(settings)
        return True
    except (Exception, Terminated) as exc:
        log.warning(
            "[%s] the Quality trends page was not updated: %s: %s",
            run_id or "docs",
            type(exc).__name__,
            exc,
        )
        return False


def clean_up(settings: Settings) -> None:
    """Retention: published and old failed builds, old GX results and pages."""
    import json

    statuses = {}
    for folder in settings.builds_dir.glob("*"):
        record = settings.runs_dir / f"{folder.name}.json"
        with contextlib.suppress(OSError, ValueError):
            statuses[folder.name] = json.loads(record.read_text(encoding="utf-8"))["status"]
    removed = build_mod.clean_builds(settings, statuses, settings.keep_failed_builds)
    if settings.target != "sqlite":
        from dq import targets

        target = targets.of(settings)
        for run_id in removed:  # a failed build's schema goes with its folder
            target.drop(settings.build(run_id))
    build_mod.clean_validations(settings, settings.keep_validation_runs)


def _notify(run: Run) -> None:
    from dq.notify import notify_run

    with contextlib.suppress(Exception):
        notify_run(run)


def run_all(settings: Settings, run_id: str | None = None, acceptances: Iterable[dict] = ()) -> Run:
    """The whole pipeline in this process: begin, every step in order, conclude.
    SIGTERM ends it like a failed step: recorded, concluded, notified."""
    with steps_mod.sigterm_raises():
        try:
            run = begin(settings, run_id, acceptances=acceptances)
        except (PipelineError, Terminated) as exc:
            return exc.run
        try:
            for name in STEP_NAMES:
                execute(settings, run.run_id, name, run)
        except (Exception, Terminated):
            pass  # the step recorded its failure; the outcome is read from the record
        return conclude(settings, run.run_id, run)
