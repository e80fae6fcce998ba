"""What can go wrong in a run, and the exit code each outcome means.

The codes are the command line's contract (README, "Exit codes"); the Airflow
DAG, the run record and the notifications use the same classification.

====  ==========================  ==================================================
code  status                      meaning
====  ==========================  ==================================================
0     ``published``               every gate passed; the audited build is published
1     ``gate failed``             a quality gate failed; nothing published
2     ``bad input``               bad input files, contracts or usage; nothing loaded
3     ``environment failure``     disk full, permissions, a broken published
                                  warehouse, a busy lock, a tool that could not
                                  run (or crashed)
143   ``terminated``              the run was stopped (SIGTERM, Airflow kill)
====  ==========================  ==================================================
"""

from __future__ import annotations

EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report it

STATUS = {
    EXIT_OK: "published",
    EXIT_GATE: "gate failed",
    EXIT_INPUT: "bad input",
    EXIT_ENVIRONMENT: "environment failure",
    EXIT_TERMINATED: "terminated",
}


class PipelineError(Exception):
    """Base of the failures a run reports with its own exit code."""

    exit_code = EXIT_GATE


class GateFailed(PipelineError):
    """A quality gate failed: nothing is published (exit 1)."""

    exit_code = EXIT_GATE


class BadInput(PipelineError):
    """Bad input files, contracts or usage: nothing loaded, nothing published (exit 2)."""

    exit_code = EXIT_INPUT


class EnvironmentFailure(PipelineError):
    """The machine or a tool failed, not the data (exit 3): disk full, permissions,
    a corrupted published warehouse, dbt that could not run at all."""

    exit_code = EXIT_ENVIRONMENT


class Busy(EnvironmentFailure):
    """Another run holds the warehouse lock for longer than ``DQ_LOCK_TIMEOUT``."""


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM). A BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` swallows it."""

    exit_code = EXIT_TERMINATED


#: SQLite's words for the same conditions (they reach us as text through dbt and GX).
ENVIRONMENT_MESSAGES = (
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
    "attempt to write a readonly database",
    "no space left on device",
    "read-only file system",
)


def looks_environmental(text: str) -> bool:
    """Whether an error text (from dbt, GX or SQLite) describes the machine, not the data."""
    lowered = text.lower()
    return any(m in lowered for m in ENVIRONMENT_MESSAGES)


def classify(exc: BaseException) -> int:
    """The exit code an exception stands for: our own failures carry theirs;
    anything else (an OS error, a tool that crashed, a bug) is exit 3."""
    if isinstance(exc, (PipelineError, Terminated)):
        return exc.exit_code
    return EXIT_ENVIRONMENT
