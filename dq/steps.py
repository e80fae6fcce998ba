"""The pipeline's steps. Each is a function of a :class:`~dq.record.Run` that
works only on that run's build folder and appends its record::

    preflight -> seed -> validate_raw -> transform -> validate_transformed -> monitor -> publish

The gates record the fingerprint (SHA-256) of the file they audited, and each
step that follows checks it still holds that file: a build changed by anyone
in between is refused, and publish copies only the bytes the gates audited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

from dq import build as build_mod
from dq import preflight as preflight_mod
from dq.errors import (
    BadInput,
    EnvironmentFailure,
    GateFailed,
    Terminated,
    classify,
    looks_environmental,
)
from dq.lock import warehouse_lock
from dq.record import Run, StepRecord, now_iso, process_identity
from dq.sources import declaration_paths, load_sources

log = logging.getLogger(__name__)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While a step runs, SIGTERM (``kill``, Airflow marking a task failed or timing
    it out) raises :class:`Terminated`, so the step is recorded as terminated and
    the run record closed instead of left "running". Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def timed(run: Run, name: str, body: Callable[[StepRecord], None]) -> StepRecord:
    """Run one step's body, recording status, time, message and exit code."""
    record = StepRecord(name=name, status="running", seconds=0.0)
    run.steps = [s for s in run.steps if s.name != name] + [record]
    run.owner = process_identity()
    started = time.perf_counter()
    log.info("[%s] %s ...", run.run_id, name)
    try:
        with sigterm_raises():
            run.save()  # "running" is visible to people (and tests) watching the record
            body(record)
        record.status = "ok"
    except BaseException as exc:
        code = classify(exc)
        record.status = "failed" if isinstance(exc, Exception) else "terminated"
        record.message = record.message or str(exc) or type(exc).__name__
        record.exit_code = code
        if not isinstance(exc, (GateFailed, BadInput, EnvironmentFailure, Terminated)):
            log.exception("[%s] %s failed unexpectedly", run.run_id, name)
            record.message = f"{type(exc).__name__}: {record.message}"
        raise
    finally:
        record.seconds = round(time.perf_counter() - started, 2)
        record.peak_rss_mb = peak_rss_mb()
        with contextlib.suppress(OSError):  # a full disk must not hide the real error
            run.save()
    return record


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (``ru_maxrss`` is KiB on Linux)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ------------------------------------------------------------------ fingerprints


def _fingerprint(run: Run) -> str:
    try:
        return run.target.fingerprint(run.build)
    except FileNotFoundError:
        raise EnvironmentFailure(
            f"the build warehouse {run.target.where(run.build)} is missing"
        ) from None
    except RuntimeError as exc:
        raise EnvironmentFailure(str(exc)) from None


def _expect_unchanged(run: Run, after: str, key: str) -> str:
    """The build file must still be the one step ``after`` left (recorded under ``key``)."""
    record = run.step(after)
    expected = record.detail.get(key) if record and record.status == "ok" else None
    if expected is None:
        raise GateFailed(f"step {after} has not passed for run {run.run_id}")
    now = _fingerprint(run)
    if now != expected:
        raise GateFailed(
            f"{run.target.where(run.build)} changed after {after} (sha256 {now[:12]}…, recorded"
            f" {expected[:12]}…): something outside this run wrote to its build"
        )
    return now


# ------------------------------------------------------------------ steps


def preflight(run: Run) -> StepRecord:
    """Snapshot the CSVs and their declarations into the build, check every
    file against its declaration (file, line, column on failure), then
    generate the run's dbt models from the declarations it checked."""
    from dq import generate

    def body(record: StepRecord) -> None:
        source = run.settings.seeds_dir
        snapshot = run.build.seeds_dir
        names = [p.name for p in declaration_paths(source)]
        names += sorted(p.name for p in source.glob("*.csv"))
        build_mod.snapshot_seeds(source, run.build, names)
        try:
            sizes = preflight_mod.check_all(snapshot)
        except preflight_mod.BadInput as exc:
            # Report the files people edit, not the snapshot.
            problems = [_in_source(p, snapshot, source) for p in exc.problems]
            record.detail["problems"] = [str(p) for p in problems]
            raise BadInput("bad input files:\n  " + "\n  ".join(record.detail["problems"])) from exc
        record.detail["bytes"] = sizes
        for declared in generate.for_build(run.build).values():
            preflight_mod.to_utf8(snapshot / declared.csv_name, declared.encoding)

    return timed(run, "preflight", body)


