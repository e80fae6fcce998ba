"""Releases: promote the gated model and the data it was trained on into production.

A release is one folder, complete before anyone can see it::

    production/                      (DQ_PRODUCTION_DIR, default <root>/production)
        current -> releases/<id>     the release in force: a symlink, switched atomically
        releases/<id>/               one per deploy, oldest first by id (time + short hash)
            model/                   model.skops, card.json, metrics.json, gate.json
            data/jaffle_shop.db      the published warehouse the model was trained on
            data/docs/dbt/           dbt docs of the run that published it
            data/docs/gx/            GX Data Docs (every validation kept, that run's included)
            manifest.json            id, time, commit, run id + fingerprint, row counts,
                                     validation summary, model metrics, sha256 of every file
        .lock                        one deploy or rollback at a time

Why a versioned folder and not MLflow's model registry: see ``docs/cicd.md``
("Registry"): MLflow would add ~40 packages to the pinned stack, and its local
file store, the registry the issue names, refuses to open by default since
MLflow 3.13; a folder per release also carries the data and both docs sites,
which a model registry does not version with the model.

**Atomic.** :func:`deploy` assembles a release in ``releases/.tmp-<id>-<pid>/``,
fsyncs every file and folder, renames it to ``releases/<id>/`` and only then
points ``current`` at it (a new symlink renamed over the old one). A deploy
killed at any moment leaves ``current`` on the previous, complete release; the
hidden leftovers are never listed and are removed by the next deploy.
:func:`rollback` points ``current`` at the release before it the same way.

**Refusals** change nothing in production (checked before the lock is taken,
and again under it): the latest run did not publish (the last validation did
not pass), no candidate, the model gate failed, the candidate was trained on
another warehouse than the one published now, the published file is not the
bytes its run audited. Each refusal and each success is notified
(:func:`dq.notify.notify_stage`); deploying what is already in force is a
no-op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from dq.build import fingerprint as _sha256
from dq.config import Settings
from dq.errors import BadInput, EnvironmentFailure, GateFailed, PipelineError
from dq.lock import ensure_writable, file_lock
from dq.model import CANDIDATE, MODEL_FILE, Candidate, candidate_lock, load_candidate
from dq.notify import notify_stage
from dq.publish import fsync as _fsync
from dq.publish import table_counts
from dq.record import Run, now_iso

#: ``<UTC time to the microsecond>-<8 hex digits of the content hash>``, e.g.
#: ``20261128T081502.123456Z-1a2b3c4d``: sorts in deploy order, names a folder safely.
RELEASE_ID = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}")
_STAMP = "%Y%m%dT%H%M%S.%fZ"
RELEASES = "releases"
CURRENT = "current"
MANIFEST = "manifest.json"
#: The candidate folder's files, as the model stage writes them (dq.model).
MODEL_FILES = (MODEL_FILE, "card.json", "metrics.json", "gate.json")
DB_NAME = "jaffle_shop.db"
_TMP = ".tmp-"  # a release being assembled (hidden: never listed)
_OLD = ".old-"  # a release being removed by retention
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Release:
    """One complete release folder and its manifest."""

    release_id: str
    path: Path
    manifest: dict
    #: whether the call that returned it switched ``current`` (False: already in force)
    changed: bool = True

    @property
    def model_dir(self) -> Path:
        """``model/``: the skops file with its card, metrics and gate verdict."""
        return self.path / "model"

    @property
    def db(self) -> Path:
        """``data/jaffle_shop.db``: the warehouse the model was trained on."""
        return self.path / "data" / DB_NAME

    def describe(self) -> str:
        """One line for people and notifications: what is in this release."""
        model, data = self.manifest["model"], self.manifest["data"]
        metrics = model["metrics"]
        return (
            f"release {self.release_id}: model F1 {metrics['f1']:.3f} (baseline"
            f" {metrics['baseline_f1']:.3f}), data of run {data['run_id']}"
            f" (sha256 {data['sha256'][:12]}…), commit {str(self.manifest['git_commit'])[:12]}"
        )


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a deploy would promote, every check passed."""

    run: Run
    fingerprint: str
    candidate: Candidate
    folder: Path
    model_sha256: str

    @property
    def identity(self) -> tuple[str, str]:
        """Two releases are the same when model and data bytes are."""
        return self.fingerprint, self.model_sha256


