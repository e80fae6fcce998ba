"""Run dbt in-process (``dbtRunner``) against a run's build warehouse.

In-process avoids paying dbt's import cost once per command; the DQ_*
variables that ``profiles.yml`` and ``dbt_project.yml`` read are exported for
the duration of the call only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field

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
    command = [
        *args,
        "--project-dir",
        str(build.project_dir),
        "--profiles-dir",
        str(settings.profiles_dir),
        "--target",
        settings.dbt_target,
        "--target-path",
        str(build.target_dir),
        "--log-path",
        str(build.log_dir),
    ]
    log.info("dbt %s", " ".join(args))
    # dbt's console output is not shown: its errors come back in full through the
    # result (below) and the run record; the debug log goes to the build's logs/.
    # A log file on a full disk must not print a traceback per line either.
    logging.raiseExceptions = False
    env = settings.dbt_env(build)
    if schema:  # on a server: read another schema than the build's (docs of a published run)
        env["DQ_BUILD_SCHEMA"] = schema
    with environment(env):
        outcome = dbtRunner().invoke([*command, "--log-level", "none", "--no-use-colors"])
    if outcome.exception is not None and not isinstance(outcome.exception, Exception):
        raise outcome.exception  # SIGTERM, Ctrl-C, a task timeout: not dbt's failure
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
