"""Run Airflow 3 locally for this project: ``python -m dq airflow start|stop|status``.

``start`` runs ``airflow db migrate``, then the three long-lived components
(``api-server``, ``scheduler``, ``dag-processor``) as separate processes, each
in its own session, with:

* ``AIRFLOW_HOME`` = ``airflow_home/`` in the project (git-ignored), or ``DQ_AIRFLOW_HOME``;
* the project's ``dags/`` as DAGs folder, example DAGs off;
* the API server bound to 127.0.0.1 on ``DQ_AIRFLOW_PORT`` (default 8080);
* ``parallelism`` 4: the default of 32 LocalExecutor workers costs ~1 GiB here.

Log in with the simple auth manager: one admin user (``DQ_AIRFLOW_USER``,
default ``admin``) whose password is drawn at random on first start and kept in
``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated`` (mode 0600), the
file Airflow's simple auth manager itself reads; ``DQ_AIRFLOW_PASSWORD`` sets
it instead. The secrets Airflow needs (JWT, API secret key, Fernet key) are
drawn by Airflow into ``$AIRFLOW_HOME/airflow.cfg`` on first use. Nothing
secret lives in the repository.

Nothing listens beyond the API server on 127.0.0.1: the scheduler runs with
``--skip-serve-logs``. Its log server would listen on every interface on port
8793 (``airflow.utils.serve_logs`` hard-codes the host; only the port is a
setting), so two instances would clash, and LocalExecutor does not need it: the
tasks write their logs under ``$AIRFLOW_HOME/logs``, where the API server reads
them for the UI, while a task runs and after.

We do not use ``airflow standalone``: it starts 32 workers by default and a
SIGTERM to it orphans its children. Here every component's PID, process group
and identity (start time and command line) go to ``$AIRFLOW_HOME/dq-airflow.json``.
``stop`` and ``status`` act on a recorded PID only while it is still the process
that ``start`` started: a stale file (after a reboot, say) whose PIDs now belong
to other processes is reported, and those processes are left alone. ``stop``
ends the groups plus any descendant that left them, so nothing stays behind.

``start --distributed`` (``make airflow-distributed``) runs the same DAG under
CeleryExecutor through the same code path: the project's PostgreSQL
(:mod:`dq.pgcluster`, database ``airflow``) holds Airflow's metadata and the
Celery results, Debian's ``redis-server`` (started here like a component, on
127.0.0.1:``DQ_REDIS_PORT`` with a drawn password and ``--save ''``) is the
broker, and two ``airflow celery worker`` processes (``dq-worker-1``,
``dq-worker-2``; ``DQ_AIRFLOW_WORKERS``) run the tasks, one at a time each
(``DQ_AIRFLOW_WORKER_CONCURRENCY``). The workers skip their log server for the
scheduler's reason: they share ``$AIRFLOW_HOME/logs`` with the API server. Each
records its own name as the hostname of the task instances it runs
(:func:`worker_hostname`), so the UI and the API tell the two apart on one host.
``stop`` ends the workers and Redis with the rest; PostgreSQL keeps running
(other work may use it): ``make postgres-stop`` stops it.

:func:`airflow_settings` is the one place the ``AIRFLOW__*`` configuration is
written, for both modes; ``docker-compose.yml`` repeats the distributed one for
containers, and ``tests/test_containers.py`` checks the two agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from dq import config, pgcluster

# Airflow's metadata database (and the Celery results) in the project's PostgreSQL.
from dq.pgcluster import AIRFLOW_DATABASE

DEFAULT_PORT = 8080
HOST = "127.0.0.1"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
STATE_FILE = "dq-airflow.json"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
# psutil derives a start time from clock ticks since boot: the same process reads
# back the same value give or take a tick; a reused PID started at another moment.
START_TIME_TOLERANCE = 1.0
# Component -> the airflow sub-command it runs, with the spelling setproctitle uses
# ("airflow api_server -- host:..." once the API server has renamed itself).
# The scheduler's log server would listen on all interfaces (see the module docstring).
ARGS = {"scheduler": ("--skip-serve-logs",)}
COMMANDS = {name: (name, name.replace("-", "_")) for name in COMPONENTS}
#: A Celery worker's command after ``airflow``: it too leaves its log server off
#: (it would bind every interface on 8793, once per worker).
WORKER_ARGS = ("celery", "worker", "--skip-serve-logs")
#: The Celery broker's component name in the state file.
REDIS = "redis"
#: Settings a user's environment may override (the rest are what the tests check).
OVERRIDABLE = {
    "AIRFLOW__CORE__PARALLELISM": "4",
    # Look for DAG file changes every 30 s instead of 5 minutes: this is a dev box.
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
}


@dataclass
class Instance:
    """A running local Airflow: where it lives, how to reach it, what to stop."""

    home: str
    port: int
    url: str
    username: str
    password: str
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0
    # Component -> {"pid", "create_time", "cmdline"}: what "still ours" is checked against.
    identities: dict[str, dict] = field(default_factory=dict)
    #: "local" (LocalExecutor) or "distributed" (CeleryExecutor, Redis, PostgreSQL)
    mode: str = "local"

    def save(self) -> None:
        path = Path(self.home) / STATE_FILE
        # The password is already on disk in the passwords file; keep it out of this one.
        data = {k: v for k, v in asdict(self).items() if k != "password"}
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")

    def record(self, name: str, pid: int, cmdline: list[str]) -> None:
        """Note a component just started, with its identity, and save the state file."""
        self.pids[name] = pid
        self.identities[name] = identity(pid, cmdline)
        self.save()


def default_home() -> Path:
    """``DQ_AIRFLOW_HOME`` or ``airflow_home/`` in the project."""
    value = os.environ.get("DQ_AIRFLOW_HOME")
    return Path(value).expanduser().resolve() if value else config.PROJECT_ROOT / "airflow_home"


def default_port() -> int:
    return int(os.environ.get("DQ_AIRFLOW_PORT", DEFAULT_PORT))


def _airflow_bin() -> str:
    # The venv's airflow, even when the venv is not activated (make, cron, tests).
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


@dataclass(frozen=True)
class Services:
    """Where a distributed Airflow finds its metadata database (also the Celery
    result backend) and its broker: the project's own servers on loopback here,
    the ``postgres`` and ``redis`` services in ``docker-compose.yml``."""

    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    redis_host: str
    redis_port: int
    redis_password: str
    worker_concurrency: int = 1

    @classmethod
    def of(cls, settings: config.Settings) -> Services:
        """The servers ``start --distributed`` runs, from the project's settings."""
        return cls(
            pg_host=settings.pg_host,
            pg_port=settings.pg_port,
            pg_user=settings.pg_user,
            pg_password=settings.pg_password,
            redis_host=settings.redis_host,
            redis_port=settings.redis_port,
            redis_password=settings.redis_password,
            worker_concurrency=settings.airflow_worker_concurrency,
        )

    @property
    def database_url(self) -> str:
        """Airflow's metadata database (SQLAlchemy URL, psycopg2 driver)."""
        password = quote(self.pg_password, safe="")
        return (
            f"postgresql+psycopg2://{self.pg_user}:{password}@{self.pg_host}:{self.pg_port}"
            f"/{AIRFLOW_DATABASE}"
        )

    @property
    def broker_url(self) -> str:
        """The Celery broker: Redis database 0, with the password."""
        password = quote(self.redis_password, safe="")
        return f"redis://:{password}@{self.redis_host}:{self.redis_port}/0"


