"""What the pipeline adds to dbt when it runs dbt in its own process (:mod:`dq.dbt`).

Two things, each only while :func:`dq.dbt.invoke` has set its variable:

- the build pragmas below (:data:`ENV`);
- seeds read as a stream instead of whole agate tables (:data:`STREAM_ENV`,
  :mod:`dq.seed_stream`): the same tables, in constant memory.

A run's build file is throw-away: only that run writes it, and a run that dies
leaves a build no one publishes (the next run starts a new one). So the
pipeline's dbt connections to it skip the durability a published database
needs: the rollback journal stays in memory and nothing waits for fsync.
A plain ``dbt build`` (the ``dev`` sandbox) never gets these settings: they
apply only while :func:`dq.dbt.invoke` has set :data:`ENV`.

:func:`install` is idempotent and changes nothing else about dbt-sqlite's
connections (same files, same attached schemas, same transactions).
"""

from __future__ import annotations

import os

#: Set (to "1") by dq.config.Settings.dbt_env for a run's SQLite build.
ENV = "DQ_BUILD_PRAGMAS"
#: Set (to "1") by dq.config.Settings.dbt_env unless ``DQ_STREAM_SEEDS=off``.
STREAM_ENV = "DQ_STREAM_SEEDS"

#: Per-connection settings for a throw-away build file. journal_mode=memory keeps
#: ROLLBACK working (dbt rolls back a failed node) without writing a journal file;
#: synchronous=off leaves flushing to the OS; a 64 MB page cache (SQLite's default
#: is 2 MB) keeps the sorts of the check models in memory longer, bounded whatever
#: the file's size.
BUILD_PRAGMAS = ("journal_mode = memory", "synchronous = off", "cache_size = -65536")

_installed = False


def apply_build_pragmas(handle) -> None:
    """The throw-away build settings on one sqlite3 connection's main database."""
    for pragma in BUILD_PRAGMAS:
        handle.execute(f"pragma main.{pragma}")


def stream_seeds() -> bool:
    """Whether this dbt invocation reads seeds as streams (:mod:`dq.seed_stream`)."""
    return os.environ.get(STREAM_ENV) == "1"


def install() -> None:
    """Wrap dbt-sqlite's connection opening and dbt's seed reading (once per process)."""
    global _installed  # pylint: disable=global-statement
    if _installed:
        return
    from dq import seed_stream

    seed_stream.install(stream_seeds)
    from dbt.adapters.sqlite.connections import SQLiteConnectionManager

    opened = SQLiteConnectionManager.open.__func__

    def open_build(cls, connection):
        fresh = connection.state != "open"
        connection = opened(cls, connection)
        if fresh and os.environ.get(ENV) == "1" and connection.handle is not None:
            apply_build_pragmas(connection.handle)
        return connection

    SQLiteConnectionManager.open = classmethod(open_build)
    _installed = True
