"""The pipeline's steps, shared by the command line and the Airflow DAG.

Each step is a function of a :class:`Run` (a run id plus its JSON record in
``warehouse/runs/``), so that the CLI can call them in one process and Airflow
can call each from its own task process. Data flows one way::

    preflight -> seed -> validate_raw -> transform -> validate_transformed -> publish
                                                                          \\-> docs (always)

A step that finds bad input raises :class:`BadInput` (exit 2); a failed
quality gate raises :class:`GateFailed` (exit 1). Nothing is published unless
every gate passed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dq import preflight as preflight_mod
from dq.config import Settings
from dq.contracts import load_contracts

log = logging.getLogger(__name__)

EXIT_OK, EXIT_GATE, EXIT_INPUT = 0, 1, 2


class GateFailed(Exception):
    """A quality gate failed: nothing is published (exit 1)."""


class BadInput(Exception):
    """Bad input or environment: nothing loaded, nothing published (exit 2)."""


class Busy(BadInput):
    """Another run holds the warehouse lock."""


def new_run_id(now: dt.datetime | None = None) -> str:
    """Time-based, sortable, unique enough for one warehouse: 20261126T120501Z-4f2a."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(2).hex()


@dataclass
class StepRecord:
    """How one step went."""

    name: str
    status: str  # ok | failed | skipped
    seconds: float
    message: str = ""
    exit_code: int = 0  # what a failure of this step means for the run
    detail: dict = field(default_factory=dict)


@dataclass
class Run:
    """One pipeline run: its id, settings and the record every step appends to."""

    settings: Settings
    run_id: str
    steps: list[StepRecord] = field(default_factory=list)
    status: str = "running"
    exit_code: int | None = None
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def record_path(self) -> Path:
        return self.settings.runs_dir / f"{self.run_id}.json"

    def step(self, name: str) -> StepRecord | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "status": self.status,
            "exit_code": self.exit_code,
            "steps": [asdict(s) for s in self.steps],
            "published_db": str(self.settings.published_db),
            "data_docs": str(self.settings.data_docs_dir / "index.html"),
            "dbt_docs": str(self.settings.dbt_target_dir / "static_index.html"),
        }

    def save(self) -> None:
        self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        os.replace(tmp, self.record_path)
        latest = self.settings.runs_dir / "latest.json"
        shutil.copyfile(self.record_path, tmp)
        os.replace(tmp, latest)

    @classmethod
    def load(cls, settings: Settings, run_id: str) -> Run:
        data = json.loads((settings.runs_dir / f"{run_id}.json").read_text(encoding="utf-8"))
        run = cls(
            settings=settings,
            run_id=run_id,
            status=data["status"],
            exit_code=data["exit_code"],
            started_at=data["started_at"],
        )
        run.steps = [StepRecord(**s) for s in data["steps"]]
        return run


@contextlib.contextmanager
def warehouse_lock(settings: Settings, run_id: str, timeout: float | None = None) -> Iterator[None]:
    """One run at a time per warehouse. Waits up to ``timeout`` seconds
    (``DQ_LOCK_TIMEOUT``, default 600), then refuses with a clear message."""
    if timeout is None:
        timeout = float(os.environ.get("DQ_LOCK_TIMEOUT", "600"))
    _ensure_writable(settings.warehouse_dir)
    path = settings.warehouse_dir / ".lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise Busy(
                        f"another pipeline run holds {path} ({holder}); "
                        f"waited {timeout:.0f} s. Try again when it has finished."
                    ) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"run {run_id}, pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"warehouse directory {directory} cannot be created: {exc.strerror}"
        ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BadInput(f"warehouse directory {directory} is not writable")


def _timed(run: Run, name: str, body: Callable[[StepRecord], None]) -> StepRecord:
    record = StepRecord(name=name, status="running", seconds=0.0)
    run.steps = [s for s in run.steps if s.name != name] + [record]
    run.save()  # "running" is visible to people (and tests) watching the record
    started = time.perf_counter()
    log.info("[%s] %s ...", run.run_id, name)
    try:
        body(record)
        record.status = "ok"
    except Exception as exc:
        record.status = "failed"
        record.message = record.message or str(exc)
        record.exit_code = EXIT_INPUT if isinstance(exc, BadInput) else EXIT_GATE
        raise
    finally:
        record.seconds = round(time.perf_counter() - started, 2)
        run.save()
    return record


