"""Benchmark `dbt seed`: stock dbt-sqlite vs the project's loader vs `sqlite3 .import`.

Run from the repository root::

    python bench/bench_seeds.py                       # 1x, 2x, 4x one year of data
    python bench/bench_seeds.py --skip-stock-above 2  # same, stock only up to 2x (~10 min)
    python bench/bench_seeds.py --quick               # smoke run: 0.05x and 0.1x

For every scale the script generates reproducible jafgen data once (cached in
``.cache/bench-data``, git-ignored; a scale of N is N times one year's volume,
see :func:`ensure_data`), then runs, one after the other:

- ``stock``: ``dbt seed`` on a copy of ``dbt_project`` without
  ``macros/seed_loader.sql``, i.e. dbt-sqlite's own ``sqlite__load_csv_rows``;
- ``fast``: ``dbt seed`` on a copy of ``dbt_project`` as it is in the repo;
- ``.import``: the sqlite3 CLI importing the same files (or, without the CLI,
  Python's ``executemany``, labelled as such).

Both dbt runs use the project's source declarations (``seeds/*.yml``) and the
seed config generated from them, so the seeds are declared exactly as in
production (every column ``text``). Wall time and peak
RSS are measured per subprocess (``os.wait4``); the "load" column is dbt's own
execution time of the seed nodes (from ``run_results.json``), i.e. wall time
minus dbt's start-up, parsing and artifact writing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dq import generate  # noqa: E402
from dq.sources import load_sources  # noqa: E402

DBT_PROJECT = ROOT / "dbt_project"
LOADER_MACRO = "seed_loader.sql"
SQLITE3_CLI = shutil.which("sqlite3") or "/usr/bin/sqlite3"


@dataclass
class Result:
    """One timed run of one route at one scale."""

    route: str
    scale: float
    rows: int
    wall_s: float
    peak_rss_mb: float
    load_s: float | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else float("nan")


def _generate(cache_dir: Path, years: float, seed: int) -> tuple[Path, dict[str, int]]:
    """One jafgen simulation of ``years`` with ``seed``, generated once and cached."""
    out = cache_dir / f"years-{years:g}-seed-{seed}"
    marker = out / "counts.json"
    if marker.exists():
        return out, json.loads(marker.read_text())
    print(f"generating {years:g} year(s) of data (seed {seed}) into {out} ...", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    # In a child process: importing jafgen/NumPy/Faker here would grow this
    # process, and Linux carries a parent's peak RSS over fork+exec into every
    # child's ru_maxrss, inflating the memory figures of all later runs.
    code = (
        "import json, sys; from pathlib import Path; from dq.data import generate; "
        "print(json.dumps(generate(Path(sys.argv[1]), years=float(sys.argv[2]), "
        "seed=int(sys.argv[3]))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out), repr(years), str(seed)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    # Written last, so an interrupted generation is redone rather than reused.
    marker.write_text(json.dumps(counts, indent=1))
    return out, counts


def ensure_data(cache_dir: Path, scale: float, seed: int) -> tuple[Path, dict[str, int]]:
    """``scale`` times the volume of one year of jafgen data; return its folder and row counts.

    jafgen's business grows, so simulating N years yields far more than N
    times the rows of one year (2 years: 3.8x). A scale of N is therefore
    N one-year simulations with seeds seed, seed+1, ... concatenated (plus a
    shorter simulation for a fractional part), so rows grow linearly with the
    scale and the scaling fit compares like with like. Every part and every
    concatenation is cached.
    """
    whole, frac = int(scale), round(scale - int(scale), 6)
    parts = [(1.0, seed + i) for i in range(whole)] + ([(frac, seed + whole)] if frac else [])
    if len(parts) == 1:
        return _generate(cache_dir, *parts[0])
    out = cache_dir / f"scale-{scale:g}-seed-{seed}"
    marker = out / "counts.json"
    if marker.exists():
        return out, json.loads(marker.read_text())
    generated = [_generate(cache_dir, years, part_seed) for years, part_seed in parts]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    counts: dict[str, int] = {}
    for name in generated[0][1]:
        with open(out / f"{name}.csv", "wb") as dest:
            for i, (folder, part_counts) in enumerate(generated):
                with open(folder / f"{name}.csv", "rb") as src:
                    header = src.readline()  # headers never contain line breaks
                    if i == 0:
                        dest.write(header)
                    shutil.copyfileobj(src, dest)
                counts[name] = counts.get(name, 0) + part_counts[name]
    marker.write_text(json.dumps(counts, indent=1))
    return out, counts


def _run_measured(
    cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path, stdin: str | None = None
) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB) of that one child.

    ``getrusage(RUSAGE_CHILDREN)`` keeps the maximum over every child waited
    for so far, so a later, smaller run would report an earlier, bigger one;
    ``os.wait4`` returns the usage of exactly this child.
    """
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin is not None else None,
        )
        if stdin is not None:
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{cmd[:4]} failed with {proc.returncode}; log {log}:\n{tail}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _project_copy(dest: Path, *, stock: bool) -> Path:
    """Copy dbt_project (sources only); the stock variant lacks the loader override."""
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "profiles.yml", ".user.yml")
    shutil.copytree(DBT_PROJECT, dest, ignore=ignore)
    if stock:
        (dest / "macros" / LOADER_MACRO).unlink()
    return dest


