"""Write-Audit-Publish: the last step copies the audited build warehouse over
the published one atomically.

Readers only ever open ``warehouse/jaffle_shop.db``. It is replaced by
``os.replace`` of a complete, fsynced copy made with SQLite's backup API, so a
reader sees either the previous warehouse or the new one, never a mix; a run
that fails (or is killed) before this step leaves it byte-for-byte unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path


def table_counts(db: Path) -> dict[str, int]:
    """Row count of every table in a SQLite file (empty when the file is absent)."""
    if not Path(db).exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "select name from sqlite_master where type = 'table'"
                " and name not like 'sqlite_%' order by name"
            )
        ]
        # Names come from sqlite_master and are quoted as identifiers.
        return {
            n: conn.execute(f'select count(*) from "{n.replace(chr(34), chr(34) * 2)}"').fetchone()[
                0
            ]
            for n in names
        }


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(build_db: Path, published_db: Path) -> Path:
    """Atomically replace ``published_db`` with a copy of ``build_db``."""
    published_db = Path(published_db)
    published_db.parent.mkdir(parents=True, exist_ok=True)
    tmp = published_db.with_name(f".{published_db.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(f"file:{build_db}?mode=ro", uri=True)
        with contextlib.closing(source) as src, contextlib.closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)
            dst.execute("pragma journal_mode = delete")
        _fsync(tmp)
        os.replace(tmp, published_db)
        _fsync(published_db.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return published_db