# --------------------------------------------------------------------------- steps


def start(settings: Settings, run_id: str | None = None) -> Run:
    """Create the run record and a fresh, empty build directory."""
    run = Run(settings=settings, run_id=run_id or new_run_id())
    _ensure_writable(settings.warehouse_dir)
    # A killed run may have left a half-built warehouse or a half-written copy
    # beside the published file: neither was ever visible to readers; drop both.
    if settings.build_dir.exists():
        shutil.rmtree(settings.build_dir)
    for stale in settings.warehouse_dir.glob(f".{settings.published_db.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    settings.build_dir.mkdir(parents=True)
    run.save()
    return run


def preflight(run: Run) -> StepRecord:
    """Check every raw CSV against its contract (file, line, column on failure)."""

    def body(record: StepRecord) -> None:
        try:
            sizes = preflight_mod.check_all(run.settings.seeds_dir)
        except preflight_mod.BadInput as exc:
            record.detail["problems"] = [str(p) for p in exc.problems]
            raise BadInput("bad input files:\n  " + "\n  ".join(record.detail["problems"])) from exc
        record.detail["bytes"] = sizes

    return _timed(run, "preflight", body)


def seed(run: Run) -> StepRecord:
    """Load the raw CSVs into the build warehouse (``dbt seed``)."""
    from dq import dbt

    def body(record: StepRecord) -> None:
        result = dbt.invoke(run.settings, "seed", "--full-refresh")
        record.detail["dbt"] = result.counts
        if not result.success:
            record.detail["failures"] = result.failures
            raise BadInput("dbt seed failed: " + "; ".join(result.failures))
        from dq.publish import table_counts

        record.detail["rows"] = {
            k: v for k, v in table_counts(run.settings.build_db).items() if k.startswith("raw_")
        }

    return _timed(run, "seed", body)


def _validate(run: Run, layer: str) -> StepRecord:
    from dq import validate

    def body(record: StepRecord) -> None:
        report = validate.run_checkpoint(run.settings, layer, run.run_id)
        record.detail["suites"] = [asdict(s) for s in report.suites]
        failed = [s for s in report.suites if not s.success]
        if failed:
            lines = [f"{s.suite}: {'; '.join(s.failed_critical)}" for s in failed]
            record.message = f"GX {layer} checkpoint failed:\n  " + "\n  ".join(lines)
            raise GateFailed(record.message)

    return _timed(run, f"validate_{layer}", body)


def validate_raw(run: Run) -> StepRecord:
    """GX suites on every raw table; the file contract is a gate."""
    return _validate(run, "raw")


def transform(run: Run) -> StepRecord:
    """Staging, quarantine and marts with their dbt data and unit tests (``dbt build``)."""
    from dq import dbt
    from dq.publish import table_counts

    def body(record: StepRecord) -> None:
        result = dbt.invoke(run.settings, "build", "--exclude-resource-type", "seed")
        record.detail["dbt"] = result.counts
        counts = table_counts(run.settings.build_db)
        record.detail["rows"] = {k: v for k, v in counts.items() if not k.startswith("raw_")}
        record.detail["rejected"] = {
            c.name: counts.get(c.rejected_table, 0)
            for c in load_contracts(run.settings.seeds_dir).values()
        }
        if not result.success:
            record.detail["failures"] = result.failures
            raise GateFailed("dbt build failed:\n  " + "\n  ".join(result.failures))

    return _timed(run, "transform", body)


def validate_transformed(run: Run) -> StepRecord:
    """GX suites on every staging and mart table, incl. reconciliation and budgets."""
    return _validate(run, "transformed")


def publish(run: Run) -> StepRecord:
    """Audit row counts against the last published warehouse, then swap it in atomically."""
    from dq import publish as publish_mod

    def body(record: StepRecord) -> None:
        settings = run.settings
        new = publish_mod.table_counts(settings.build_db)
        old = publish_mod.table_counts(settings.published_db)
        max_drop = float(os.environ.get("DQ_MAX_ROW_DROP", "0.3"))
        drops = [
            f"{t}: {old[t]} -> {new.get(t, 0)} rows"
            for t in sorted(old)
            if old[t] and new.get(t, 0) < (1 - max_drop) * old[t] and not t.startswith("rejected_")
        ]
        if drops:
            record.detail["drops"] = drops
            raise GateFailed(
                f"row counts fell by more than {max_drop:.0%} against the published warehouse:\n  "
                + "\n  ".join(drops)
            )
        publish_mod.publish(settings.build_db, settings.published_db)
        record.detail["published_db"] = str(settings.published_db)

    return _timed(run, "publish", body)


def generate_docs(settings: Settings) -> Path:
    """dbt docs (lineage, filled catalog, one static page); returns the static page."""
    from dq import dbt

    if not dbt.invoke(settings, "docs", "generate", "--static").success:
        raise GateFailed("dbt docs generate failed")
    return settings.dbt_target_dir / "static_index.html"


def docs(run: Run) -> StepRecord:
    """The docs step: dbt docs. GX Data Docs are already updated by each
    checkpoint, also for failed runs."""

    def body(record: StepRecord) -> None:
        record.detail["dbt_docs"] = str(generate_docs(run.settings))

    return _timed(run, "docs", body)


def finish(run: Run, exit_code: int) -> Run:
    """Close the run record with its outcome."""
    run.exit_code = exit_code
    run.status = {EXIT_OK: "published", EXIT_GATE: "gate failed", EXIT_INPUT: "bad input"}.get(
        exit_code, "error"
    )
    run.save()
    return run


def failed_start(settings: Settings, run_id: str, message: str) -> Run:
    """The record of a run that could not start (lock, unusable warehouse
    directory): kept in memory only, since the warehouse may not be writable."""
    run = Run(settings=settings, run_id=run_id, status="bad input", exit_code=EXIT_INPUT)
    run.steps.append(
        StepRecord(
            name="start", status="failed", seconds=0.0, message=message, exit_code=EXIT_INPUT
        )
    )
    return run


def outcome(run: Run) -> int:
    """The run's exit code from its step records (used where steps ran apart)."""
    for record in run.steps:
        if record.status == "failed" and record.name != "docs":
            return record.exit_code or EXIT_GATE
    return EXIT_OK if (run.step("publish") and run.step("publish").status == "ok") else EXIT_GATE


def run_step(settings: Settings, run_id: str, name: str) -> StepRecord:
    """Run one named step of an existing run under the warehouse lock (Airflow tasks)."""
    step = {s.__name__: s for s in (*STEPS, docs)}[name]
    with warehouse_lock(settings, run_id):
        return step(Run.load(settings, run_id))


#: The steps in order; the DAG builds one task per entry.
STEPS: tuple[Callable[[Run], StepRecord], ...] = (
    preflight,
    seed,
    validate_raw,
    transform,
    validate_transformed,
    publish,
)


#: Step names in order, then docs: what the DAG's tasks and the run record are called.
STEP_NAMES: tuple[str, ...] = (*(step.__name__ for step in STEPS), "docs")


def run_all(settings: Settings, run_id: str | None = None) -> Run:
    """Every step in order under the warehouse lock; docs are built in all cases."""
    run_id = run_id or new_run_id()
    try:
        with warehouse_lock(settings, run_id):
            run = start(settings, run_id)
            try:
                for step in STEPS:
                    step(run)
                code = EXIT_OK
            except GateFailed:
                code = EXIT_GATE
            except BadInput:
                code = EXIT_INPUT
            except Exception:  # a bug or a tool that could not run: still nothing published
                log.exception("[%s] step failed unexpectedly", run_id)
                code = EXIT_GATE
            finally:
                if run.step("seed") is not None:
                    with contextlib.suppress(Exception):
                        docs(run)
            run = finish(run, code)
    except BadInput as exc:  # lock or warehouse directory: no run record can be written
        run = failed_start(settings, run_id, str(exc))
    from dq.notify import notify_run  # here, not at the top: notify imports pipeline

    notify_run(run)
    return run