def airflow_settings(  # pylint: disable=too-many-arguments  # keywords, each a place
    home: Path,
    root: Path,
    *,
    port: int,
    user: str = "admin",
    bind: str = HOST,
    api_host: str = HOST,
    public_url: str | None = None,
    services: Services | None = None,
) -> dict[str, str]:
    """The ``AIRFLOW__*`` configuration of an instance whose home is ``home`` and
    whose project is ``root``: LocalExecutor, or with ``services`` CeleryExecutor.

    Written once, here: ``start`` runs every process with it, and
    ``docker-compose.yml`` repeats it for containers (``bind`` 0.0.0.0, the API
    reached as ``airflow-apiserver``, the servers as ``postgres`` and ``redis``);
    ``tests/test_containers.py`` checks that both say the same. Every component
    gets the same settings: a scheduler and a worker that disagreed on the
    executor or the database would each run, and never meet.
    """
    reach = f"http://{api_host}:{port}"
    settings = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if services else "LocalExecutor",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__API__HOST": bind,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        # Off by default; should someone turn it on, it too stays on loopback.
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": HOST,
        # What a browser opens; task processes reach the Execution API through the
        # second URL, whose default (localhost:8080) would be wrong for any other port.
        "AIRFLOW__API__BASE_URL": public_url or reach,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{reach}/execution/",
        **OVERRIDABLE,
    }
    if services:
        settings |= {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": services.database_url,
            "AIRFLOW__CELERY__BROKER_URL": services.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + services.database_url,
            # One task at a time per worker: the DAG is a chain, and each task
            # process (dbt, GX) takes a few hundred MiB.
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(services.worker_concurrency),
        }
    return settings