def _in_source(problem, snapshot, source):
    path = getattr(problem, "path", None)
    if path is None:
        return problem
    with contextlib.suppress(ValueError):
        return dataclasses.replace(problem, path=source / path.relative_to(snapshot))
    return problem


def seed(run: Run) -> StepRecord:
    """Load the raw CSVs into the build warehouse (``dbt seed``)."""
    from dq import dbt

    def body(record: StepRecord) -> None:
        result = dbt.invoke(run.settings, run.build, "seed", "--full-refresh")
        record.detail["dbt"] = result.counts
        if not result.success:
            # A seed that cannot load is the file or its contract (bad input),
            # unless SQLite says the disk is full or unwritable.
            problems = result.errors + result.failures
            record.detail["failures"] = problems
            text = "dbt seed failed:\n  " + "\n  ".join(problems)
            raise (EnvironmentFailure if looks_environmental(text) else BadInput)(text)
        record.detail["rows"] = {
            k: v for k, v in run.target.table_counts(run.build).items() if k.startswith("raw_")
        }
        record.detail["fingerprint"] = _fingerprint(run)

    return timed(run, "seed", body)


def _validate(run: Run, layer: str, after: str) -> StepRecord:
    from dq import validate

    def body(record: StepRecord) -> None:
        before = _expect_unchanged(run, after, "fingerprint")
        report = validate.run_checkpoint(run.settings, run.build, layer, run.run_id)
        record.detail["suites"] = [asdict(s) for s in report.suites]
        if _fingerprint(run) != before:
            raise GateFailed(f"{run.target.where(run.build)} changed while GX validated it")
        failed = [s for s in report.suites if not s.success]
        if failed:
            lines = [f"{s.suite}: {'; '.join(s.failed_critical)}" for s in failed]
            record.message = f"GX {layer} checkpoint failed:\n  " + "\n  ".join(lines)
            raise GateFailed(record.message)
        record.detail["audited"] = before

    return timed(run, f"validate_{layer}", body)


def validate_raw(run: Run) -> StepRecord:
    """GX suites on every raw table; the file contract is a gate."""
    return _validate(run, "raw", after="seed")


def transform(run: Run) -> StepRecord:
    """Staging, quarantine and marts with their dbt data and unit tests (``dbt build``)."""
    from dq import dbt

    def body(record: StepRecord) -> None:
        _expect_unchanged(run, "validate_raw", "audited")
        result = dbt.invoke(run.settings, run.build, "build", "--exclude-resource-type", "seed")
        record.detail["dbt"] = result.counts
        counts = run.target.table_counts(run.build)
        record.detail["rows"] = {k: v for k, v in counts.items() if not k.startswith("raw_")}
        record.detail["rejected"] = {
            s.raw_table: counts.get(s.rejected_table, 0)
            for s in load_sources(run.build.seeds_dir).values()
        }
        if result.errors:
            # A model or test that could not run is the code or the tool, not the data.
            record.detail["errors"] = result.errors
            raise EnvironmentFailure(
                "dbt build could not build every node:\n  " + "\n  ".join(result.errors)
            )
        if not result.success:
            record.detail["failures"] = result.failures
            raise GateFailed("dbt build failed:\n  " + "\n  ".join(result.failures))
        record.detail["fingerprint"] = _fingerprint(run)

    return timed(run, "transform", body)


def validate_transformed(run: Run) -> StepRecord:
    """GX suites on every staging and mart table, incl. reconciliation and budgets."""
    return _validate(run, "transformed", after="transform")


