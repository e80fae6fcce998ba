"""Run dbt in-process (``dbtRunner``) against a run's build warehouse.

In-process avoids paying dbt's import cost once per command; the DQ_*
variables that ``profiles.yml`` and ``dbt_project.yml`` read are exported for
the duration of the call only.

Parsing the project is most of a ``dbt seed`` on the bundled sample (issue 13):
a full parse takes 2-4 s, a partial parse that finds nothing changed a few
tenths. dbt keeps its parse in ``target/partial_parse.msgpack`` and reuses it
only when the parse inputs are the same: the dbt version, the vars, the
profile's connection details *with their values*, ``dbt_project.yml`` and the
checksum of every file (a changed file, such as a model generated from a
changed source declaration, is parsed again). Each run has its own build
folder, so on SQLite dbt runs *inside* it (:func:`_working_dir`) and sees the
build file, the folder and the project by the same relative names in every
run: the connection details are then identical, the paths dbt stores in its
parse (a seed's ``root_path``, dbt's fallback for finding the CSV, shown in
the dbt docs) point into whichever build reads them, and the parse of one run
is valid for the next. :func:`parse_cache` keeps the newest parse per dbt
target under ``warehouse/cache/dbt/``; a build's first dbt command starts from
it, and dbt itself decides what of it may be reused. On PostgreSQL and Spark
the connection details hold the run's own schema, so dbt would refuse another
run's parse: there nothing is cached and dbt runs where it is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dq.config import Build, Settings
from dq.errors import EnvironmentFailure

log = logging.getLogger(__name__)


class DbtError(EnvironmentFailure):
    """dbt failed to run at all (bad project, parse error, adapter error): exit 3."""


#: Lines of one dbt error kept in the run record and the summary (the whole
#: message, up to this many lines: the cause is rarely on the first one).
MAX_ERROR_LINES = 40


@dataclass
class DbtResult:
    """Per-node outcome of one dbt invocation."""

    command: list[str]
    success: bool
    counts: dict[str, int] = field(default_factory=dict)
    #: tests that ran and failed: the data broke a rule
    failures: list[str] = field(default_factory=list)
    #: nodes that could not run at all (compile or SQL errors): the code or the tool
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set environment variables for the duration of a block (dbt reads them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _whole(message: str) -> str:
    lines = [line.rstrip() for line in (message or "").strip().splitlines() if line.strip()]
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[:MAX_ERROR_LINES], f"... ({len(lines) - MAX_ERROR_LINES} more lines)"]
    return "\n    ".join(lines)


def invoke(settings: Settings, build: Build, *args: str, schema: str | None = None) -> DbtResult:
    """Run ``dbt <args>`` on a run's build; never raises for failed tests or models.

    dbt sees the project through the build's own folder, so its target/ and
    logs/ (and the compiled seed SQL) belong to this run only.
    """
    from dbt.cli.main import dbtRunner

    from dq import dbt_hooks

    dbt_hooks.install()
    env = settings.dbt_env(build)
    # On SQLite dbt runs in the build folder and sees its file, the folder and the
    # project by the same names in every run (module docstring).
    relative = settings.target == "sqlite"
    if relative:
        env.update({"DQ_BUILD_DB": build.db.name, "DQ_BUILD_DIR": "."})
    command = [
        *args,
        "--project-dir",
        build.project_dir.name if relative else str(build.project_dir),
        "--profiles-dir",
        os.path.abspath(settings.profiles_dir),
        "--target",
        settings.dbt_target,
        "--target-path",
        os.path.abspath(build.target_dir),
        "--log-path",
        os.path.abspath(build.log_dir),
    ]
    log.info("dbt %s", " ".join(args))
    # dbt's console output is not shown: its errors come back in full through the
    # result (below) and the run record; the debug log goes to the build's logs/.
    # A log file on a full disk must not print a traceback per line either.
    logging.raiseExceptions = False
    if schema:  # on a server: read another schema than the build's (docs of a published run)
        env["DQ_BUILD_SCHEMA"] = schema
    parsed = _start_from_cache(settings, build) if relative else None
    with environment(env), _working_dir(build.root if relative else None):
        outcome = dbtRunner().invoke([*command, "--log-level", "none", "--no-use-colors"])
    if outcome.exception is not None and not isinstance(outcome.exception, Exception):
        raise outcome.exception  # SIGTERM, Ctrl-C, a task timeout: not dbt's failure
    if relative:
        _keep_parse(settings, build, parsed)
    if outcome.exception is not None:
        raise DbtError(
            f"dbt {' '.join(args)} could not run: {_whole(str(outcome.exception))}"
            f" (log: {build.log_dir / 'dbt.log'})"
        )
    result = DbtResult(command=command, success=bool(outcome.success))
    for node in getattr(outcome.result, "results", None) or []:
        status = str(getattr(node.status, "value", node.status))
        result.counts[status] = result.counts.get(status, 0) + 1
        if status in ("error", "fail"):
            message = f"{node.node.name}: {_whole(node.message) or status}"
            (result.errors if status == "error" else result.failures).append(message)
    return result


@contextlib.contextmanager
def _working_dir(folder: Path | None):
    """Run the block with ``folder`` as the process's working directory (None: unchanged).

    The working directory belongs to the whole process: nothing else in a pipeline
    process works while dbt runs (the command line and an Airflow task run one
    step at a time), and every path dq hands dbt besides the build's own is
    absolute. The previous directory is restored by descriptor, so it comes back
    even if it was renamed meanwhile.
    """
    if folder is None:
        yield
        return
    previous = os.open(".", os.O_RDONLY)
    try:
        os.chdir(folder)
        yield
    finally:
        os.fchdir(previous)
        os.close(previous)


#: The file in a target folder that dbt keeps its parse in.
PARTIAL_PARSE = "partial_parse.msgpack"


def parse_cache(settings: Settings) -> Path:
    """The newest dbt parse of this project for the settings' dbt target."""
    return settings.warehouse_dir / "cache" / "dbt" / f"{settings.dbt_target}.{PARTIAL_PARSE}"


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _copy(source: Path, dest: Path) -> None:
    """``source`` to ``dest`` in one step: a reader sees the old file or the new one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _start_from_cache(settings: Settings, build: Build):
    """A build without a dbt parse of its own starts from the newest one. dbt checks
    a parse before it reuses any of it (module docstring); a cache that cannot be
    read costs a full parse, nothing else. Returns what :func:`_keep_parse` needs."""
    cache, saved = parse_cache(settings), build.target_dir / PARTIAL_PARSE
    if not saved.exists() and cache.exists():
        with contextlib.suppress(OSError):
            _copy(cache, saved)
    return _identity(saved)


def _keep_parse(settings: Settings, build: Build, before) -> None:
    """A parse that dbt (re)wrote in the build, once dbt has finished, becomes the newest."""
    saved = build.target_dir / PARTIAL_PARSE
    after = _identity(saved)
    if after is not None and after != before:
        try:
            _copy(saved, parse_cache(settings))
        except OSError as exc:
            log.warning("the dbt parse was not kept for the next run: %s", exc)