def worker_settings(name: str) -> dict[str, str]:
    """What a Celery worker adds to :func:`airflow_settings`: its name, recorded as
    the hostname of the task instances it runs (:func:`worker_hostname`)."""
    return {
        "DQ_AIRFLOW_WORKER_NAME": name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "dq.airflow_local.worker_hostname",
    }


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in the workers: ``DQ_AIRFLOW_WORKER_NAME``.

    Every worker ``start`` runs shares this host, whose name alone would not say
    which of them ran a task; in containers the name is also the container's.
    Without the variable, the host's name as Airflow's default gives it.
    """
    import socket

    return config.load().airflow_worker_name or socket.getfqdn()


def command_args(name: str) -> list[str]:
    """A component's or worker's command after ``airflow`` (the compose file's
    ``command:`` of the matching service is the same)."""
    if name in COMPONENTS:
        return [name, *ARGS.get(name, ())]
    return [*WORKER_ARGS, "--celery-hostname", name]


def worker_names(count: int) -> list[str]:
    """The Celery workers' names (component names and hostnames): dq-worker-1, ..."""
    return [f"dq-worker-{i}" for i in range(1, count + 1)]


def airflow_env(
    home: Path,
    port: int,
    extra: dict[str, str] | None = None,
    services: Services | None = None,
) -> dict[str, str]:
    """The environment every Airflow process of this instance runs with."""
    env = dict(os.environ)
    bin_dir = str(Path(_airflow_bin()).parent)
    user = env.get("DQ_AIRFLOW_USER", "admin")
    settings = airflow_settings(home, config.PROJECT_ROOT, port=port, user=user, services=services)
    # The user's environment may tune these; everything else is as written above.
    settings |= {key: env[key] for key in OVERRIDABLE if key in env}
    env.update(
        {"PATH": bin_dir + os.pathsep + env.get("PATH", ""), "AIRFLOW_HOME": str(home), **settings}
    )
    env.update(extra or {})
    return env


def ensure_password(home: Path, username: str, password: str | None = None) -> str:
    """The admin's password from Airflow's passwords file, creating it (0600) if needed."""
    path = home / PASSWORDS_FILE
    passwords: dict[str, str] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            passwords = json.loads(path.read_text(encoding="utf-8") or "{}")
    if password is not None or username not in passwords:
        passwords[username] = password or secrets.token_urlsafe(12)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(passwords) + "\n")
    os.chmod(path, 0o600)
    return passwords[username]


