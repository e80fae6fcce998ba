"""The whole pipeline per target: the bundled data and one year, SQLite vs PostgreSQL (vs Spark).

Run from the repository root (``make bench-targets``)::

    python bench/targets.py                          # bundled + 1 year, sqlite and postgres
    python bench/targets.py --years 0 --targets sqlite,postgres,spark

Each measurement is one real ``python -m dq run`` process on a fresh project copy
(nothing published before it), so every run does the same work: preflight, seed,
both GX layers, dbt build, the monitors (learning: no history yet), publish and
docs. PostgreSQL is a throw-away cluster this script starts (:mod:`dq.pgcluster`,
fsync on, outside the project) and removes. The year is generated once into
``.cache/data/years-<n>`` (``make data``). Printed: wall seconds per run and the
seconds of each step from its run record, and each target's ratio to SQLite
measured in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import ThrowawayPostgres, dataset, raw_rows  # noqa: E402
from dq.sandbox import copy_project, project_env  # noqa: E402
from dq.steps import STEPS  # noqa: E402

STEP_NAMES = [s.__name__ for s in STEPS] + ["docs"]


def _run(work: Path, label: str, data: Path | None, env: dict[str, str]) -> dict:
    root = copy_project(work / label)
    if data is not None:
        for csv in data.glob("raw_*.csv"):
            shutil.copyfile(csv, root / "seeds" / csv.name)
    rows = raw_rows(root / "seeds")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dq", "run", "--run-id", label],
        cwd=root,
        env=project_env(root, **env),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    record = json.loads((root / "warehouse" / "runs" / f"{label}.json").read_text())
    steps = {s["name"]: s["seconds"] for s in record["steps"]}
    if done.returncode != 0:
        print(f"  {label}: exit {done.returncode}\n{done.stdout[-3000:]}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    return {"wall": wall, "steps": steps, "rows": rows, "exit": done.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--years", type=float, default=1.0, help="also this many years (0: none)")
    parser.add_argument("--targets", default="sqlite,postgres", help="comma-separated")
    args = parser.parse_args(argv)
    chosen = [t.strip() for t in args.targets.split(",") if t.strip()]
    datasets = [("bundled", None)] + (
        [(f"{args.years:g} year", dataset(args.years))] if args.years else []
    )

    # A SIGTERM (kill, a CI timeout) still stops the cluster below and removes the copies.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="dq-bench-targets-"))
    pg = ThrowawayPostgres(work)
    results: dict[tuple[str, str], dict] = {}
    try:
        if "postgres" in chosen:
            print(pg.start(), flush=True)
        for name, data in datasets:
            for target in chosen:
                label = f"{target}-{name.replace(' ', '-')}"
                env = pg.env(label) if target == "postgres" else {"DQ_TARGET": target}
                print(f"{label} ...", flush=True)
                results[(name, target)] = _run(work, label, data, env)
                print(f"  {results[(name, target)]['wall']:.1f} s", flush=True)
    finally:
        if "postgres" in chosen:
            pg.remove()
        shutil.rmtree(work, ignore_errors=True)

    shown = [s for s in STEP_NAMES if any(s in r["steps"] for r in results.values())]
    print()
    print(
        f"{'data':<10}{'target':<10}{'raw rows':>10}{'wall s':>8}{'×sqlite':>9}  "
        + " ".join(f"{s[:12]:>12}" for s in shown)
    )
    for (name, target), r in results.items():
        base = results.get((name, "sqlite"))
        ratio = f"{r['wall'] / base['wall']:.2f}" if base else "-"
        steps = " ".join(f"{r['steps'].get(s, float('nan')):>12.1f}" for s in shown)
        flag = "" if r["exit"] == 0 else f"  (exit {r['exit']})"
        print(f"{name:<10}{target:<10}{r['rows']:>10,}{r['wall']:>8.1f}{ratio:>9}  {steps}{flag}")
    return 0 if all(r["exit"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
