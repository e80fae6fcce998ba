"""Write-Audit-Publish: the last step copies the audited build warehouse over
the published one atomically.

Readers only ever open ``warehouse/jaffle_shop.db``. It is replaced by
``os.replace`` of a complete, fsynced byte copy of the run's build file, so a
reader sees either the previous warehouse or the new one, never a mix; a run
that fails (or is killed) before this step leaves it byte-for-byte unchanged.
The copy is hashed while it is written and must match the fingerprint the
gates recorded: nothing but the audited bytes is ever published.
"""

from __future__ import annotations

import contextlib
import hashlib
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


def fsync(path: Path) -> None:
    """fsync a file or a folder (after a rename into it: the new entry is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NotAudited(Exception):
    """The bytes about to be published are not the bytes the gates audited."""


def check_published(db: Path) -> str | None:
    """What is wrong with the published warehouse, or None when it is intact (or absent).

    ``pragma quick_check`` reads every page (it skips only the index-content
    comparison of ``integrity_check``): a truncated or page-damaged file fails it.
    """
    if not Path(db).exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = [r[0] for r in conn.execute("pragma quick_check")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows[:5])


def publish(build_db: Path, published_db: Path, audited: str, keep_old: Path | None = None) -> Path:
    """Atomically replace ``published_db`` with a byte copy of ``build_db``.

    ``audited`` is the SHA-256 the gates recorded. The copy is hashed as it is
    written and only renamed into place when it matches, so what readers get
    is exactly what was audited. ``keep_old``, if given, receives a hard link
    to the file being replaced (evidence of a broken warehouse).
    """
    published_db = Path(published_db)
    published_db.parent.mkdir(parents=True, exist_ok=True)
    tmp = published_db.with_name(f".{published_db.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        digest = hashlib.sha256()
        with open(build_db, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != audited:
            raise NotAudited(
                f"{build_db} changed after its audit (sha256 {digest.hexdigest()[:12]}…,"
                f" audited {audited[:12]}…): refusing to publish it"
            )
        if keep_old is not None and published_db.exists():
            keep_old.parent.mkdir(parents=True, exist_ok=True)
            os.link(published_db, keep_old)
        os.replace(tmp, published_db)
        fsync(published_db.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return published_db