def _load_state(home: Path) -> dict | None:
    try:
        return json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def identity(pid: int, cmdline: list[str] | None = None) -> dict:
    """What tells this process apart from a later one with the same PID.

    ``cmdline``: the one it was started with. Read right after ``Popen`` returns,
    ``/proc`` may still show an empty one (the kernel sets it late in ``exec``).
    """
    import psutil

    proc = psutil.Process(pid)
    with proc.oneshot():
        return {
            "pid": pid,
            "create_time": proc.create_time(),
            "cmdline": list(cmdline) if cmdline is not None else proc.cmdline(),
        }


def _runs_component(name: str, cmdline: list[str]) -> bool:
    """Whether a command line is ``airflow <name>`` (as started, or as renamed by
    setproctitle, which puts the whole title in argv[0] and pads with ""); for
    Redis, ``redis-server``; for a worker, an airflow or celery command that names it."""
    words = " ".join(cmdline).split()
    if name == REDIS:
        return any("redis-server" in w for w in words)
    if name in COMMANDS:
        return any("airflow" in w for w in words) and any(w in COMMANDS[name] for w in words)
    # Its name as a word ("dq-worker-1") or in Celery's title ("celery@dq-worker-1:Main...").
    named = re.compile(rf"(?:^|@){re.escape(name)}(?::|$)")
    return any(named.search(w) for w in words) and any(
        "airflow" in w or "celery" in w for w in words
    )


def _ours(name: str, recorded: dict | None) -> tuple:
    """``(process, why)`` for a recorded component: ``process`` is None unless the
    PID is still the process ``start`` started (a zombie of it included); ``why``
    is empty while it runs, else says why it does not.

    Still the one started means: it started when the recorded one did (within
    :data:`START_TIME_TOLERANCE`) and still runs ``airflow <name>``.
    """
    import psutil

    if not recorded or "create_time" not in recorded:
        return None, "no identity recorded (state file from an older version), left alone"
    pid = recorded["pid"]
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            created, state = proc.create_time(), proc.status()
            cmdline = [] if state == psutil.STATUS_ZOMBIE else proc.cmdline()
    except psutil.NoSuchProcess:
        return None, f"exited (PID {pid} is free)"
    except psutil.AccessDenied:
        return None, f"PID {pid} now belongs to another user's process, left alone"
    same_start = abs(created - recorded["create_time"]) <= START_TIME_TOLERANCE
    if same_start and state == psutil.STATUS_ZOMBIE:
        return proc, "exited (a zombie now)"
    if not same_start or not _runs_component(name, cmdline):
        what = " ".join(cmdline).strip()[:60] or proc.name()
        return None, f"PID {pid} is now another process ({what}), left alone"
    return proc, ""


def _components(state: dict | None) -> tuple[dict, dict[str, str], dict]:
    """For a state file: ``live`` {name: process} of the components still running,
    ``gone`` {name: why not running}, and ``groups`` {group ID: leader process or
    None} of the process groups that can only be ours.

    A component's group ID is its PID. The group is ours while that PID is the
    component (a zombie included) or free: Linux hands out no PID still in use
    as a group ID, so workers a crashed component left keep its ID reserved.
    Once another process holds the PID, the group is not ours.
    """
    live, gone, groups = {}, {}, {}
    identities = (state or {}).get("identities", {})
    for name, pid in (state or {}).get("pids", {}).items():
        proc, why = _ours(name, identities.get(name) or {"pid": pid})
        if proc is not None:
            groups[proc.pid] = proc
        elif why.startswith("exited"):
            groups[pid] = None
        if proc is not None and not why:
            live[name] = proc
        else:
            gone[name] = why
    return live, gone, groups


def _group(pgid: int) -> list:
    """The live (not zombie) processes in process group ``pgid``."""
    import psutil

    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def health(port: int, timeout: float = 2.0) -> dict | None:
    """``/api/v2/monitor/health`` (no login needed), or None when not answering."""
    try:
        url = f"http://{HOST}:{port}/api/v2/monitor/health"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _healthy(report: dict | None) -> bool:
    if not report:
        return False
    parts = ("metadatabase", "scheduler", "dag_processor")
    return all((report.get(p) or {}).get("status") == "healthy" for p in parts)


