"""``dq.airflow_local`` without Airflow: a stand-in ``airflow`` executable, real
processes, real signals. The real start/stop cycle is in test_browser_airflow.py.

What is pinned here: ``stop`` and ``status`` act on a recorded PID only while it
is still the process ``start`` started; the admin password reaches the user
once, and no state file, environment or log of an Airflow process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from dq import airflow_local

CHOSEN_PW = "Pw-not-for-logs-7f3a"

# Behaves like the airflow CLI as far as airflow_local can tell: `db migrate`
# succeeds, a component writes its environment and arguments down and runs until
# signalled; the scheduler forks a "worker" into its process group first.
FAKE_AIRFLOW = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    if sys.argv[1:3] == ["db", "migrate"]:
        print("migrated")
        sys.exit(0)
    home = os.environ["AIRFLOW_HOME"]
    with open(os.path.join(home, "fake-" + sys.argv[1] + ".json"), "w") as out:
        json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, out)
    if sys.argv[1] == "scheduler":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("component up", flush=True)
    time.sleep(600)
    """
)


def _sleeper(*args: str) -> subprocess.Popen:
    """An unrelated process in a session of its own (like a component): what a
    recycled PID might belong to. ``args`` are extra words on its command line."""
    code = "import time; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code, *args], start_new_session=True)


def _wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)
    return value


def _stale_state(home: Path, pid: int, *, create_time: float | None = None) -> None:
    """A state file from an Airflow that is long gone, whose scheduler PID is now ``pid``."""
    home.mkdir(parents=True, exist_ok=True)
    started = create_time if create_time is not None else psutil.Process(pid).create_time() - 3600
    state = {
        "home": str(home),
        "port": 1,
        "url": "http://127.0.0.1:1",
        "username": "admin",
        "pids": {"scheduler": pid},
        "identities": {
            "scheduler": {
                "pid": pid,
                "create_time": started,
                "cmdline": ["/venv/bin/python", "/venv/bin/airflow", "scheduler"],
            }
        },
    }
    (home / airflow_local.STATE_FILE).write_text(json.dumps(state), encoding="utf-8")


@pytest.fixture
def sleeper():
    proc = _sleeper()
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    ("words", "same_start_time"),
    [
        ((), False),
        # Another Airflow's scheduler now has the PID: it started at another time.
        (("airflow", "scheduler"), False),
        # Contrived: started in the same second, but it is not an airflow scheduler.
        ((), True),
    ],
    ids=["other-program", "other-airflow", "same-start-time"],
)
def test_stale_state_file_leaves_an_unrelated_process_alone(
    tmp_path, capsys, words, same_start_time
):
    other = _sleeper(*words)
    try:
        home = tmp_path / "home"
        created = psutil.Process(other.pid).create_time()
        _stale_state(home, other.pid, create_time=created if same_start_time else None)

        report = airflow_local.status(home)
        assert report["running"] is False
        assert report["components"] == {"scheduler": False}
        assert "is now another process" in report["not_running"]["scheduler"]
        assert report["processes"] == 0 and report["health"] is None

        assert airflow_local.command("stop", home) == 0
        out = capsys.readouterr().out
        assert f"scheduler: PID {other.pid} is now another process" in out
        assert "Airflow was not running" in out
        assert other.poll() is None, "stop signalled a process it did not start"
        assert not (home / airflow_local.STATE_FILE).exists()
    finally:
        other.kill()
        other.wait()


class _Reused:
    """A recorded leader whose PID now runs something else."""

    def is_running(self) -> bool:
        return False


def test_a_group_is_not_signalled_once_its_id_changed_hands(sleeper):
    """Between TERM and KILL a leader may exit and its PID be reused."""
    import signal

    airflow_local._killpg(sleeper.pid, signal.SIGKILL, _Reused())
    airflow_local._killpg(sleeper.pid, signal.SIGKILL, None)  # "was free", but is taken now
    with pytest.raises(subprocess.TimeoutExpired):  # a KILL would end it within milliseconds
        sleeper.wait(0.5)
    airflow_local._killpg(sleeper.pid, signal.SIGKILL, psutil.Process(sleeper.pid))
    assert sleeper.wait(5) == -signal.SIGKILL


