"""A run's private build folder, the fingerprint that proves what was audited,
and the retention of old builds and GX results.

``warehouse/build/<run id>/`` holds::

    jaffle_shop.db   the warehouse this run builds and its gates audit
    seeds/           the CSVs and contracts as preflight copied and checked them
    project/         the dbt project seen through links, with this run's own target/ and logs/

No other run and no plain ``dbt build`` (which builds ``dbt_project/dev/``)
writes here. On top of that, every gate records the SHA-256 of the file it
audited, and publish copies the file only if the bytes it copies hash to the
same value (:func:`dq.publish.publish`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from dq.config import Build, Settings

log = logging.getLogger(__name__)

#: What a run's dbt project links to; everything else (target/, logs/, dev/) is the run's own.
PROJECT_ENTRIES = ("dbt_project.yml", "models", "macros", "tests", "snapshots", "analyses")

CHUNK = 1 << 20


def create(settings: Settings, run_id: str) -> Build:
    """A new, empty build folder with the dbt project farm (fails if it exists)."""
    build = settings.build(run_id)
    build.root.mkdir(parents=True)
    build.project_dir.mkdir()
    for name in PROJECT_ENTRIES:
        source = settings.dbt_project_dir / name
        if source.exists():
            os.symlink(source, build.project_dir / name)
    return build


def snapshot_seeds(source: Path, build: Build, names: list[str]) -> None:
    """Copy the named files from the seeds folder into the build (replacing an earlier copy)."""
    if build.seeds_dir.exists():
        shutil.rmtree(build.seeds_dir)
    build.seeds_dir.mkdir()
    for name in names:
        if (source / name).is_file():
            shutil.copyfile(source / name, build.seeds_dir / name)


def fingerprint(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def settled_fingerprint(build: Build) -> str:
    """The build file's fingerprint, refusing a file with a hot journal beside it
    (an interrupted write: the bytes alone are not the database)."""
    for suffix in ("-journal", "-wal"):
        if Path(f"{build.db}{suffix}").exists():
            raise RuntimeError(f"{build.db}{suffix} exists: a write to the build was interrupted")
    return remembered_fingerprint(build.db, build.root / FINGERPRINT_CACHE)


#: Where a build keeps the fingerprint of its file together with the file's identity.
FINGERPRINT_CACHE = ".fingerprint.json"

#: A remembered fingerprint is trusted only if the file had not been written for this
#: long when hashing began: every later write then sets a newer change time (ctime),
#: which no writer can set back, so an unchanged identity means unchanged bytes.
QUIET_NS = 1_000_000_000


def _identity(path: Path) -> list[int]:
    """What every write to a file changes: device, inode, size, mtime and ctime."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def remembered_fingerprint(path: Path, cache: Path) -> str:
    """The SHA-256 of ``path``, hashed again only when the file changed since it was
    last hashed (a gate re-checks the build many times; at three years of data
    each hash reads about 1 GB). Publish does not use this: it hashes the very
    bytes it publishes (:func:`dq.publish.publish`)."""
    before = _identity(path)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        known = json.loads(cache.read_text(encoding="utf-8"))
        if known["identity"] == before:
            return str(known["sha256"])
    started = time.time_ns()
    digest = fingerprint(path)
    changed_at = before[4]
    # Trust it later only if nothing wrote during or just before the hashing, and the
    # file system keeps sub-second times (a coarse clock could hide a second write).
    if _identity(path) == before and changed_at % 1_000_000_000 and changed_at + QUIET_NS < started:
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps({"identity": before, "sha256": digest}), encoding="utf-8")
            os.replace(tmp, cache)
    return digest


# ------------------------------------------------------------------ retention


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def clean_builds(settings: Settings, statuses: dict[str, str], keep_failed: int) -> list[str]:
    """Remove finished build folders: published ones (their file is the published
    warehouse now) and failed ones beyond the newest ``keep_failed``. Builds of
    runs still running (or unknown to ``statuses``, e.g. just begun) stay.

    ``statuses`` maps run id -> record status. Returns the removed run ids.
    """
    if not settings.builds_dir.exists():
        return []
    finished = []
    for folder in settings.builds_dir.iterdir():
        status = statuses.get(folder.name)
        if status is None or status == "running" or not folder.is_dir():
            continue
        finished.append((folder.stat().st_mtime, folder, status))
    finished.sort(reverse=True)
    removed, kept_failed = [], 0
    for _, folder, status in finished:
        if status != "published" and kept_failed < keep_failed:
            kept_failed += 1
            continue
        _remove(folder)
        removed.append(folder.name)
    return removed


def clean_validations(settings: Settings, keep_runs: int) -> int:
    """Keep GX results and their Data Docs pages of the newest ``keep_runs`` runs.

    GX lays them out as ``<suite>/<run name>/<run time>/<batch>.json`` (results)
    and the same path with ``.html`` under the site's ``validations/``; a run
    name is ``<run id>-<layer>``. Returns the number of run folders removed.
    """
    results = settings.validations_dir
    pages = settings.data_docs_dir / "validations"
    if not results.exists():
        return 0
    newest: dict[str, float] = {}
    for run_folder in results.glob("*/*"):
        run_id = run_folder.name.rsplit("-", 1)[0]
        newest[run_id] = max(newest.get(run_id, 0.0), run_folder.stat().st_mtime)
    keep = set(sorted(newest, key=newest.get, reverse=True)[: max(keep_runs, 0)])
    removed = 0
    for root in (results, pages):
        for run_folder in list(root.glob("*/*")) if root.exists() else []:
            if run_folder.name.rsplit("-", 1)[0] not in keep:
                _remove(run_folder)
                removed += root is results
    return removed
