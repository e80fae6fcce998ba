"""Backtest the anomaly monitors' ranges on a published warehouse: every day of
every per-day series is checked against the ``training_days`` before it, as a
daily run would have checked it, and the alarms are counted.

On clean simulated data every alarm is a false alarm, so this shows what the
defaults cost in noise over a long stretch (the corpus in ``make quality-eval``
shows what they catch). It uses the monitors' own measuring and range code.

    .venv/bin/python -m dq data --years 3 --seed 7 --out /tmp/sim3
    DQ_SEEDS_DIR=/tmp/sim3 DQ_WAREHOUSE_DIR=/tmp/wh3 .venv/bin/python -m dq run
    .venv/bin/python bench/backtest_monitors.py --db /tmp/wh3/jaffle_shop.db
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dq import anomaly, monitors  # noqa: E402
from dq.sources import load_sources  # noqa: E402


def backtest(db: Path, seeds: Path) -> int:
    sources = load_sources(seeds)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    total_checks = total_alarms = 0
    print(f"{'series':<60} {'checked':>8} {'alarms':>7}  first alarms")
    for source in sources.values():
        if not source.monitors.enabled or not source.monitors.time:
            continue
        for (metric, segment), series in sorted(monitors.measure(con, sources, source).items()):
            check = source.monitors.check(series.monitor)
            if not check.on:
                continue
            if metric == "volume" and not segment and check.option("by"):
                # A run checks the sum of its established segments (a new one is
                # learnt first); the raw total would alarm at every opening.
                continue
            tuning = source.monitors.tuning_for(series.monitor)
            points = series.points
            if series.kind == anomaly.COUNT:
                points = monitors._filled(points, max(points))  # noqa: SLF001 (same fill as a run)
            checked, alarms = 0, []
            for day, (value, n) in sorted(points.items()):
                training = anomaly.training_window(points, day, tuning)
                n_today = max(int(value), 1) if series.kind == anomaly.COUNT else n
                expected = anomaly.band(training, day, n_today, series.kind, tuning)
                if expected is None:
                    continue
                checked += 1
                if not expected.holds(value):
                    alarms.append(
                        f"{day} {value:.4g} not in {expected.lower:.4g}–{expected.upper:.4g}"
                    )
            total_checks += checked
            total_alarms += len(alarms)
            name = f"{source.clean_table} {metric}" + (f" [{segment[:8]}]" if segment else "")
            print(f"{name[:60]:<60} {checked:>8} {len(alarms):>7}  {'; '.join(alarms[:2])}")
    con.close()
    print(
        f"\n{total_checks} checks, {total_alarms} alarms"
        f" ({total_alarms / max(total_checks, 1):.3%})"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "warehouse" / "jaffle_shop.db")
    parser.add_argument("--seeds", type=Path, default=ROOT / "seeds", help="the declarations")
    args = parser.parse_args()
    return backtest(args.db, args.seeds)


if __name__ == "__main__":
    raise SystemExit(main())
