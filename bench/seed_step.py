"""The pipeline's seed step alone: agate's CSV reader vs the streamed one (issue 13).

Run from the repository root::

    python bench/seed_step.py                          # 1 and 3 years, old then new, once
    python bench/seed_step.py --years 0 1 --repeat 2   # bundled and 1 year: old, new, old, new
    python bench/seed_step.py --data /some/folder      # any folder of raw_<noun>.csv

(``make bench-seed-step``.) ``--years N`` uses ``make data``'s folder
``.cache/data/years-N`` (generated with seed 42 when missing, :func:`bench.harness.dataset`);
0 is the bundled sample in ``seeds/``.

Each measurement is one child process that does what the pipeline's seed step does:
a build folder (:func:`dq.build.create`, under a temporary ``DQ_WAREHOUSE_DIR``) with the
CSVs linked into its ``seeds/`` and the project's source declarations beside them, the
generated seed config (:func:`dq.generate.for_build`: every column ``text``), then
``dbt seed --full-refresh`` in-process through :func:`dq.dbt.invoke`. The child reports

- ``seed s``: wall seconds of that ``invoke`` (dbt's start-up, parsing and artifacts
  included, as in a run's seed step);
- ``nodes s``: the seed nodes' own execution time (``run_results.json``);
- ``peak RSS MB``: the child's ``ru_maxrss`` when it ends (Python, dbt and the load);
- the rows loaded, checked against the CSVs' rows (a wrong count stops the benchmark).

Variants: ``old`` runs with ``DQ_STREAM_SEEDS=off`` (dbt's ``agate_helper.from_csv`` reads
each file whole, the project's loader iterates its rows: the code before issue 13),
``new`` with the default (:mod:`dq.seed_stream`). They alternate per size (old, new, old,
new for ``--repeat 2``) so a drift of the shared machine hits both; each figure printed is
the minimum over the repeats (memory: the maximum).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402

VARIANTS = {"old": "off", "new": "on"}


def child(data: Path, work: Path) -> dict:
    """One seed step on ``data`` in a fresh build under ``work``; its figures."""
    from dq import build as build_mod
    from dq import config, dbt, generate

    settings = config.load()
    build = build_mod.create(settings, "bench")
    build.seeds_dir.mkdir()
    for csv_file in sorted(data.glob("*.csv")):
        (build.seeds_dir / csv_file.name).symlink_to(csv_file.resolve())
    for declaration in sorted((ROOT / "seeds").glob("*.yml")):
        shutil.copy2(declaration, build.seeds_dir / declaration.name)
    generate.for_build(build)
    start = time.perf_counter()
    result = dbt.invoke(settings, build, "seed", "--full-refresh")
    wall = time.perf_counter() - start
    if not result.success:
        raise SystemExit(f"dbt seed failed: {result.errors + result.failures}")
    runs = json.loads((build.target_dir / "run_results.json").read_text())
    with sqlite3.connect(build.db) as con:
        names = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        rows = sum(con.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names)
    return {
        "seed_s": wall,
        "nodes_s": sum(r["execution_time"] for r in runs["results"]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
    }


def csv_rows(data: Path) -> int:
    """Data rows of the CSVs (jafgen writes no line breaks inside cells)."""
    total = 0
    for csv_file in data.glob("*.csv"):
        with open(csv_file, "rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda f=fh: f.read(1 << 20), b""))
        total -= 1  # the header
    return total


def measure(variant: str, data: Path, work: Path) -> dict:
    """Run one child for ``variant`` on ``data``; its figures (raises if it failed)."""
    env = dict(os.environ)
    env.update(
        DQ_WAREHOUSE_DIR=str(work / "warehouse"),
        DQ_STREAM_SEEDS=VARIANTS[variant],
        DQ_TARGET="sqlite",
        PYTHONPATH=str(ROOT),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    cmd = [sys.executable, __file__, "--child", str(data), str(work)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} on {data} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; alternate the variants per data folder; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--years", type=float, nargs="+", default=[1, 3])
    parser.add_argument("--data", type=Path, nargs="+", help="folders of CSVs instead of --years")
    parser.add_argument("--data-cache", type=Path, default=harness.DATA_CACHE)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["old", "new"], choices=list(VARIANTS))
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    folders = args.data or [
        harness.dataset(years, args.data_cache) or ROOT / "seeds" for years in args.years
    ]
    missing = [str(f) for f in folders if not any(f.glob("raw_*.csv"))]
    if missing:
        parser.error(f"no raw_*.csv in {', '.join(missing)} (make data YEARS=N)")
    table = [
        "| data | rows | variant | seed s | nodes s | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for data in folders:
        expected = csv_rows(data)
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for variant in args.variants:
                work = Path(tempfile.mkdtemp(prefix="bench-seed-step-"))
                try:
                    got = measure(variant, data, work)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                if got["rows"] != expected:
                    raise RuntimeError(f"{variant}: {got['rows']} rows loaded, {expected} in CSVs")
                print(
                    f"{data.name} {variant}: seed {got['seed_s']:.2f} s, nodes "
                    f"{got['nodes_s']:.2f} s, {got['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
                old = best.get(variant)
                best[variant] = (
                    got
                    if old is None
                    else {
                        "seed_s": min(old["seed_s"], got["seed_s"]),
                        "nodes_s": min(old["nodes_s"], got["nodes_s"]),
                        "peak_rss_mb": max(old["peak_rss_mb"], got["peak_rss_mb"]),
                        "rows": got["rows"],
                    }
                )
        for variant, got in best.items():
            table.append(
                f"| {data.name} | {expected:,} | {variant} | {got['seed_s']:.2f} "
                f"| {got['nodes_s']:.2f} | {got['peak_rss_mb']:.0f} |"
            )
    print()
    print(f"seed step, {os.cpu_count()} CPUs, min of {args.repeat} (RSS: max)")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