# ------------------------------------------------------------------ reading


def releases(settings: Settings) -> list[Release]:
    """Every complete release, oldest first (temp and half-removed folders are hidden)."""
    folder = settings.production / RELEASES
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if RELEASE_ID.fullmatch(path.name) and path.is_dir():
            with contextlib.suppress(OSError, ValueError):
                found.append(_load(path))
    return found


def current(settings: Settings) -> Release | None:
    """The release ``production/current`` points at (None when nothing is deployed)."""
    link = settings.production / CURRENT
    if not link.is_symlink():
        if link.exists():
            raise EnvironmentFailure(f"{link} is not a symlink to a release: fix it by hand")
        return None
    name = Path(os.readlink(link)).name
    path = settings.production / RELEASES / name
    if not RELEASE_ID.fullmatch(name) or not path.is_dir():
        raise EnvironmentFailure(f"{link} points at {os.readlink(link)}, which is no release")
    try:
        return _load(path)
    except (OSError, ValueError) as exc:
        raise EnvironmentFailure(f"the current release's manifest cannot be read: {exc}") from None


def _load(path: Path, changed: bool = True) -> Release:
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    return Release(release_id=path.name, path=path, manifest=manifest, changed=changed)


def verify(release: Release) -> list[str]:
    """What is wrong with a release's files against its manifest (empty: intact)."""
    problems = []
    for relative, expected in release.manifest.get("files", {}).items():
        try:
            actual = _sha256(release.path / relative)
        except OSError as exc:
            problems.append(f"{relative}: {exc.strerror or exc}")
            continue
        if actual != expected:
            problems.append(f"{relative}: sha256 {actual[:12]}…, manifest says {expected[:12]}…")
    for site in ("dbt", "gx"):
        if not (release.path / "data" / "docs" / site / "index.html").is_file():
            problems.append(f"data/docs/{site}/index.html is missing")
    return problems


# ------------------------------------------------------------------ deploy


def _notified_failure(stage: str, exc: BaseException) -> PipelineError:
    """The error a failed stage raises (a machine error becomes an environment
    failure, exit 3), once its reason is notified."""
    failure = (
        exc if isinstance(exc, PipelineError) else EnvironmentFailure(f"{stage} failed: {exc}")
    )
    notify_stage(stage, False, str(failure))
    return failure


def deploy(settings: Settings, run_id: str | None = None) -> Release:
    """Promote the gated candidate and the published warehouse it was trained on.

    ``run_id``: deploy only if the latest run is this one (the DAG passes its
    own). Returns the release in force; ``changed`` is False when it already
    was. Raises :class:`GateFailed` (exit 1) or :class:`BadInput` (exit 2) with
    the reason when refusing (production is then unchanged, byte for byte), or
    :class:`EnvironmentFailure` (exit 3) when the machine fails (the release in
    force is then unchanged). Notifies either way.
    """
    try:
        _plan(settings, run_id, hash_warehouse=True)  # refuse before touching production
        ensure_writable(settings.production / RELEASES, "production directory")
        with _production_lock(settings, "deploy"):
            release = _promote(settings, run_id)
    except (PipelineError, OSError) as exc:
        failure = _notified_failure("deploy", exc)
        if failure is exc:
            raise
        raise failure from exc
    if release.changed:
        notify_stage("deploy", True, f"{release.describe()} is live in {settings.production}")
    return release


