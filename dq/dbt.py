"""Run dbt in-process (``dbtRunner``) against the build warehouse.

In-process avoids paying dbt's import cost once per command; the DQ_*
variables that ``profiles.yml`` and ``dbt_project.yml`` read are exported for
the duration of the call only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field

from dq.config import Settings

log = logging.getLogger(__name__)


class DbtError(RuntimeError):
    """dbt failed to run at all (bad project, parse error, adapter error)."""


@dataclass
class DbtResult:
    """Per-node outcome of one dbt invocation."""

    command: list[str]
    success: bool
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
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


def invoke(settings: Settings, *args: str) -> DbtResult:
    """Run ``dbt <args>`` for the project; never raises for failed tests or models."""
    from dbt.cli.main import dbtRunner

    command = [
        *args,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.profiles_dir),
        "--target",
        settings.dbt_target,
    ]
    log.info("dbt %s", " ".join(args))
    with _environment(settings.dbt_env()):
        outcome = dbtRunner().invoke([*command, "--quiet", "--no-use-colors"])
    if outcome.exception is not None:
        raise DbtError(f"dbt {' '.join(args)} could not run: {outcome.exception}")
    result = DbtResult(command=command, success=bool(outcome.success))
    for node in getattr(outcome.result, "results", None) or []:
        status = str(getattr(node.status, "value", node.status))
        result.counts[status] = result.counts.get(status, 0) + 1
        if status in ("error", "fail"):
            message = (node.message or "").strip().splitlines()
            result.failures.append(f"{node.node.name}: {message[0] if message else status}")
    return result