def test_a_state_file_without_identities_is_not_trusted(tmp_path, sleeper):
    home = tmp_path / "home"
    home.mkdir()
    state = {"home": str(home), "port": 1, "pids": {"scheduler": sleeper.pid}}
    (home / airflow_local.STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    assert airflow_local.status(home)["components"] == {"scheduler": False}
    assert airflow_local.stop(home).left_alone["scheduler"].startswith("no identity recorded")
    assert sleeper.poll() is None


@pytest.fixture
def fake_airflow(tmp_path, monkeypatch):
    """``start`` runs the stand-in; health is good once all three components run."""
    script = tmp_path / "bin" / "airflow"
    script.parent.mkdir()
    # Run by this interpreter; argv reads ".../bin/airflow <component>" like the real one's.
    script.write_text(f"#!{sys.executable}\n{FAKE_AIRFLOW}", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setattr(airflow_local, "_airflow_bin", lambda: str(script))
    home = tmp_path / "home"

    def health(port, timeout=2.0):
        up = all((home / f"fake-{name}.json").exists() for name in airflow_local.COMPONENTS)
        ok = {"status": "healthy"}
        return {"metadatabase": ok, "scheduler": ok, "dag_processor": ok} if up else None

    monkeypatch.setattr(airflow_local, "health", health)
    monkeypatch.setenv("DQ_AIRFLOW_PASSWORD", CHOSEN_PW)
    yield home
    airflow_local.stop(home, grace=5)


def test_start_records_identities_and_stop_ends_the_whole_tree(fake_airflow, capsys):
    home = fake_airflow
    assert airflow_local.command("start", home, 1) == 0
    out = capsys.readouterr().out
    # The one intended place for the password: what start prints to its user.
    assert out.count(CHOSEN_PW) == 1 and f"password '{CHOSEN_PW}'" in out

    state_text = (home / airflow_local.STATE_FILE).read_text(encoding="utf-8")
    assert CHOSEN_PW not in state_text
    state = json.loads(state_text)
    for name in airflow_local.COMPONENTS:
        recorded = state["identities"][name]
        proc = psutil.Process(recorded["pid"])
        assert recorded["create_time"] == proc.create_time()
        assert proc.cmdline()[1:] == recorded["cmdline"]  # run as [python, *recorded]
        fake = json.loads((home / f"fake-{name}.json").read_text(encoding="utf-8"))
        # Airflow reads the password from its passwords file, nothing needs it in the env.
        assert "DQ_AIRFLOW_PASSWORD" not in fake["env"]
        assert CHOSEN_PW not in json.dumps(fake["env"])
    scheduler = json.loads((home / "fake-scheduler.json").read_text(encoding="utf-8"))
    assert scheduler["argv"] == ["scheduler", "--skip-serve-logs"]
    passwords = json.loads((home / airflow_local.PASSWORDS_FILE).read_text(encoding="utf-8"))
    assert passwords == {"admin": CHOSEN_PW}
    for log in (home / "logs").iterdir():
        assert CHOSEN_PW not in log.read_text(encoding="utf-8"), log

    report = airflow_local.status(home)
    assert report["running"] is True
    assert report["components"] == dict.fromkeys(airflow_local.COMPONENTS, True)
    tree = airflow_local.processes(home)
    worker = _wait_for(lambda: psutil.Process(state["pids"]["scheduler"]).children())[0]
    tree = airflow_local.processes(home)
    assert len(tree) == 4 and worker.pid in {p.pid for p in tree}

    assert airflow_local.command("stop", home) == 0
    assert "stopped 4 processes" in capsys.readouterr().out
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert airflow_local.status(home) == {"running": False, "home": str(home)}


def test_stop_ends_the_workers_a_crashed_component_left(fake_airflow, capsys):
    """The scheduler died (PID free); its worker still runs in its process group."""
    home = fake_airflow
    instance = airflow_local.start(home, 1)
    scheduler = psutil.Process(instance.pids["scheduler"])
    worker = _wait_for(scheduler.children)[0]
    scheduler.kill()
    scheduler.wait(5)  # reaped: the PID is free, the worker keeps the group ID
    assert worker.is_running()

    report = airflow_local.status(home)
    assert report["components"]["scheduler"] is False
    assert report["not_running"]["scheduler"].startswith("exited")

    stopped = airflow_local.stop(home, grace=5)
    assert worker.pid in stopped.ended
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


CELERY_TITLE = "[celeryd: celery@{}:MainProcess] -active- (celery worker --skip-serve-logs)"


@pytest.mark.parametrize(
    ("name", "cmdline", "ours"),
    [
        # A Celery worker as started, and as Celery renames itself (setproctitle pads).
        (
            "dq-worker-1",
            ["/v/bin/python", "/v/bin/airflow", "celery", "worker", "-H", "dq-worker-1"],
            True,
        ),
        ("dq-worker-1", [CELERY_TITLE.format("dq-worker-1"), "", ""], True),
        ("dq-worker-1", [CELERY_TITLE.format("dq-worker-2"), "", ""], False),
        ("dq-worker-1", [CELERY_TITLE.format("dq-worker-10"), "", ""], False),
        ("dq-worker-1", ["python", "-c", "pass", "dq-worker-1"], False),
        ("redis", ["/usr/bin/redis-server 127.0.0.1:56379"], True),
        ("redis", ["/usr/bin/redis-server", "/p/.services/redis/redis.conf"], True),
        ("redis", ["/usr/bin/memcached", "-p", "56379"], False),
    ],
)
def test_workers_and_redis_are_recognised_by_their_command_lines(name, cmdline, ours):
    """What ``stop`` checks before it signals a recorded PID of the distributed mode."""
    assert airflow_local._runs_component(name, cmdline) is ours