def monitor(run: Run) -> StepRecord:
    """The anomaly monitors (:mod:`dq.monitors`): the newest days of every source
    against what earlier days and the published history lead one to expect.
    Every check goes to the quality history and to Data Docs; an anomaly of
    severity ``stop`` fails the gate, a ``warn`` one is reported and published."""
    from dq import history, monitors, validate

    def body(record: StepRecord) -> None:
        audited = _expect_unchanged(run, "validate_transformed", "audited")
        if not run.settings.monitors:
            record.detail["skipped"] = "DQ_MONITORS=off"
            record.detail["audited"] = audited
            return
        sources = load_sources(run.build.seeds_dir)
        report = monitors.check_build(run.settings, run.target, run.build, sources)
        transform_detail = run.step("transform").detail
        rows, rejected = transform_detail.get("rows", {}), transform_detail.get("rejected", {})
        layers = []
        for source in sources.values():
            bad = rejected.get(source.raw_table, 0)
            good = rows.get(source.clean_table, 0)
            share = bad / (good + bad) if good + bad else 0.0
            layers.append((source.clean_table, good, bad, share))
        with history.connect(run.settings.history_db) as con:
            history.save_run(
                con, run.run_id, run.started_at, [asdict(o) for o in report.observations],
                report.candidates, layers,
            )  # fmt: skip
        record.detail.update(report.as_detail())
        if report.observations:
            checked = validate.run_checkpoint(
                run.settings, run.build, validate.MONITORS, run.run_id, report.observations
            )
            record.detail["suites"] = [asdict(s) for s in checked.suites]
        if _fingerprint(run) != audited:
            raise GateFailed(f"{run.target.where(run.build)} changed while the monitors read it")
        record.detail["audited"] = audited
        if report.stops:
            record.message = "anomaly monitors found:\n  " + "\n  ".join(
                o.line for o in report.stops
            )
            raise GateFailed(record.message)

    return timed(run, "monitor", body)


def row_count_changes(old: dict[str, int], new: dict[str, int], settings) -> list[str]:
    """Tables whose row count moved more than the settings allow, explained."""
    changes = []
    for table in sorted(set(old) | set(new)):
        if table.startswith("rejected_"):
            continue  # quarantine sizes have their own budgets (max_rejected_share)
        before, after = old.get(table), new.get(table, 0)
        if before is None:
            continue  # a new table
        if table not in new:
            changes.append(f"{table}: {before} rows -> table gone")
        elif before - after >= settings.row_change_min_rows and after < (
            (1 - settings.max_row_drop) * before
        ):
            changes.append(
                f"{table}: {before} -> {after} rows ({(after - before) / before:+.0%};"
                f" DQ_MAX_ROW_DROP={settings.max_row_drop:g})"
            )
        elif after - before >= settings.row_change_min_rows and after > (
            (1 + settings.max_row_growth) * before
        ):
            changes.append(
                f"{table}: {before} -> {after} rows ({(after - before) / before:+.0%};"
                f" DQ_MAX_ROW_GROWTH={settings.max_row_growth:g})"
            )
    return changes


ACCEPT_ROW_COUNTS = "row-counts"
ACCEPT_BROKEN_WAREHOUSE = "broken-warehouse"


