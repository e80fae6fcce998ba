"""``make quality-eval``: the silent-defect corpus and the clean next-day snapshots
of :mod:`dq.scenarios`, each through the real pipeline, classified from its record.

For each base (a simulation and the last day published "yesterday") the eval
builds a throw-away project copy (:func:`dq.sandbox.copy_project`), runs
``python -m dq run`` on yesterday's snapshot (it must publish, or the eval stops
with exit 2), keeps that published state (the whole ``warehouse/`` folder, the
monitors' ``warehouse/history/`` included), and then, for each scenario of the
base, restores it and runs today's folder. The result of a defect scenario:

- ``caught``: the ``monitor`` step failed with ``stop`` anomalies;
- ``warned``: the run published with ``warn`` anomalies;
- ``missed``: the run published and no monitor saw anything;
- ``caught by publish``: the publish step's row-count gate stopped it (a gate
  that exists without monitors);
- ``corpus bug``: another step failed: a row rule or a layer gate saw the defect,
  so the defect was not silent (every row must be valid) and the corpus is wrong;
- ``error``: the run could not run (exit 2, 3, a crash).

A clean scenario is ``ok`` when it published with no anomaly; any anomaly, stop
or warn, is a false alarm. The table goes to stdout, the results to
``warehouse/quality-eval/results.json``. Exit 1 when a kind is missed (or a
corpus bug, an error) or a clean snapshot raised a false alarm, else 0.

    python -m dq.quality_eval                  # everything (29 runs, ~35 min here)
    python -m dq.quality_eval --list
    python -m dq.quality_eval --only clean_sunday year_typo --keep
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dq import config
from dq import data as data_mod
from dq import scenarios as sc
from dq.sandbox import copy_project, project_env

#: A whole pipeline run never takes this long here; a hung one fails the eval.
RUN_TIMEOUT = 1800

#: Results that mean a defect was detected (the goal: every kind one of these).
DETECTED = ("caught", "warned", "caught by publish")


class EvalError(Exception):
    """The eval itself cannot go on (yesterday's run did not publish, say)."""


@dataclass
class Outcome:
    """What one scenario's run did, read from its run record."""

    scenario: str
    kind: str  # the defect, or "clean"
    family: str
    base: str
    new_days: list[str]
    result: (
        str  # caught | warned | missed | caught by publish | corpus bug | error | ok | false alarm
    )
    run_id: str = ""
    exit_code: int | None = None
    failed_step: str = ""
    message: str = ""
    checks: int | None = None
    anomalies: list[dict] = field(default_factory=list)
    changed: str = ""  # the defect's own account of what it changed
    seconds: float = 0.0

    @property
    def lines(self) -> list[str]:
        """The anomalies' lines, ``stop`` first, each with its severity."""
        ordered = sorted(self.anomalies, key=lambda a: a.get("severity") != "stop")
        return [f"[{a.get('severity', '?')}] {a.get('line', '')}" for a in ordered]


# ------------------------------------------------------------------ data and runs


def ensure_simulation(cache_dir: Path, sim: sc.Simulation) -> Path:
    """The raw folder of ``sim``, generated once (:func:`dq.data.generate`) and cached."""
    out = Path(cache_dir) / sim.name
    if (out / "counts.json").exists():
        return out
    tmp = out.with_name(f".{sim.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = data_mod.generate(tmp, years=sim.years, seed=sim.seed)
    (tmp / "counts.json").write_text(json.dumps(counts, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def install(raw_dir: Path, root: Path) -> None:
    """Put a raw folder's CSVs into the project copy's ``seeds/`` (declarations stay)."""
    for name in data_mod.TABLES:
        shutil.copyfile(Path(raw_dir) / f"raw_{name}.csv", root / "seeds" / f"raw_{name}.csv")


def run_pipeline(root: Path, run_id: str, log_dir: Path, **env: str) -> tuple[int, dict | None]:
    """``python -m dq run --run-id run_id`` in a new process on the copy at ``root``,
    with this repository's ``dq`` first on the path; output into ``log_dir``.
    Returns the exit status and the run record (``None`` when there is none)."""
    path = os.pathsep.join(p for p in (str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{run_id}.log", "w", encoding="utf-8") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "dq", "run", "--run-id", run_id],
            cwd=root,
            env=project_env(root, PYTHONPATH=path, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    record = config.for_root(root).runs_dir / f"{run_id}.json"
    return proc.returncode, json.loads(record.read_text()) if record.exists() else None


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def classify(record: dict | None, clean: bool) -> dict:
    """The result of a run (see the module's docstring) with the failed step, its
    message, the monitor's number of checks and its anomalies."""
    if record is None:
        return {"result": "error", "message": "no run record"}
    steps = record.get("steps", [])
    monitor = next((s for s in steps if s["name"] == "monitor"), None)
    detail = (monitor or {}).get("detail", {})
    anomalies = list(detail.get("anomalies", []))
    out = {"exit_code": record.get("exit_code"), "anomalies": anomalies, "checks": None}
    if monitor is not None:
        out["checks"] = detail.get("checks")
    failed = next((s for s in steps if s["status"] in ("failed", "terminated")), None)
    if record.get("exit_code") == 0:
        if clean:
            out["result"] = "false alarm" if anomalies else "ok"
        elif anomalies:
            out["result"] = "warned"
        else:
            out["result"] = "missed"
            out["message"] = "" if monitor else "no monitor step in this pipeline"
        return out
    out["failed_step"] = failed["name"] if failed else ""
    out["message"] = _first_line(failed["message"]) if failed else f"status {record.get('status')}"
    if failed and failed["name"] == "publish" and failed.get("exit_code") == 1:
        out["message"] = (
            "; ".join(failed.get("detail", {}).get("row_count_changes", [])) or (out["message"])
        )
    stops = any(a.get("severity") == "stop" for a in anomalies)
    if record.get("exit_code") != 1 or failed is None:
        out["result"] = "error"
    elif failed["name"] == "monitor":
        out["result"] = ("false alarm" if clean else "caught") if stops else "error"
    elif failed["name"] == "publish":
        out["result"] = "false alarm" if clean else "caught by publish"
    else:
        out["result"] = "corpus bug"
    return out


# ------------------------------------------------------------------ the eval


def _bases(scenarios: Iterable[sc.Scenario]) -> dict[sc.Base, list[sc.Scenario]]:
    by_base: dict[sc.Base, list[sc.Scenario]] = {}
    for scenario in scenarios:
        by_base.setdefault(scenario.base, []).append(scenario)
    return by_base


def publish_base(base: sc.Base, sim_dir: Path, work: Path) -> tuple[Path, Path]:
    """A project copy with yesterday's snapshot of ``base`` published, and a copy of
    that published state (its ``warehouse/`` folder) to restore before each run."""
    root = copy_project(work / base.name / "project")
    sc.snapshot(sim_dir, work / base.name / "yesterday", base.published)
    install(work / base.name / "yesterday", root)
    run_id = f"qe-{base.name}-yesterday"
    code, record = run_pipeline(root, run_id, work / "logs")
    if code != 0 or not record:
        failed = next((s for s in (record or {}).get("steps", []) if s["status"] != "ok"), {})
        raise EvalError(
            f"yesterday's run of {base.name} ({base.sim.name} up to {base.published}) did not"
            f" publish: exit {code}, step {failed.get('name', '?')}:"
            f" {_first_line(failed.get('message', ''))} (log: {work / 'logs' / run_id}.log)"
        )
    saved = work / base.name / "published-warehouse"
    shutil.copytree(root / "warehouse", saved, symlinks=True)
    return root, saved


def restore(root: Path, saved: Path) -> None:
    """Put the published state back: the warehouse folder exactly as saved."""
    shutil.rmtree(root / "warehouse")
    shutil.copytree(saved, root / "warehouse", symlinks=True)


def run_scenario(scenario: sc.Scenario, root: Path, sim_dir: Path, work: Path) -> Outcome:
    """Today's run of one scenario on a restored base, classified."""
    today = work / scenario.base.name / scenario.name
    changed = sc.build_today(scenario, sim_dir, today, work)
    install(today, root)
    run_id = f"qe-{scenario.name}"
    started = time.perf_counter()
    _, record = run_pipeline(root, run_id, work / "logs")
    seconds = round(time.perf_counter() - started, 1)
    shutil.rmtree(today)
    if record:  # the next restore removes it from the warehouse: keep a copy with the logs
        (work / "records").mkdir(exist_ok=True)
        (work / "records" / f"{run_id}.json").write_text(json.dumps(record, indent=2))
    return Outcome(
        scenario=scenario.name,
        kind=scenario.defect or "clean",
        family=scenario.family,
        base=scenario.base.name,
        new_days=scenario.new_days,
        run_id=run_id,
        changed=changed,
        seconds=seconds,
        **classify(record, clean=scenario.defect is None),
    )


def _say(line: str) -> None:
    print(line, flush=True)


def evaluate(
    scenarios: Iterable[sc.Scenario],
    work: Path,
    cache_dir: Path,
    say: Callable[[str], None] = _say,
) -> list[Outcome]:
    """Run ``scenarios`` base by base (one pipeline at a time) in ``work``."""
    outcomes = []
    for base, todo in _bases(scenarios).items():
        sim_dir = ensure_simulation(cache_dir, base.sim)
        say(f"{base.name}: publishing {base.sim.name} up to {base.published} ...")
        root, saved = publish_base(base, sim_dir, work)
        for scenario in todo:
            restore(root, saved)
            outcome = run_scenario(scenario, root, sim_dir, work)
            say(f"  {scenario.name:<24} {outcome.result:<18} {outcome.seconds:6.1f} s")
            outcomes.append(outcome)
    return outcomes


# ------------------------------------------------------------------ the report


def _weekday(day: str) -> str:
    return dt.date.fromisoformat(day).strftime("%a")


def report(outcomes: list[Outcome]) -> str:
    """The readable table: defects (kind, family, result, first two anomaly lines)
    then clean snapshots (new days, false alarms)."""
    lines = []
    defects = [o for o in outcomes if o.kind != "clean"]
    clean = [o for o in outcomes if o.kind == "clean"]
    if defects:
        lines += ["Silent defects", f"  {'kind':<24}{'family':<14}{'result':<19}anomalies / why"]
        for o in defects:
            why = o.lines[:2] or [
                f"{o.failed_step}: {o.message}" if o.failed_step else o.message or "-"
            ]
            lines.append(f"  {o.kind:<24}{o.family:<14}{o.result:<19}{why[0]}")
            lines += [f"  {'':<57}{more}" for more in why[1:]]
        counts = {
            r: sum(o.result == r for o in defects) for r in dict.fromkeys(o.result for o in defects)
        }
        lines.append("  " + ", ".join(f"{n} {r}" for r, n in counts.items()))
    if clean:
        lines += ["", "Clean next-day snapshots", f"  {'snapshot':<24}{'new days':<34}false alarms"]
        for o in clean:
            days = ", ".join(f"{d} {_weekday(d)}" for d in o.new_days)
            alarms = len(o.anomalies) if o.result in ("ok", "false alarm") else o.result
            if o.result == "false alarm" and not o.anomalies:
                alarms = f"failed in {o.failed_step}"
            lines.append(f"  {o.scenario:<24}{days:<34}{alarms}")
            shown = o.lines or ([f"{o.failed_step}: {o.message}"] if o.result != "ok" else [])
            lines += [f"  {'':<24}{line}" for line in shown]
        lines.append(f"  {sum(o.result != 'ok' for o in clean)} of {len(clean)} with false alarms")
    return "\n".join(lines)


def eval_failed(outcomes: list[Outcome]) -> bool:
    """Whether the eval fails: a defect not detected, or a clean snapshot not clean."""
    return any(
        o.result not in DETECTED if o.kind != "clean" else o.result != "ok" for o in outcomes
    )


def write_results(outcomes: list[Outcome], path: Path, seconds: float) -> None:
    """The outcomes as JSON (``results.json``), with the lines each anomaly printed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "failed": eval_failed(outcomes),
        "outcomes": [asdict(o) for o in outcomes],
    }
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def _list() -> str:
    lines = []
    for s in sc.SCENARIOS.values():
        what = s.note or (sc.DEFECTS[s.defect].doc if s.defect else "")
        lines.append(f"{s.name:<24}{s.family:<14}{s.base.name:<26}{s.today}  {what}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m dq.quality_eval [--only NAME...] [--list] [--keep]``."""
    parser = argparse.ArgumentParser(
        prog="python -m dq.quality_eval", description=__doc__.split("\n", maxsplit=1)[0]
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these scenarios")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project copies")
    parser.add_argument("--out", type=Path, help="results folder (default: warehouse/quality-eval)")
    args = parser.parse_args(argv)
    if args.list:
        print(_list())
        return 0
    unknown = sorted(set(args.only or ()) - set(sc.SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)} (see --list)")
    chosen = [s for name, s in sc.SCENARIOS.items() if not args.only or name in args.only]
    out_dir = args.out or config.load().warehouse_dir / "quality-eval"
    work = Path(tempfile.mkdtemp(prefix="dq-quality-eval-"))
    started = time.perf_counter()
    try:
        outcomes = evaluate(chosen, work, out_dir / "cache")
    except EvalError as exc:
        print(f"quality-eval: {exc}\nkept for inspection: {work}", file=sys.stderr)
        return 2
    if args.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    write_results(outcomes, out_dir / "results.json", seconds)
    print()
    print(report(outcomes))
    print(f"\n{len(outcomes)} scenarios in {seconds:.0f} s; results: {out_dir / 'results.json'}")
    return 1 if eval_failed(outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
