"""The warehouse lock: short critical sections, not whole runs.

Runs build in folders of their own, so they may overlap. What they share is
serialised by one ``flock`` on ``warehouse/.lock``: creating a build folder and
cleaning old ones (begin), and replacing the published warehouse (publish).
GX's result store and Data Docs site are shared too; :func:`file_lock` guards
them with a lock of their own (``gx/uncommitted/.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from dq.config import Settings
from dq.errors import Busy, EnvironmentFailure


def ensure_writable(directory: Path, what: str = "warehouse directory") -> None:
    """Create ``directory`` if needed; refuse clearly when it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFailure(f"{what} {directory} cannot be created: {exc.strerror}") from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise EnvironmentFailure(f"{what} {directory} is not writable")


@contextlib.contextmanager
def file_lock(path: Path, holder: str, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; wait up to ``timeout`` seconds, then
    raise :class:`Busy` naming the holder. OS errors become :class:`EnvironmentFailure`."""
    try:
        handle = open(path, "a+")  # noqa: SIM115 (closed in the finally below)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot open the lock file {path}: {exc.strerror}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    who = handle.read().strip() or "unknown"
                    raise Busy(
                        f"another pipeline run holds {path} ({who}); waited {timeout:.0f} s"
                        " (DQ_LOCK_TIMEOUT). Try again when it has finished."
                    ) from None
                time.sleep(0.2)
        # Who holds it, for the message above. A full disk must not stop the run
        # here: the lock itself is held either way.
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
            handle.write(f"{holder}, pid {os.getpid()}")
            handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def warehouse_lock(settings: Settings, run_id: str, timeout: float | None = None) -> Iterator[None]:
    """The lock for one warehouse (``DQ_LOCK_TIMEOUT``, default 600 s)."""
    ensure_writable(settings.warehouse_dir)
    with file_lock(
        settings.warehouse_dir / ".lock",
        f"run {run_id}",
        settings.lock_timeout if timeout is None else timeout,
    ):
        yield