def _latest_run(settings: Settings) -> Run:
    path = settings.runs_dir / "latest.json"
    try:
        return Run.from_dict(settings, json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise BadInput(
            f"no run record {path}: run the pipeline first (`make validate`, python -m dq run)"
        ) from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise EnvironmentFailure(f"cannot read the latest run record {path}: {exc}") from None


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "(no message)"


def _plan(settings: Settings, run_id: str | None, hash_warehouse: bool = False) -> _Plan:
    """Every check of a deploy, without writing anything; raises the refusal.

    ``hash_warehouse``: also prove the published file is the bytes its run
    audited (the copy into the release proves it again, under the lock)."""
    run, fingerprint = _published_run(settings, run_id)
    candidate, folder = _gated_candidate(settings, run, fingerprint)
    if hash_warehouse:
        try:
            published = _sha256(settings.published_db)
        except FileNotFoundError:
            raise BadInput(f"no published warehouse at {settings.published_db}") from None
        if published != fingerprint:
            raise GateFailed(_not_audited(settings, run, published, fingerprint))
    sites = {"dbt docs": settings.dbt_docs_dir, "GX Data Docs": settings.data_docs_dir}
    for site, path in sites.items():
        if not (path / "index.html").is_file():
            raise BadInput(f"no {site} at {path}: run the pipeline again")
    return _Plan(run, fingerprint, candidate, folder, _sha256(folder / MODEL_FILE))


def _published_run(settings: Settings, run_id: str | None) -> tuple[Run, str]:
    """The latest run, if it published (and documented) the warehouse; its fingerprint."""
    run = _latest_run(settings)
    if run_id is not None and run.run_id != run_id:
        raise GateFailed(
            f"the latest run is {run.run_id}, not {run_id}: deploy what that run published"
        )
    publish = run.step("publish")
    fingerprint = publish.detail.get("fingerprint") if publish and publish.status == "ok" else None
    if not fingerprint:
        failed = next((s for s in run.steps if s.status in ("failed", "terminated")), None)
        why = (
            f"{failed.name} {failed.status}: {_first_line(failed.message)}"
            if failed
            else f"status: {run.status}"
        )
        raise GateFailed(f"the latest run {run.run_id} did not publish ({why}): nothing to release")
    docs = run.step("docs")
    if docs is None or docs.status != "ok":
        raise BadInput(
            f"run {run.run_id} has no dbt docs to release (docs step:"
            f" {docs.status if docs else 'not run'}): run the pipeline again"
        )
    return run, fingerprint


def _gated_candidate(settings: Settings, run: Run, fingerprint: str) -> tuple[Candidate, Path]:
    """The model stage's candidate, if its gate passed on exactly this warehouse."""
    candidate = load_candidate(settings)
    folder = settings.model_dir / CANDIDATE
    if candidate is None:
        raise BadInput(f"no model candidate in {folder}: run the model stage first (`make model`)")
    if not candidate.passed:
        reasons = "; ".join(candidate.reasons) or "its gate verdict is not 'passed'"
        raise GateFailed(f"model gate failed: {reasons}")
    trained_run, trained_sha = _trained_on(candidate.card)
    if trained_sha != fingerprint:
        raise GateFailed(
            f"the candidate was trained on the warehouse of run {trained_run} (sha256"
            f" {str(trained_sha)[:12]}…), not on the one run {run.run_id} published"
            f" ({fingerprint[:12]}…): run the model stage again (`make model`)"
        )
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise BadInput(f"the candidate in {folder} lacks {', '.join(missing)}")
    return candidate, folder


def _not_audited(settings: Settings, run: Run, actual: str, audited: str) -> str:
    return (
        f"{settings.published_db} is not what run {run.run_id} audited and published"
        f" (sha256 {actual[:12]}…, audited {audited[:12]}…): refusing to release it;"
        " publish it again (`make validate`)"
    )


def _trained_on(card: dict) -> tuple[str | None, str | None]:
    """The data version in a model card: the run and the warehouse's sha256."""
    data = card.get("data") or {}
    return data.get("run_id"), data.get("warehouse_sha256")


@contextlib.contextmanager
def _production_lock(settings: Settings, what: str) -> Iterator[None]:
    with file_lock(settings.production / ".lock", what, settings.lock_timeout):
        yield


def _promote(settings: Settings, run_id: str | None) -> Release:
    """Under the production lock: plan again, then reuse or assemble, then switch."""
    _clean_leftovers(settings)
    with candidate_lock(settings, "deploy"):  # the model stage waits meanwhile
        plan = _plan(settings, run_id)
        in_force = current(settings)
        if in_force is not None and _identity(in_force) == plan.identity:
            return dataclasses.replace(in_force, changed=False)
        same = [r for r in releases(settings) if _identity(r) == plan.identity]
        # Deployed before, then rolled back: that very folder goes back into force.
        reuse = same and not verify(same[-1])
        release = same[-1] if reuse else _assemble(settings, plan)
    _point_current(settings, release.release_id)
    _prune(settings, release.release_id)
    return release


def _identity(release: Release) -> tuple[str, str]:
    files = release.manifest.get("files", {})
    return files.get(f"data/{DB_NAME}", ""), files.get(f"model/{MODEL_FILE}", "")


def _new_id(settings: Settings, plan: _Plan) -> str:
    """Now, or just after the newest release if the clock says otherwise: ids
    sort in the order the releases were made (rollback goes by it)."""
    now = dt.datetime.now(dt.UTC)
    found = releases(settings)
    if found:
        newest = dt.datetime.strptime(found[-1].release_id.split("-")[0], _STAMP)
        now = max(now, newest.replace(tzinfo=dt.UTC) + dt.timedelta(microseconds=1))
    digest = hashlib.sha256("\n".join(plan.identity).encode()).hexdigest()[:8]
    return f"{now.strftime(_STAMP)}-{digest}"


def _assemble(settings: Settings, plan: _Plan) -> Release:
    """Copy, verify and fsync everything into a hidden folder, then rename it into place."""
    release_id = _new_id(settings, plan)
    folder = settings.production / RELEASES
    final = folder / release_id
    if final.exists():
        raise EnvironmentFailure(f"release {final} exists already: deploy again in a second")
    tmp = folder / f"{_TMP}{release_id}-{os.getpid()}"
    tmp.mkdir()
    try:
        files = {}
        (tmp / "model").mkdir()
        for name in MODEL_FILES:
            files[f"model/{name}"] = _copy_file(plan.folder / name, tmp / "model" / name)
        if files[f"model/{MODEL_FILE}"] != plan.model_sha256:
            raise EnvironmentFailure("the candidate's model file changed while it was copied")
        (tmp / "data").mkdir()
        db_sha = _copy_file(settings.published_db, tmp / "data" / DB_NAME)
        if db_sha != plan.fingerprint:
            raise GateFailed(_not_audited(settings, plan.run, db_sha, plan.fingerprint))
        files[f"data/{DB_NAME}"] = db_sha
        docs = tmp / "data" / "docs"
        docs.mkdir()
        _copy_tree(settings.dbt_docs_dir, docs / "dbt")
        # GX writes its site under this lock (dq.validate): copy a consistent one.
        with file_lock(settings.gx_dir / "uncommitted" / ".lock", "deploy", settings.lock_timeout):
            _copy_tree(settings.data_docs_dir, docs / "gx")
        manifest = _manifest(release_id, plan, tmp, files)
        _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _fsync_tree(tmp)
        os.rename(tmp, final)
        _fsync(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Release(release_id=release_id, path=final, manifest=manifest)


def _manifest(release_id: str, plan: _Plan, tmp: Path, files: dict[str, str]) -> dict:
    run, candidate = plan.run, plan.candidate
    card = candidate.card
    gate = json.loads((tmp / "model" / "gate.json").read_text(encoding="utf-8"))
    trained_run, trained_sha = _trained_on(card)
    return {
        "release_id": release_id,
        "created_at": now_iso(),
        "git_commit": (card.get("code") or {}).get("git_commit", "unknown"),
        "git_dirty": (card.get("code") or {}).get("git_dirty"),
        "data": {
            "run_id": run.run_id,
            "sha256": plan.fingerprint,
            "origin": run.origin,
            "airflow_run_id": run.airflow_run_id,
            "run_started_at": run.started_at,
            "published_at": run.step("publish").detail.get("published_at"),
            "acceptances": run.acceptances,
            "row_counts": table_counts(tmp / "data" / DB_NAME),
            "validation": validation_summary(run),
            "docs": {
                site: sum(1 for p in (tmp / "data" / "docs" / site).rglob("*") if p.is_file())
                for site in ("dbt", "gx")
            },
        },
        "model": {
            "metrics": candidate.metrics,
            "gate": {"passed": gate.get("passed"), "reasons": gate.get("reasons", [])},
            "trained_on": {"run_id": trained_run, "sha256": trained_sha},
            "trained_at": card.get("trained_at"),
            "estimator": (card.get("estimator") or {}).get("class"),
        },
        "files": files,
    }


def validation_summary(run: Run) -> dict:
    """Per GX suite of the run (the monitors' too): expectations evaluated and
    passed, failures, warnings."""
    suites = []
    for name in ("validate_raw", "validate_transformed", "monitor"):
        step = run.step(name)
        for suite in step.detail.get("suites", []) if step else []:
            suites.append(
                {
                    "layer": suite["layer"],
                    "suite": suite["suite"],
                    "evaluated": suite["evaluated"],
                    "passed": suite["passed"],
                    "failed_critical": len(suite["failed_critical"]),
                    "failed_warning": len(suite["failed_warning"]),
                }
            )
    return {
        "success": all(s["failed_critical"] == 0 for s in suites) and bool(suites),
        "evaluated": sum(s["evaluated"] for s in suites),
        "passed": sum(s["passed"] for s in suites),
        "suites": suites,
    }


# ------------------------------------------------------------------ rollback


def rollback(settings: Settings) -> Release:
    """Point ``current`` at the release before it (atomically); refuse when there is
    none (:class:`BadInput`) or when its files do not match its manifest. Notifies."""
    nothing = BadInput(f"nothing is deployed in {settings.production}: no rollback")
    try:
        if current(settings) is None:  # refuse before creating anything
            raise nothing
        with _production_lock(settings, "rollback"):
            in_force = current(settings)
            if in_force is None:
                raise nothing
            earlier = [r for r in releases(settings) if r.release_id < in_force.release_id]
            if not earlier:
                raise BadInput(
                    f"release {in_force.release_id} is the oldest one kept: nothing to roll back to"
                )
            target = earlier[-1]
            problems = verify(target)
            if problems:
                raise EnvironmentFailure(
                    f"release {target.release_id} is damaged, not rolling back to it: "
                    + "; ".join(problems)
                )
            _point_current(settings, target.release_id)
    except (PipelineError, OSError) as exc:
        failure = _notified_failure("rollback", exc)
        if failure is exc:
            raise
        raise failure from exc
    notify_stage(
        "rollback",
        True,
        f"{target.describe()} is live again in {settings.production}"
        f" (rolled back from {in_force.release_id})",
    )
    return target


# ------------------------------------------------------------------ files


def _point_current(settings: Settings, release_id: str) -> None:
    """Switch ``current`` atomically: a new relative symlink renamed over the old one."""
    production = settings.production
    tmp = production / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(Path(RELEASES) / release_id, tmp)
    os.replace(tmp, production / CURRENT)
    _fsync(production)


def _prune(settings: Settings, keep_id: str) -> None:
    """Keep the newest ``DQ_KEEP_RELEASES`` releases and always ``keep_id``; each
    removed folder is first renamed out of sight, so none is ever listed half gone."""
    keep = settings.keep_releases
    if keep <= 0:
        return
    found = releases(settings)
    for release in found[: max(len(found) - keep, 0)]:
        if release.release_id == keep_id:
            continue
        hidden = release.path.with_name(f"{_OLD}{release.release_id}")
        os.rename(release.path, hidden)
        shutil.rmtree(hidden, ignore_errors=True)


def _clean_leftovers(settings: Settings) -> None:
    """What killed deploys and prunes left: hidden folders and temp symlinks."""
    folder = settings.production / RELEASES
    for path in folder.glob(".*"):
        if path.name.startswith((_TMP, _OLD)) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
    for path in settings.production.glob(f".{CURRENT}.*.tmp"):
        path.unlink(missing_ok=True)


def _copy_file(source: Path, target: Path) -> str:
    """Copy bytes, fsync them; returns the sha256 of what was written."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def _copy_tree(source: Path, target: Path) -> None:
    """A plain copy of a docs site (links followed: a release holds no link out)."""
    shutil.copytree(source, target, copy_function=_copy_file)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_tree(root: Path) -> None:
    """fsync every folder under ``root`` (files were fsynced as they were written)."""
    for folder, _, _ in os.walk(root):
        _fsync(Path(folder))
