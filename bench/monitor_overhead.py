"""What the anomaly monitors cost: one day's run on a year of data, monitors off vs on.

Run from the repository root (``make bench-monitors``)::

    python bench/monitor_overhead.py                 # one year, seed 42
    python bench/monitor_overhead.py --days 120      # a quicker look

The script generates the simulation once (:func:`dq.data.generate`, cached in
``.cache/monitor-bench/``), publishes every day but the last in a throw-away
project copy (so the monitors have a published warehouse and history to compare
with, as on any ordinary day), keeps that published state, and then runs the
last day twice from that same state: with ``DQ_MONITORS=off`` and with the
monitors on (``docs/quality-eval.md``). It prints each run's wall time, the
``monitor`` step's seconds from its run record, and the ratio on/off. Until the
pipeline has a ``monitor`` step both runs do the same work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dq import quality_eval as qe  # noqa: E402
from dq import scenarios as sc  # noqa: E402


def _step_seconds(record: dict | None, name: str) -> float | None:
    step = next((s for s in (record or {}).get("steps", []) if s["name"] == name), None)
    return step["seconds"] if step else None


def main(argv: list[str] | None = None) -> int:
    """Publish all days but the last, then time the last day with monitors off and on."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--days", type=int, default=365, help="simulated days (default 365)")
    parser.add_argument("--seed", type=int, default=42, help="jafgen seed (default 42)")
    parser.add_argument("--keep", action="store_true", help="keep the project copy")
    args = parser.parse_args(argv)

    sim = sc.Simulation(args.seed, args.days)
    print(f"simulation {sim.name} (cached in .cache/monitor-bench) ...", flush=True)
    sim_dir = qe.ensure_simulation(ROOT / ".cache" / "monitor-bench", sim)
    last = sc.order_days(sim_dir)[-1]
    yesterday = (dt.date.fromisoformat(last) - dt.timedelta(days=1)).isoformat()

    work = Path(tempfile.mkdtemp(prefix="dq-monitor-bench-"))
    try:
        base = sc.Base("bench", sim, yesterday)
        print(f"publishing up to {yesterday} (warm-up, not timed) ...", flush=True)
        root, saved = qe.publish_base(base, sim_dir, work)
        rows = sc.snapshot(sim_dir, work / "today", last)["raw_orders"]
        qe.install(work / "today", root)
        results = {}
        for mode, env in (("off", {"DQ_MONITORS": "off"}), ("on", {})):
            qe.restore(root, saved)
            started = time.perf_counter()
            code, record = qe.run_pipeline(root, f"bench-monitors-{mode}", work / "logs", **env)
            wall = time.perf_counter() - started
            if code != 0:
                print(
                    f"the run with monitors {mode} did not publish (exit {code});"
                    f" log: {work / 'logs'}/bench-monitors-{mode}.log",
                    file=sys.stderr,
                )
                args.keep = True
                return 1
            results[mode] = (wall, _step_seconds(record, "monitor"))
            print(f"  monitors {mode}: {wall:.1f} s", flush=True)
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nOne day's run on {sim.name} ({rows:,} orders), {last}:")
    print(f"  {'monitors':<10}{'wall s':>9}{'monitor step s':>17}")
    for mode, (wall, step) in results.items():
        shown = f"{step:.2f}" if step is not None else "no step"
        print(f"  {mode:<10}{wall:>9.1f}{shown:>17}")
    print(f"  ratio on/off (wall): {results['on'][0] / results['off'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
