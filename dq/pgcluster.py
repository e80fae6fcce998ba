"""A throw-away PostgreSQL cluster owned by the project: ``make postgres`` /
``make postgres-stop`` (``python -m dq postgres start|stop|status``).

It is Debian's ``postgresql`` server run without systemd::

    initdb  (once)    .services/postgres/data, as user postgres when we are root
    pg_ctl -w start   127.0.0.1:$DQ_PG_PORT (55432), its socket in .services/postgres/

The superuser is ``$DQ_PG_USER`` (``dq``) with ``$DQ_PG_PASSWORD``; when that
variable is unset, ``start`` draws a password once and keeps it in
``.services/pg-password`` (mode 0600, git-ignored), which
:func:`dq.config.load` reads. Nothing secret is committed. ``start`` also
creates the warehouse database (``$DQ_PG_DATABASE``, ``jaffle_shop``) and
``airflow``, the metadata database of the distributed Airflow.

A server the project did not start (``DQ_PG_HOST`` elsewhere) needs none of
this: set the ``DQ_PG_*`` variables and ``DQ_TARGET=postgres``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from dq import config
from dq.errors import EnvironmentFailure

#: Databases ``start`` makes sure exist: the warehouse's and Airflow's metadata.
AIRFLOW_DATABASE = "airflow"


def _bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise EnvironmentFailure(
        f"{name} not found: install PostgreSQL (Debian: apt-get install -y postgresql)"
    )


def _as_owner(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run as user postgres."""
    if os.getuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _owner_ids() -> tuple[int, int] | None:
    if os.getuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise EnvironmentFailure("no user postgres: apt-get install -y postgresql") from None
    return entry.pw_uid, entry.pw_gid


def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise EnvironmentFailure(f"{what} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def password_file(settings: config.Settings) -> Path:
    """Where ``start`` keeps the password it drew (dq.config reads it from here)."""
    return settings.services_dir / "pg-password"


def _ensure_password(settings: config.Settings) -> str:
    if settings.pg_password:
        return settings.pg_password
    path = password_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text(encoding="utf-8").strip()


def status(settings: config.Settings) -> str | None:
    """``running`` when the project's own cluster runs and accepts connections, else
    None. Another server answering on the same port is not ours: ``pg_ctl status``
    asks this data folder's postmaster, ``pg_isready`` then asks the port."""
    data = settings.pg_data_dir
    if not (data / "PG_VERSION").exists():
        return None
    ours = subprocess.run(
        _as_owner([_bin("pg_ctl"), "-D", str(data), "status"]), capture_output=True, check=False
    )
    if ours.returncode != 0:
        return None
    done = subprocess.run(
        [_bin("pg_isready"), "-h", settings.pg_host, "-p", str(settings.pg_port), "-q"],
        check=False,
    )
    return "running" if done.returncode == 0 else None


def start(settings: config.Settings) -> str:
    """initdb (first time), start, create the databases. Returns a one-line report."""
    data, home = settings.pg_data_dir, settings.pg_data_dir.parent
    password = _ensure_password(settings)
    home.mkdir(parents=True, exist_ok=True)
    ids = _owner_ids()
    started = time.perf_counter()
    if not (data / "PG_VERSION").exists():
        data.mkdir(mode=0o700, exist_ok=True)
        pwfile = home / ".initdb-password"
        pwfile.write_text(password + "\n", encoding="utf-8")
        if ids:
            for path in (home, data, pwfile):
                os.chown(path, *ids)
        try:
            _run(
                _as_owner(
                    [
                        _bin("initdb"), "-D", str(data), "-U", settings.pg_user,
                        f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                        "--locale=C.UTF-8", "--no-instructions",
                    ]
                ),
                "initdb",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
    if status(settings) != "running":
        options = (
            f"-h {settings.pg_host} -p {settings.pg_port} -k {home}"
            " -c fsync=on -c max_connections=60 -c shared_buffers=64MB"
        )
        log = home / "server.log"
        try:
            _run(
                _as_owner(
                    [
                        _bin("pg_ctl"), "-D", str(data), "-l", str(log),
                        "-o", options, "-w", "-t", "60", "start",
                    ]
                ),
                "pg_ctl start",
            )  # fmt: skip
        except EnvironmentFailure as exc:
            # The server's own reason (a port in use, say) is in its log, not pg_ctl's output.
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-3:]
            raise EnvironmentFailure(
                f"{exc}; {log}: {' | '.join(lines)} (another port: DQ_PG_PORT)"
            ) from None
    for database in dict.fromkeys([settings.pg_database, AIRFLOW_DATABASE]):
        _create_database(settings, password, database)
    seconds = time.perf_counter() - started
    return (
        f"PostgreSQL running on {settings.pg_host}:{settings.pg_port} (data {data},"
        f" user {settings.pg_user}, databases {settings.pg_database} and {AIRFLOW_DATABASE};"
        f" {seconds:.1f} s)"
    )


def _create_database(settings: config.Settings, password: str, name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    try:
        con = psycopg2.connect(
            host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
            password=password, dbname="postgres", connect_timeout=10,
        )  # fmt: skip
    except psycopg2.OperationalError as exc:
        raise EnvironmentFailure(
            f"the project's PostgreSQL on {settings.pg_host}:{settings.pg_port} refused"
            f" {settings.pg_user}: {str(exc).strip()}"
        ) from None
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    finally:
        con.close()


def stop(settings: config.Settings) -> str:
    """Stop the project's cluster (fast shutdown); its data stays for the next start."""
    data = settings.pg_data_dir
    if not (data / "PG_VERSION").exists():
        return "no project PostgreSQL cluster"
    if not (data / "postmaster.pid").exists():
        return "PostgreSQL was not running"
    _run(_as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), "pg_ctl stop")
    return f"PostgreSQL stopped ({data})"


def remove(settings: config.Settings) -> None:
    """Stop the cluster and delete it (tests' throw-away clusters)."""
    with contextlib.suppress(EnvironmentFailure):
        stop(settings)
    shutil.rmtree(settings.pg_data_dir.parent, ignore_errors=True)


def command(action: str) -> int:
    """``python -m dq postgres start|stop|status``; status exits 1 when not running."""
    settings = config.load()
    if action == "start":
        print(start(settings))
    elif action == "stop":
        print(stop(settings))
    else:
        state = status(settings)
        print(state or "not running")
        return 0 if state else 1
    return 0