def _seed_dir(dest: Path, data: Path) -> Path:
    """The CSVs (symlinked, not copied) plus the project's source declarations."""
    dest.mkdir()
    for csv_file in sorted(data.glob("*.csv")):
        (dest / csv_file.name).symlink_to(csv_file)
    for declaration in sorted((ROOT / "seeds").glob("*.yml")):
        shutil.copy2(declaration, dest / declaration.name)
    return dest


def _count_rows(db: Path) -> int:
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        return sum(con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables)


def run_dbt(route: str, scale: float, data: Path, rows: int, work: Path) -> Result:
    """Time ``dbt seed`` on a fresh project copy and a fresh, empty build folder."""
    run_dir = work / f"{route}-{scale:g}"
    project = _project_copy(run_dir / "dbt_project", stock=(route == "stock"))
    seeds = _seed_dir(run_dir / "seeds", data)
    # The seed config (all text, quoting, delimiter) generated from the declarations.
    generate.write(load_sources(seeds), project / generate.GENERATED)
    build = run_dir / "build"
    build.mkdir()
    env = dict(os.environ)
    env.update(
        # Relative on purpose: dbt writes each seed's run SQL to
        # target/run/<project>/<seed path>, and an absolute seed path makes
        # that the CSV itself, overwriting the input with SQL.
        DQ_SEEDS_DIR="../seeds",
        DQ_BUILD_DB=str(build / "jaffle_shop.db"),
        DQ_BUILD_DIR=str(build),
        # No usage pings (there is no network) and no cookie in the profiles dir.
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    cmd = [
        sys.executable,
        "-m",
        "dbt.cli.main",
        "seed",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(ROOT),
    ]
    wall, rss = _run_measured(cmd, env=env, cwd=run_dir, log=run_dir / "dbt.log")
    results = json.loads((project / "target" / "run_results.json").read_text())
    load = sum(r["execution_time"] for r in results["results"])
    loaded = _count_rows(build / "jaffle_shop.db")
    if loaded != rows:
        raise RuntimeError(f"{route} at {scale:g}x loaded {loaded} rows, expected {rows}")
    return Result(route, scale, rows, wall, rss, load)


_EXECUTEMANY_SCRIPT = """
import csv, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for path in sys.argv[2:]:
    name = path.rsplit('/', 1)[-1][:-4]
    with open(path, newline='', encoding='utf-8') as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cols = ', '.join('"%s" text' % c for c in header)
        con.execute('create table "%s" (%s)' % (name, cols))
        marks = ', '.join('?' * len(header))
        con.executemany('insert into "%s" values (%s)' % (name, marks), reader)
con.commit()
"""


def run_import(scale: float, data: Path, rows: int, work: Path) -> Result:
    """Time the sqlite3 CLI's ``.import`` (or stdlib ``executemany``) of the same CSVs."""
    run_dir = work / f"import-{scale:g}"
    run_dir.mkdir()
    db = run_dir / "import.db"
    files = sorted(data.glob("*.csv"))
    if Path(SQLITE3_CLI).exists():
        route = ".import"
        # One transaction, as dbt does; .import creates each table from the header.
        script = "begin;\n" + "".join(f".import --csv {f} {f.stem}\n" for f in files) + "commit;\n"
        cmd = [SQLITE3_CLI, str(db)]
        wall, rss = _run_measured(
            cmd, env=dict(os.environ), cwd=run_dir, log=run_dir / "import.log", stdin=script
        )
    else:
        route = "executemany (no sqlite3 CLI)"
        cmd = [sys.executable, "-c", _EXECUTEMANY_SCRIPT, str(db), *map(str, files)]
        wall, rss = _run_measured(
            cmd, env=dict(os.environ), cwd=run_dir, log=run_dir / "import.log"
        )
    loaded = _count_rows(db)
    if loaded != rows:
        raise RuntimeError(f"{route} at {scale:g}x loaded {loaded} rows, expected {rows}")
    return Result(route, scale, rows, wall, rss)


def _rss_floor(work: Path) -> float:
    """Peak RSS reported for a trivial child: what every figure includes anyway."""
    _, rss = _run_measured(["/bin/true"], env=dict(os.environ), cwd=work, log=work / "true.log")
    return rss


def fit_exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(time) against log(rows): 1.0 means linear."""
    if len(points) < 2:
        return None
    xs = [math.log(r) for r, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def report(
    results: list[Result], scales: list[float], skipped: list[float], skip_above: float | None
) -> str:
    """The results as a Markdown table plus ratios and the fast path's scaling."""
    lines = [
        "| scale | rows | route | wall s | load s | rows/s (wall) | peak RSS MB |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.scale:g}x | {r.rows:,} | {r.route} | {r.wall_s:.2f} | {_fmt(r.load_s, '.2f')} "
            f"| {r.rows_per_s:,.0f} | {r.peak_rss_mb:.0f} |"
        )
    lines += [
        "",
        "| scale | stock/fast (wall) | stock/fast (load) | fast/import (wall) | RSS fast/stock |",
        "|---:|---:|---:|---:|---:|",
    ]
    for scale in scales:
        by = {
            r.route if r.route in ("stock", "fast") else "import": r
            for r in results
            if r.scale == scale
        }
        fast, stock, imp = by.get("fast"), by.get("stock"), by.get("import")
        sf = stock.wall_s / fast.wall_s if stock and fast else None
        sfl = stock.load_s / fast.load_s if stock and fast and fast.load_s else None
        fi = fast.wall_s / imp.wall_s if fast and imp else None
        mem = fast.peak_rss_mb / stock.peak_rss_mb if stock and fast else None
        lines.append(
            f"| {scale:g}x | {_fmt(sf, '.1f')} | {_fmt(sfl, '.1f')} | {_fmt(fi, '.1f')} "
            f"| {_fmt(mem, '.2f')} |"
        )
    fast_runs = [r for r in results if r.route == "fast"]
    wall_exp = fit_exponent([(r.rows, r.wall_s) for r in fast_runs])
    load_exp = fit_exponent([(r.rows, r.load_s) for r in fast_runs if r.load_s])
    lines += [
        "",
        f"fast path scaling exponent (log time vs log rows): wall {_fmt(wall_exp, '.2f')}, "
        f"load {_fmt(load_exp, '.2f')} (1.00 = linear; wall includes dbt's fixed start-up)",
    ]
    if skipped:
        lines.append(
            f"stock skipped at {', '.join(f'{s:g}x' for s in skipped)} "
            f"(--skip-stock-above {skip_above:g}): no stock ratio there."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run every route at every scale, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[1.0, 2.0, 4.0],
        help="years of data to load (default: 1 2 4)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: scales 0.05 and 0.1 (overrides --scales)"
    )
    parser.add_argument(
        "--skip-stock-above",
        type=float,
        default=None,
        metavar="SCALE",
        help="do not run stock dbt-sqlite above this scale (~150 s per year)",
    )
    parser.add_argument(
        "--routes",
        nargs="+",
        default=["stock", "fast", "import"],
        choices=["stock", "fast", "import"],
    )
    parser.add_argument("--seed", type=int, default=42, help="data generator seed")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "bench-data")
    parser.add_argument("--keep", action="store_true", help="keep the temporary run folders")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)

    scales = [0.05, 0.1] if args.quick else sorted(args.scales)
    work = Path(tempfile.mkdtemp(prefix="bench-seeds-"))
    results: list[Result] = []
    skipped: list[float] = []
    started = time.perf_counter()
    try:
        floor = _rss_floor(work)
        for scale in scales:
            data, counts = ensure_data(args.cache_dir, scale, args.seed)
            rows = sum(counts.values())
            for route in args.routes:
                if (
                    route == "stock"
                    and args.skip_stock_above is not None
                    and scale > args.skip_stock_above
                ):
                    skipped.append(scale)
                    continue
                print(f"{scale:g}x ({rows:,} rows): {route} ...", end=" ", flush=True)
                if route == "import":
                    result = run_import(scale, data, rows, work)
                else:
                    result = run_dbt(route, scale, data, rows, work)
                print(f"{result.wall_s:.2f} s, {result.peak_rss_mb:.0f} MB", flush=True)
                results.append(result)
    finally:
        if args.keep:
            print(f"run folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"dbt seed benchmark (seed {args.seed}, {os.cpu_count()} CPUs, "
        f"sqlite {sqlite3.sqlite_version}, total {time.perf_counter() - started:.0f} s)"
    )
    print(report(results, scales, skipped, args.skip_stock_above))
    print(
        f"peak RSS of /bin/true started the same way: {floor:.0f} MB (the floor every "
        "figure includes: Linux carries the parent's peak over fork+exec)"
    )
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
