"""The quality history: what every run measured, in a database beside the warehouse.

``warehouse/history/quality.db`` (SQLite) outlives builds, publishes and failed
runs. The anomaly monitors train on it and the Quality trends page plots it.
It is kept out of the build folders: dbt-sqlite attaches every ``*.db`` in a
build's folder, and a run's build must hold only what its gates audit.

Schema (one row per ...):

``runs``
    run that reached the monitor step: ``run_id``, ``started_at``, ``finished_at``,
    ``status``, ``exit_code``, ``published`` (0/1).
``observations``
    check a run made on one metric of one day (or of an untimed table):
    ``run_id, source, tbl, monitor, metric, segment, bucket, observed, expected,
    lower, upper, n, status ('ok' | 'anomaly'), severity ('stop' | 'warn'), line``.
``series``
    per-day metric value *as last published*: ``source, tbl, metric, segment,
    bucket, value, n, run_id``; key ``(source, metric, segment, bucket)``.
``candidates``
    the same rows measured by a run that has not published (yet): moved into
    ``series`` when it publishes, dropped when it ends otherwise.
``layers``
    rows and rejected rows of each source per run: ``run_id, tbl, rows,
    rejected, share``.

Metric names: ``volume`` (rows per day), ``<column>.mean``, ``<column>.stddev``,
``<column>.zero_share``, ``<column>.null_share``, ``<column>.hour`` (mean hour
of a timestamp), ``<column>=<value>.share``, ``ratio:<name>``, ``rows`` (row
count of a table without a time column, bucket ``""``).

Retention: runs, observations and layers older than ``DQ_HISTORY_KEEP_DAYS``
(default 400) days are deleted when a run ends; ``series`` keeps one row per
published day and metric, so it grows with the data, not with the runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

SCHEMA = """
create table if not exists runs (
    run_id text primary key, started_at text, finished_at text,
    status text, exit_code integer, published integer default 0
);
create table if not exists observations (
    run_id text not null, source text, tbl text, monitor text, metric text,
    segment text, bucket text, observed real, expected real, lower real, upper real,
    n integer, status text, severity text, line text
);
create index if not exists observations_run on observations (run_id);
create index if not exists observations_metric on observations (source, metric, segment);
create table if not exists series (
    source text not null, tbl text, metric text not null, segment text not null,
    bucket text not null, value real, n integer, run_id text,
    primary key (source, metric, segment, bucket)
);
create table if not exists candidates (
    run_id text not null, source text not null, tbl text, metric text not null,
    segment text not null, bucket text not null, value real, n integer
);
create index if not exists candidates_run on candidates (run_id);
create table if not exists layers (
    run_id text not null, tbl text, rows integer, rejected integer, share real
);
"""

#: Columns of one ``observations`` row, in order.
OBSERVATION_FIELDS = [
    "run_id",
    "source",
    "tbl",
    "monitor",
    "metric",
    "segment",
    "bucket",
    "observed",
    "expected",
    "lower",
    "upper",
    "n",
    "status",
    "severity",
    "line",
]


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """The history database, created with its schema on first use; one transaction
    per ``with`` block (committed on success). WAL lets the docs server read while
    a run writes; concurrent runs wait for each other (busy timeout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60)
    try:
        con.execute("pragma journal_mode=wal")
        con.executescript(SCHEMA)
        with con:
            yield con
    finally:
        con.close()


def published_series(con: sqlite3.Connection, source: str) -> dict:
    """``{(metric, segment): {bucket: (value, n)}}`` as last published for a source."""
    out: dict = {}
    for metric, segment, bucket, value, n in con.execute(
        "select metric, segment, bucket, value, n from series where source = ?", (source,)
    ):
        out.setdefault((metric, segment), {})[bucket] = (value, n)
    return out


def save_run(
    con: sqlite3.Connection,
    run_id: str,
    started_at: str,
    observations: Iterable[dict],
    candidates: Iterable[tuple],
    layers: Iterable[tuple],
) -> None:
    """What one run measured: its checks, its per-day values (candidates until it
    publishes) and its rejected shares. Replaces an earlier save of the same run."""
    for table in ("observations", "candidates", "layers"):
        con.execute(f"delete from {table} where run_id = ?", (run_id,))  # noqa: S608
    con.execute(
        "insert or replace into runs (run_id, started_at, status) values (?, ?, 'running')",
        (run_id, started_at),
    )
    con.executemany(
        f"insert into observations values ({', '.join('?' * len(OBSERVATION_FIELDS))})",
        ([run_id] + [o.get(f) for f in OBSERVATION_FIELDS[1:]] for o in observations),
    )
    con.executemany(
        "insert into candidates values (?, ?, ?, ?, ?, ?, ?, ?)",
        ((run_id, *row) for row in candidates),
    )
    con.executemany("insert into layers values (?, ?, ?, ?, ?)", ((run_id, *row) for row in layers))


def promote(con: sqlite3.Connection, run_id: str) -> int:
    """The run published: its per-day values become the published series. Days the
    run no longer has (a source that went away) stay as they were published."""
    con.execute(
        """insert or replace into series
           select source, tbl, metric, segment, bucket, value, n, run_id
           from candidates where run_id = ?""",
        (run_id,),
    )
    moved = con.execute("delete from candidates where run_id = ?", (run_id,)).rowcount
    con.execute("update runs set published = 1 where run_id = ?", (run_id,))
    return moved


def finish(
    con: sqlite3.Connection, run_id: str, status: str, exit_code: int | None, finished_at: str
) -> None:
    """Close a run's entry; a run that did not publish leaves no candidate values."""
    con.execute(
        "update runs set status = ?, exit_code = ?, finished_at = ? where run_id = ?",
        (status, exit_code, finished_at, run_id),
    )
    con.execute(
        "delete from candidates where run_id = ? and not exists"
        " (select 1 from runs where run_id = ? and published = 1)",
        (run_id, run_id),
    )


def retain(con: sqlite3.Connection, keep_days: int, today: dt.date | None = None) -> int:
    """Delete runs (and their observations and layers) started more than
    ``keep_days`` days ago; 0 keeps everything. Returns the runs deleted."""
    if keep_days <= 0:
        return 0
    today = today or dt.datetime.now(dt.UTC).date()
    cutoff = (today - dt.timedelta(days=keep_days)).isoformat()
    old = [r for (r,) in con.execute("select run_id from runs where started_at < ?", (cutoff,))]
    for table in ("observations", "layers", "candidates", "runs"):
        con.executemany(
            f"delete from {table} where run_id = ?",  # noqa: S608
            ((r,) for r in old),
        )
    return len(old)
