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

We do not use ``airflow standalone``: it starts 32 workers by default and a
SIGTERM to it orphans its children. Here every PID (and process group) goes to
``$AIRFLOW_HOME/dq-airflow.json``, and ``stop`` ends the groups plus any
descendant that left them, so nothing stays behind.
"""

from __future__ import annotations

import contextlib
import json
import os
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

from dq import config

DEFAULT_PORT = 8080
HOST = "127.0.0.1"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
STATE_FILE = "dq-airflow.json"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


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

    def save(self) -> None:
        path = Path(self.home) / STATE_FILE
        # The password is already on disk in the passwords file; keep it out of this one.
        data = {k: v for k, v in asdict(self).items() if k != "password"}
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")


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


def airflow_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Airflow process of this instance runs with."""
    env = dict(os.environ)
    bin_dir = str(Path(_airflow_bin()).parent)
    base_url = f"http://{HOST}:{port}"
    user = env.get("DQ_AIRFLOW_USER", "admin")
    env.update(
        {
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(config.PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            # Task processes reach the Execution API through this URL; its default
            # (localhost:8080) would be wrong for any other port.
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            # Look for DAG file changes every 30 s instead of 5 minutes: this is a dev box.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": env.get(
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "30"
            ),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": env.get(
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True"
            ),
        }
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


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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
) -> Instance:
    """Start Airflow (migrate, then api-server + scheduler + dag-processor) and wait
    until its health endpoint reports every component healthy.

    Raises RuntimeError (after stopping what it started) when that does not
    happen within ``timeout`` seconds or a component exits.
    """
    home = Path(home or default_home()).resolve()
    port = port or default_port()
    home.mkdir(parents=True, exist_ok=True)
    state = _load_state(home)
    if state and any(_alive(pid) for pid in state.get("pids", {}).values()):
        raise RuntimeError(f"Airflow already running from {home} (stop it first)")
    if health(port, timeout=1.0) is not None:
        raise RuntimeError(f"something already answers on {HOST}:{port}; set DQ_AIRFLOW_PORT")
    env = airflow_env(home, port, extra_env)
    username = env.get("DQ_AIRFLOW_USER", "admin")
    password = ensure_password(home, username, env.get("DQ_AIRFLOW_PASSWORD") or None)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    started = time.monotonic()
    with open(logs / "dq-db-migrate.log", "wb") as out:
        subprocess.run(
            [_airflow_bin(), "db", "migrate"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            cwd=home,
        )
    instance = Instance(
        home=str(home),
        port=port,
        url=f"http://{HOST}:{port}",
        username=username,
        password=password,
        started_at=time.time(),
    )
    try:
        for name in COMPONENTS:
            with open(logs / f"dq-{name}.log", "ab") as out:
                # A session of its own per component: stop() can signal the whole
                # process group, workers included, without touching our own.
                process = subprocess.Popen(
                    [_airflow_bin(), name],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=home,
                    start_new_session=True,
                )
            instance.pids[name] = process.pid
            instance.save()
        deadline = started + timeout
        while not _healthy(health(port)):
            dead = [n for n, pid in instance.pids.items() if not _alive(pid)]
            if dead:
                raise RuntimeError(f"Airflow {', '.join(dead)} exited; see {logs}/dq-*.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow not healthy after {timeout:.0f} s; see {logs}")
            time.sleep(1.0)
    except BaseException:
        stop(home)
        raise
    return instance


def _tree(pids: list[int]) -> list:
    import psutil

    found = {}
    for pid in pids:
        try:
            parent = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        for proc in [parent, *parent.children(recursive=True)]:
            found[proc.pid] = proc
    return list(found.values())


def stop(home: Path | None = None, grace: float = 15.0) -> list[int]:
    """Stop every process ``start`` recorded for ``home``, and all their descendants.

    TERM to each process group first, KILL to whatever is left after ``grace``
    seconds (idle LocalExecutor workers ignore TERM). Returns the PIDs ended.
    """
    import psutil

    home = Path(home or default_home()).resolve()
    state = _load_state(home)
    if not state:
        return []
    roots = list(state.get("pids", {}).values())
    # Remember the whole tree now: once a parent dies its children are re-parented
    # and could not be found from it any more.
    procs = _tree(roots)
    for pid in roots:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for pid in roots:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for proc in alive + _tree([p.pid for p in alive]):
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    (home / STATE_FILE).unlink(missing_ok=True)
    return sorted(p.pid for p in procs)


def status(home: Path | None = None) -> dict:
    """What runs from ``home``: component PIDs alive, RSS (MiB) of the whole tree, health."""
    home = Path(home or default_home()).resolve()
    state = _load_state(home)
    if not state:
        return {"running": False, "home": str(home)}
    pids = state.get("pids", {})
    procs = _tree(list(pids.values()))
    rss = 0
    for proc in procs:
        with contextlib.suppress(Exception):
            rss += proc.memory_info().rss
    return {
        "running": any(_alive(p) for p in pids.values()),
        "home": str(home),
        "url": state.get("url"),
        "components": {n: _alive(p) for n, p in pids.items()},
        "processes": len(procs),
        "rss_mib": round(rss / 2**20),
        "health": health(state.get("port", default_port())),
    }


def command(action: str, home: Path | None = None, port: int | None = None) -> int:
    """``python -m dq airflow start|stop|status`` (arguments parsed by :mod:`dq.cli`)."""
    if action == "start":
        began = time.monotonic()
        try:
            instance = start(home, port)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"Airflow did not start: {exc}", file=sys.stderr)
            return 1
        print(f"Airflow is up after {time.monotonic() - began:.0f} s: {instance.url}/")
        print(f"Log in as '{instance.username}' with password '{instance.password}'")
        print(
            f"  (kept in {Path(instance.home) / PASSWORDS_FILE}; set DQ_AIRFLOW_PASSWORD "
            "to choose one)"
        )
        print("DAG jaffle_shop_dq starts paused: unpause it in the UI to run it on its schedule.")
        print("Stop with: python -m dq airflow stop")
        return 0
    if action == "stop":
        ended = stop(home)
        print(f"stopped {len(ended)} processes" if ended else "Airflow was not running")
        return 0
    print(json.dumps(status(home), indent=2))
    return 0