def start(
    home: Path | None = None,
    port: int | None = None,
    *,
    extra_env: dict[str, str] | None = None,
    timeout: float = 180.0,
    distributed: bool = False,
) -> Instance:
    """Start Airflow (migrate, then api-server + scheduler + dag-processor) and wait
    until its health endpoint reports every component healthy.

    ``distributed``: CeleryExecutor instead, on the project's PostgreSQL (started
    if need be, left running by ``stop``) and its own Redis, with the Celery
    workers; also waits until every worker is ready for tasks.

    Raises RuntimeError (after stopping what it started) when that does not
    happen within ``timeout`` seconds or a component exits.
    """
    home = Path(home or default_home()).resolve()
    port = port or default_port()
    home.mkdir(parents=True, exist_ok=True)
    live, _gone, _groups = _components(_load_state(home))
    if live:
        raise RuntimeError(f"Airflow already running from {home} (stop it first)")
    if health(port, timeout=1.0) is not None:
        raise RuntimeError(f"something already answers on {HOST}:{port}; set DQ_AIRFLOW_PORT")
    services = _services() if distributed else None
    env = airflow_env(home, port, extra_env, services)
    # Airflow reads the password from the passwords file: no Airflow process (nor
    # any task it runs) needs it in its environment.
    chosen = env.pop("DQ_AIRFLOW_PASSWORD", "") or None
    username = env.get("DQ_AIRFLOW_USER", "admin")
    password = ensure_password(home, username, chosen)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    started = time.monotonic()
    instance = Instance(
        home=str(home),
        port=port,
        url=f"http://{HOST}:{port}",
        username=username,
        password=password,
        started_at=time.time(),
        mode="distributed" if distributed else "local",
    )

    def launch(name: str, argv: list[str], environ: dict[str, str]) -> None:
        with open(logs / f"dq-{name}.log", "ab") as out:
            # A session of its own per component: stop() can signal the whole
            # process group, workers included, without touching our own.
            process = subprocess.Popen(
                argv,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=home,
                start_new_session=True,
            )
        instance.record(name, process.pid, argv)

    workers: dict[str, int] = {}
    try:
        if services:
            launch(REDIS, _redis_argv(services), env)
            _wait_for_redis(services, instance, deadline=started + 30)
        with open(logs / "dq-db-migrate.log", "wb") as out:
            subprocess.run(
                [_airflow_bin(), "db", "migrate"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                cwd=home,
            )
        for name in COMPONENTS:
            launch(name, [_airflow_bin(), *command_args(name)], env)
        for name in worker_names(config.load().airflow_workers) if services else ():
            # Where this start's output begins: the log may hold an earlier "ready".
            log = logs / f"dq-{name}.log"
            workers[name] = log.stat().st_size if log.exists() else 0
            launch(name, [_airflow_bin(), *command_args(name)], {**env, **worker_settings(name)})
        deadline = started + timeout
        while not (_healthy(health(port)) and all(_ready(logs, w, o) for w, o in workers.items())):
            dead = [n for n, p in instance.pids.items() if _exited(p)]
            if dead:
                raise RuntimeError(f"Airflow {', '.join(dead)} exited; see {logs}/dq-*.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow not healthy after {timeout:.0f} s; see {logs}")
            time.sleep(1.0)
    except BaseException:
        stop(home)
        raise
    return instance


def _services() -> Services:
    """Start the project's PostgreSQL (it creates the ``airflow`` database) and draw
    the Redis password once; the servers a distributed start runs on."""
    settings = config.load()
    if settings.pg_host == HOST:
        pgcluster.start(settings)
    if not settings.redis_password:
        _drawn_secret(settings.services_dir / "redis-password")
    settings = config.load()  # now with the passwords the first start drew
    services = Services.of(settings)
    if _redis_answers(services):
        raise RuntimeError(
            f"something already listens on {services.redis_host}:{services.redis_port};"
            " set DQ_REDIS_PORT"
        )
    return services


def _drawn_secret(path: Path) -> str:
    """A random secret kept in ``path`` (0600, git-ignored), drawn on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text(encoding="utf-8").strip()


def _redis_argv(services: Services) -> list[str]:
    """``redis-server <config>``: the config (0600) holds the password, which a
    command-line argument would show to every user in ``ps``."""
    redis_dir = config.load().redis_dir
    redis_dir.mkdir(parents=True, exist_ok=True)
    conf = redis_dir / "redis.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(
            "\n".join(
                [
                    f"bind {services.redis_host}",
                    f"port {services.redis_port}",
                    # A broker's queue is rebuilt by the scheduler: no snapshots to disk.
                    'save ""',
                    "appendonly no",
                    f"dir {redis_dir}",
                    f"requirepass {services.redis_password}",
                    "",
                ]
            )
        )
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    return [redis_server, str(conf)]


def _redis_answers(services: Services) -> bool:
    """Whether anything accepts connections on the broker's address."""
    import socket

    with (
        contextlib.suppress(OSError),
        socket.create_connection((services.redis_host, services.redis_port), timeout=1.0),
    ):
        return True
    return False


def _wait_for_redis(services: Services, instance: Instance, deadline: float) -> None:
    import redis

    client = redis.Redis(
        host=services.redis_host, port=services.redis_port, password=services.redis_password
    )
    while True:
        try:
            if client.ping():
                return
        except redis.RedisError:
            pass
        if _exited(instance.pids[REDIS]) or time.monotonic() > deadline:
            raise RuntimeError(
                f"Redis did not start; see {Path(instance.home) / 'logs' / 'dq-redis.log'}"
            )
        time.sleep(0.2)


def _ready(logs: Path, name: str, offset: int) -> bool:
    """Whether a Celery worker has said it is ready since ``offset`` in its log
    (Celery's "celery@<name> ready."): Airflow's health endpoint has no word on workers."""
    try:
        with open(logs / f"dq-{name}.log", "rb") as log:
            log.seek(offset)
            return f"@{name} ready.".encode() in log.read()
    except OSError:
        return False


def _exited(pid: int) -> bool:
    """Whether a child we started has exited (reaped or a zombie)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _tree(roots: list) -> list:
    """``roots`` (psutil processes already checked to be ours) and their descendants.

    A descendant is found through the live parent links of a verified process,
    so it is ours too; psutil's ``terminate``/``kill`` refuse a process whose
    PID has since been reused.
    """
    import psutil

    found = {}
    for root in roots:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in family:
            found[proc.pid] = proc
    return list(found.values())


def processes(home: Path | None = None) -> list:
    """Every live process of the instance at ``home``: its components and descendants."""
    home = Path(home or default_home()).resolve()
    live, _gone, _groups = _components(_load_state(home))
    return _tree(list(live.values()))


@dataclass
class Stopped:
    """What ``stop`` did: PIDs it ended, and recorded components it left alone (why)."""

    ended: list[int] = field(default_factory=list)
    left_alone: dict[str, str] = field(default_factory=dict)


def _killpg(pgid: int, sig: int, leader=None) -> None:
    """Signal a group from :func:`_components`, unless its ID changed hands since."""
    import psutil

    if leader.is_running() if leader is not None else not psutil.pid_exists(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def stop(home: Path | None = None, grace: float = 15.0) -> Stopped:
    """Stop every process ``start`` recorded for ``home``, and all their descendants.

    Only components that are still the processes started (see :func:`_ours`)
    are signalled, with the groups they lead; for one that exited, the workers
    it left in its group. TERM first, KILL to whatever is left after ``grace``
    seconds (idle LocalExecutor workers ignore TERM). Airflow's components and
    workers go first, the broker last: a Celery worker shutting down still talks
    to Redis.
    """
    home = Path(home or default_home()).resolve()
    state = _load_state(home)
    if not state:
        return Stopped()
    names = list(state.get("pids", {}))
    ended, left_alone = [], {}
    for phase in ([n for n in names if n != REDIS], [n for n in names if n == REDIS]):
        if not phase:
            continue
        pids = {n: state["pids"][n] for n in phase}
        live, gone, groups = _components({**state, "pids": pids})
        ended += _end(live, groups, grace)
        left_alone |= gone
    (home / STATE_FILE).unlink(missing_ok=True)
    return Stopped(sorted(ended), left_alone)


def _end(live: dict, groups: dict, grace: float) -> list[int]:
    """TERM, then KILL after ``grace`` seconds, the components ``live``, the
    ``groups`` they (or their exited predecessors) lead and every descendant;
    returns the PIDs signalled."""
    import psutil

    # Remember the whole tree now: once a parent dies its children are re-parented
    # and could not be found from it any more.
    running = {proc.pid for proc in live.values()}
    members = [m for pgid in groups if pgid not in running for m in _group(pgid)]
    procs = _tree([*live.values(), *members])
    for pgid, leader in groups.items():
        _killpg(pgid, signal.SIGTERM, leader)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _ended, alive = psutil.wait_procs(procs, timeout=grace)
    for pgid, leader in groups.items():
        _killpg(pgid, signal.SIGKILL, leader)
    for proc in alive + _tree(alive):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in procs]


def status(home: Path | None = None) -> dict:
    """What runs from ``home``: components alive (and why not), RSS (MiB) of the tree, health."""
    home = Path(home or default_home()).resolve()
    state = _load_state(home)
    if not state:
        return {"running": False, "home": str(home)}
    live, gone, _groups = _components(state)
    procs = _tree(list(live.values()))
    rss = 0
    for proc in procs:
        with contextlib.suppress(Exception):
            rss += proc.memory_info().rss
    return {
        "running": bool(live),
        "home": str(home),
        "mode": state.get("mode", "local"),
        "url": state.get("url"),
        "components": {n: n in live for n in state.get("pids", {})},
        "not_running": gone,
        "processes": len(procs),
        "rss_mib": round(rss / 2**20),
        # A stale file's port may be anyone's now: ask it only while a component is ours.
        "health": health(state.get("port", default_port())) if live else None,
    }


def command(
    action: str, home: Path | None = None, port: int | None = None, distributed: bool = False
) -> int:
    """``python -m dq airflow start [--distributed]|stop|status`` (arguments parsed
    by :mod:`dq.cli`)."""
    from dq.errors import PipelineError

    if action == "start":
        began = time.monotonic()
        try:
            instance = start(home, port, distributed=distributed)
        except (RuntimeError, subprocess.CalledProcessError, PipelineError) as exc:
            print(f"Airflow did not start: {exc}", file=sys.stderr)
            return 1
        print(f"Airflow is up after {time.monotonic() - began:.0f} s: {instance.url}/")
        if distributed:
            workers = [n for n in instance.pids if n.startswith("dq-worker-")]
            print(
                f"CeleryExecutor: workers {', '.join(workers)}; broker Redis on"
                f" {HOST}:{config.load().redis_port}; metadata in PostgreSQL"
                f" ({config.load().pg_port}, database {AIRFLOW_DATABASE}, left running by stop)"
            )
        print(f"Log in as '{instance.username}' with password '{instance.password}'")
        print(
            f"  (kept in {Path(instance.home) / PASSWORDS_FILE}; set DQ_AIRFLOW_PASSWORD "
            "to choose one)"
        )
        print("DAG jaffle_shop_dq starts paused: unpause it in the UI to run it on its schedule.")
        print("Stop with: python -m dq airflow stop")
        return 0
    if action == "stop":
        stopped = stop(home)
        for name, why in stopped.left_alone.items():
            print(f"{name}: {why}")
        ended = len(stopped.ended)
        print(f"stopped {ended} processes" if ended else "Airflow was not running")
        return 0
    print(json.dumps(status(home), indent=2))
    return 0