def publish(run: Run) -> StepRecord:
    """Under the warehouse lock: check the published warehouse, compare row counts
    with it, prove the build is the audited file, and swap it in atomically."""
    from dq.targets import NotAudited

    def body(record: StepRecord) -> None:
        settings, target = run.settings, run.target
        audited = _expect_unchanged(run, "validate_transformed", "audited")
        if run.step("transform").detail.get("fingerprint") != audited:
            raise GateFailed("validate_transformed audited another file than transform built")
        if _expect_unchanged(run, "monitor", "audited") != audited:
            raise GateFailed("the monitors read another file than validate_transformed audited")
        if run.step("validate_raw") is None or run.step("validate_raw").status != "ok":
            raise GateFailed(f"validate_raw has not passed for run {run.run_id}")
        with warehouse_lock(settings, run.run_id):
            keep_old = None
            broken = target.check_published()
            if broken:
                if not run.accepted(ACCEPT_BROKEN_WAREHOUSE):
                    raise EnvironmentFailure(broken_warehouse_message(settings, broken))
                keep_old = settings.broken_dir / f"{settings.published_db.stem}.{run.run_id}.db"
                record.detail["broken_published"] = broken
                record.detail["broken_kept_as"] = str(keep_old)
                record.detail["row_counts"] = "skipped: the published warehouse was broken"
            else:
                old = target.table_counts()
                new = target.table_counts(run.build)
                changes = row_count_changes(old, new, settings)
                if changes and not run.accepted(ACCEPT_ROW_COUNTS):
                    record.detail["row_count_changes"] = changes
                    raise GateFailed(
                        "row counts changed more than allowed against the published warehouse:\n  "
                        + "\n  ".join(changes)
                        + "\n  If this change is intended, accept it for one run: python -m dq run"
                        f' --accept {ACCEPT_ROW_COUNTS} --reason "why" (or raise the setting).'
                    )
                record.detail["row_count_changes"] = changes
                record.detail["row_counts"] = "accepted" if changes else "ok"
            try:
                target.publish(run.build, audited, keep_old)
            except NotAudited as exc:
                raise GateFailed(str(exc)) from exc
            # Under the lock, to the microsecond (a waiting run publishes right after):
            # the publish in force is the one with the latest time (record.last_published).
            published_at = now_iso("microseconds")
            _promote_history(run)
        record.detail["published_db"] = target.where()
        record.detail["fingerprint"] = audited
        record.detail["published_at"] = published_at

    return timed(run, "publish", body)


def _promote_history(run: Run) -> None:
    """The run's per-day values become the published history. The warehouse is
    already published: a history that cannot be written is logged, not fatal
    (the next run then trains on its own data alone)."""
    from dq import history

    try:
        with history.connect(run.settings.history_db) as con:
            history.promote(con, run.run_id)
    except Exception as exc:  # noqa: BLE001 (any failure: the publish stands)
        log.error("[%s] the quality history was not updated: %s", run.run_id, exc)


def broken_warehouse_message(settings, problem: str) -> str:
    return (
        f"the published warehouse {settings.published_db} is broken ({problem}). Nothing was"
        " changed. To replace it with this run's audited build, keeping the broken file in"
        f" {settings.broken_dir}/ as evidence: python -m dq run --accept"
        f' {ACCEPT_BROKEN_WAREHOUSE} --reason "why"'
    )


def docs(run: Run) -> StepRecord:
    """dbt docs (lineage, filled catalog, one static page) of this run's build,
    copied to ``warehouse/docs/dbt/`` where the docs server reads them. GX Data
    Docs are already updated by each checkpoint, also for failed runs."""

    def body(record: StepRecord) -> None:
        record.detail["dbt_docs"] = str(generate_docs(run))

    return timed(run, "docs", body)


#: What dbt docs need, and all the docs server serves of them.
DBT_DOCS_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")


def generate_docs(run: Run):
    """``dbt docs generate --static`` on the build, then each file swapped into place."""
    import os

    from dq import dbt

    # On a server the published run's build schema is `published` now.
    published = run.step("publish") is not None and run.step("publish").status == "ok"
    schema = run.target.published_schema if published else None
    if not dbt.invoke(
        run.settings, run.build, "docs", "generate", "--static", schema=schema
    ).success:
        raise GateFailed("dbt docs generate failed")
    out = run.settings.dbt_docs_dir
    out.mkdir(parents=True, exist_ok=True)
    for name in DBT_DOCS_FILES:
        tmp = out / f".{name}.{os.getpid()}.tmp"
        shutil.copyfile(run.build.target_dir / name, tmp)
        os.replace(tmp, out / name)
    return out / "static_index.html"


#: The steps in order; the DAG builds one task per entry.
STEPS: tuple[Callable[[Run], StepRecord], ...] = (
    preflight,
    seed,
    validate_raw,
    transform,
    validate_transformed,
    monitor,
    publish,
)
