"""The run record: one JSON file per run in ``warehouse/runs/``.

It is how the steps of one run talk to each other when they run in separate
processes (Airflow tasks), what the summary, the docs server and the
notifications read, and the evidence of what a run audited (the fingerprint
each gate recorded). ``latest.json`` is a copy of the record saved last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dq.config import Settings
from dq.errors import STATUS, BadInput

#: What a run id may look like: it names a folder and a file, so no separators,
#: no leading dot, nothing a shell or a path would read specially.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def new_run_id(now: dt.datetime | None = None) -> str:
    """Time-based, sortable, unique enough for one warehouse: 20261126T120501Z-4f2a."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(2).hex()


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe name, else raise :class:`BadInput`."""
    if not RUN_ID.fullmatch(run_id or ""):
        raise BadInput(
            f"invalid run id {run_id!r}: use 1-100 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return run_id


def process_identity(pid: int | None = None) -> dict:
    """Who is working on a run: enough to tell later whether that process still lives."""
    import psutil

    pid = pid or os.getpid()
    return {"pid": pid, "create_time": psutil.Process(pid).create_time(), "host": _host()}


def _host() -> str:
    return socket.gethostname()


def is_alive(identity: dict | None) -> bool:
    """Whether the process an identity names is still that process (same start time)."""
    import psutil

    if not identity or identity.get("host") != _host():
        return bool(identity)  # another machine's process: assume it lives
    try:
        proc = psutil.Process(int(identity["pid"]))
        return abs(proc.create_time() - float(identity["create_time"])) < 1.0 and (
            proc.status() != psutil.STATUS_ZOMBIE
        )
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def now_iso(timespec: str = "seconds") -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec=timespec)


@dataclass
class StepRecord:
    """How one step went."""

    name: str
    status: str  # running | ok | failed | skipped | terminated
    seconds: float
    message: str = ""
    exit_code: int = 0  # what a failure of this step means for the run
    detail: dict = field(default_factory=dict)
    #: the process's peak resident memory so far (MB) when the step ended: where it
    #: jumps is the step that needed the memory (each Airflow task is its own process)
    peak_rss_mb: float | None = None


@dataclass
class Run:
    """One pipeline run: its id, settings and the record every step appends to."""

    settings: Settings
    run_id: str
    steps: list[StepRecord] = field(default_factory=list)
    status: str = "running"
    exit_code: int | None = None
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    origin: str = "cli"  # cli | airflow
    airflow_run_id: str | None = None
    #: the process working on the run now (each Airflow task is another one)
    owner: dict = field(default_factory=dict)
    #: deliberate acceptances of a gate's finding: what, why, who, when
    acceptances: list[dict] = field(default_factory=list)

    @property
    def build(self):
        return self.settings.build(self.run_id)

    @property
    def target(self):
        """The run's :class:`dq.targets.Target` (its settings' target: see from_dict)."""
        from dq import targets

        return targets.of(self.settings)

    @property
    def record_path(self) -> Path:
        return self.settings.runs_dir / f"{self.run_id}.json"

    def step(self, name: str) -> StepRecord | None:
        return next((s for s in self.steps if s.name == name), None)

    def accepted(self, what: str) -> dict | None:
        return next((a for a in self.acceptances if a["what"] == what), None)

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "origin": self.origin,
            "airflow_run_id": self.airflow_run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "exit_code": self.exit_code,
            "owner": self.owner,
            "acceptances": self.acceptances,
            "target": self.settings.target,
            "steps": [asdict(s) for s in self.steps],
            "build_dir": str(self.build.root),
            "published_db": self.target.where(),
            "data_docs": str(self.settings.data_docs_dir / "index.html"),
            "dbt_docs": str(self.settings.dbt_docs_dir / "static_index.html"),
        }

    def save(self) -> None:
        """Write the record atomically, then ``latest.json`` (each through its own temp file)."""
        runs = self.settings.runs_dir
        runs.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2)
        for target in (self.record_path, runs / "latest.json"):
            tmp = runs / f".{target.name}.{os.getpid()}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)

    def close(self, exit_code: int) -> None:
        """Set the outcome and save."""
        self.exit_code = exit_code
        self.status = STATUS.get(exit_code, "error")
        self.finished_at = now_iso()
        self.save()

    @classmethod
    def from_dict(cls, settings: Settings, data: dict) -> Run:
        # A run keeps the target it began with, whatever the process that
        # continues it (another Airflow task) has configured.
        recorded = data.get("target") or settings.target
        if recorded != settings.target:
            settings = dataclasses.replace(settings, target=recorded)
        run = cls(settings=settings, run_id=data["run_id"])
        for key in (
            "status",
            "exit_code",
            "started_at",
            "finished_at",
            "origin",
            "airflow_run_id",
            "owner",
            "acceptances",
        ):
            if key in data:
                setattr(run, key, data[key])
        run.steps = [StepRecord(**s) for s in data.get("steps", [])]
        return run

    @classmethod
    def load(cls, settings: Settings, run_id: str) -> Run:
        path = settings.runs_dir / f"{check_run_id(run_id)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInput(f"no run record {path}: was the run begun?") from None
        return cls.from_dict(settings, data)


def last_published(settings: Settings) -> Run | None:
    """The run whose publish is in force: of the records whose publish step
    passed, the one that published last (None when no run ever published).

    Its publish step's ``fingerprint`` is the SHA-256 of the bytes the gates
    audited and publish copied; the published warehouse must still have it.
    """
    found: tuple[tuple[str, str], Run] | None = None
    for run in _records(settings):
        step = run.step("publish")
        if step is None or step.status != "ok" or not step.detail.get("fingerprint"):
            continue
        # published_at is recorded since the model stage; older records: when the run ended.
        when = step.detail.get("published_at") or run.finished_at or run.started_at or ""
        if found is None or (when, run.run_id) > found[0]:
            found = ((when, run.run_id), run)
    return found[1] if found else None


def _records(settings: Settings) -> Iterator[Run]:
    """Every readable run record, by run id (``latest.json`` is a copy, skipped)."""
    for path in sorted(settings.runs_dir.glob("*.json")):
        if path.name == "latest.json":
            continue
        try:
            yield Run.from_dict(settings, json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            continue


def abandoned(run: Run) -> bool:
    """A record that says "running" although nobody works on it any more:
    its process was killed (SIGKILL, power loss) mid-step, or a command-line
    run's process is gone. An Airflow run between two tasks is not abandoned."""
    if run.status != "running" or is_alive(run.owner):
        return False
    return run.origin == "cli" or any(s.status == "running" for s in run.steps)


def mark_abandoned(settings: Settings) -> list[str]:
    """Close every abandoned record as such; returns their run ids."""
    found = []
    for run in _records(settings):
        if abandoned(run):
            for step in run.steps:
                if step.status == "running":
                    step.status = "terminated"
                    step.message = "the process running this step disappeared"
            run.status = "abandoned"
            run.finished_at = now_iso()
            text = json.dumps(run.to_dict(), indent=2)
            tmp = run.record_path.with_name(f".{run.record_path.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, run.record_path)
            found.append(run.run_id)
    return found
