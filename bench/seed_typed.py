"""Plain ``dbt seed`` of a typed file: stock dbt-sqlite vs the project's loader (issue 13).

Run from the repository root (``make bench-seed-typed``)::

    python bench/seed_typed.py                  # 1 year's raw_orders.csv, 2 runs per route
    python bench/seed_typed.py --repeat 3 --keep
    python bench/seed_typed.py --profile        # print the profile summary below, run nothing
    python bench/seed_typed.py --record-profile # py-spy the project route once, print its split

The file is ``raw_orders.csv`` of one simulated year (``--data-cache``/years-1, ``make
data``'s folder, generated with seed 42 when missing, :func:`bench.harness.dataset`; or
``--csv``), seeded WITHOUT ``column_types``: agate's type tester infers each column
(Integer, Number, Date, DateTime, Boolean, Text), unlike the pipeline's seeds, which are
all declared text. It is the case :mod:`dq.seed_stream` does not take (and a plain ``dbt
seed`` never gets it anyway: dbt does not load ``dq``).

One throw-away dbt project serves both routes: a copy of ``dbt_project`` (its macros and
``dbt_project.yml``; no models, tests or generated source config, which need the other
raw files), the repository's ``profiles.yml``, a seeds folder holding only the CSV (a
link) and one properties file giving the seed a delimiter and nothing else. Both routes
load into the same build file, ``--full-refresh`` each time. For each repeat, stock then
project:

- ``stock``: ``macros/seed_loader.sql`` moved out of ``macros/``: dbt-sqlite's own
  ``sqlite__load_csv_rows``; ``project``: moved back. The ``dbt parse`` after each move
  makes the seed's own parse a warm partial parse; its manifest must hold the project's
  ``sqlite__load_csv_rows`` exactly when the route is ``project`` (checked);
- ``dbt seed --full-refresh`` as a subprocess (the ``dbt`` script of this virtualenv):
  ``command s`` is its wall time, ``peak RSS MB`` its ``ru_maxrss`` (``os.wait4``), ``node
  s`` the seed node's ``execution_time`` in ``target/run_results.json``;
- the loaded table: its columns with their declared types (at least one must not be
  ``text``, else the file was not typed) and a digest of every row (values and their
  storage classes, in rowid order); the row count must equal the CSV's.

Printed: every run, then per route the minimum over its runs (RSS: maximum), the ratios
stock/project for the node and the whole command against the issue's goals (at least 8x
and 5x), and whether the two routes' tables are identical.

Profile (py-spy 0.4.3, ``record --format raw --rate 100``, 1 year's raw_orders, this
2-core machine shared with other jobs; ``--record-profile [stock|project]`` redoes one and
prints the same split, :func:`classify` sorts the stacks)
----------------------------------------------------------------------------------------

Project route, three recordings (the node took 6.2, 9.5 and 12.9 s under py-spy as the
machine's load varied). The least loaded one, seconds of samples (the thread-pool threads
that only wait, 0.6 s, left out):

=================================================================  ======  ==========
part                                                                 s      range (3)
=================================================================  ======  ==========
start-up: importing dbt (mashumaro, pydantic, agate ...)             5.66   3.6-5.7 s
start-up: CLI, flags, project and profile; interpreter start/exit    1.27   1.3-2.3 s
warm partial parse, adapter, relation cache, artifacts               0.81   0.8-1.1 s
node: agate casting every value (``Table.__init__``)                 2.23   35-38 %
node: agate type inference (``TypeTester.run``)                      1.83   29-33 %
node: agate CSV reading (csv reader, rows, babel import)             0.70    3-11 %
node: create_csv_table, agate ``MaxPrecision`` of number columns     0.67    6-11 %
node: Jinja (the materialization's, the loader's loop)               0.45    7-11 %
node: SQLite statements (the inserts, sqlite3's datetime adapter)    0.41    6-8 %
node: ``transform_seed_row`` (one call per batch)                    0.07    1-3 %
=================================================================  ======  ==========

(percentages: of the node's samples.) Everything down to ``MaxPrecision`` happens in dbt's
seed materialization: ``load_agate_table()`` (``agate.Table.from_csv`` with dbt's type
tester, which tests every value against each type its column may still have: Integer,
Number, Date, DateTime, ISODateTime, Boolean, Text; then agate casts every value:
Decimals, datetimes through isodate) runs before any project macro, and
``create_csv_table`` asks agate for each number column's precision (INT or REAL). That is
80-85 % of the project's node; the loader (Jinja loop, conversion, the inserts' own SQLite
work) is the other 15-20 %, under 1 s. Stock route (one recording, node 138 s under
py-spy): its loader's Jinja loop (a ``get_binding_char()`` dispatch per cell, a
``transform_seed_row`` call per row) is 129 s, 93 % of the node; the same agate work
(MaxPrecision included) about 9 s.

The floor, i.e. what the project cannot remove without replacing dbt's agate reading: in
the run of the README (project: command 9.07 s, node 5.36 s; stock 61.12 s, 56.33 s) the
node cannot go below 4.3-4.6 s and the command below 8.0-8.3 s (dbt's start-up, warm parse
and artifacts, 3.7 s there and up to 7 s in a run with slower start-up, come on top of the
agate work). A loader costing nothing would reach 12-13x for the node and about 7.5x for
the command; the project's loader is at 10.5x and 6.7x. Part of its 15-20 % is the SQLite
work of the inserts themselves, which any loader pays.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench.bench_seeds import LOADER_MACRO, _project_copy, _rss_floor, _run_measured  # noqa: E402

SEED = "raw_orders"
NODE = f"seed.jaffle_shop.{SEED}"
PROJECT_LOADER = "macro.jaffle_shop.sqlite__load_csv_rows"
ROUTES = ("stock", "project")
#: The issue's goals: stock/project at least this much.
GOALS = {"node": 8.0, "command": 5.0}
#: The seed's whole config: a delimiter, no column_types (quote_columns comes from
#: dbt_project.yml, as in the pipeline).
SEED_PROPERTIES = f"""version: 2
seeds:
  - name: {SEED}
    description: typed seed of bench/seed_typed.py (no column_types, agate infers them)
    config:
      delimiter: ","
"""
PROFILE_HEADING = "Profile (py-spy"


@dataclass
class Run:
    """One timed ``dbt seed`` of one route."""

    route: str
    parse_s: float
    command_s: float
    node_s: float
    peak_rss_mb: float
    table: tuple


def make_project(work: Path, csv_file: Path) -> Path:
    """The throw-away project under ``work``: macros, one seed, its properties."""
    project = _project_copy(work / "dbt_project", stock=False)
    for folder in ("models", "generated", "tests"):
        shutil.rmtree(project / folder, ignore_errors=True)
    (project / "models").mkdir()
    (project / "models" / f"_{SEED}_typed.yml").write_text(SEED_PROPERTIES)
    seeds = work / "seeds"  # dbt_project.yml's seed-paths: ../seeds
    seeds.mkdir()
    (seeds / f"{SEED}.csv").symlink_to(csv_file.resolve())
    (work / "build").mkdir()
    return project


def set_route(project: Path, route: str) -> None:
    """Move the project's loader out of ``macros/`` (stock) or back (project)."""
    active = project / "macros" / LOADER_MACRO
    aside = project / f"{LOADER_MACRO}.aside"
    if route == "stock" and active.exists():
        active.rename(aside)
    elif route == "project" and aside.exists():
        aside.rename(active)


def dbt_command(project: Path, *args: str) -> list[str]:
    """``dbt <args>`` on ``project`` with the repository's profiles."""
    script = Path(sys.executable).with_name("dbt")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "dbt.cli.main"]
    return [*base, *args, "--project-dir", str(project), "--profiles-dir", str(ROOT)]


def dbt_env(work: Path) -> dict[str, str]:
    """The environment of every dbt process: the build file under ``work``."""
    env = dict(os.environ)
    env.update(
        DQ_DBT_TARGET="dev",
        DQ_BUILD_DB=str(work / "build" / "jaffle_shop.db"),
        DQ_BUILD_DIR=str(work / "build"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    return env


def table_snapshot(db: Path) -> tuple:
    """(columns with declared types, rows, digest of values and storage classes)."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        columns = tuple((r[1], r[2]) for r in con.execute(f'pragma table_info("{SEED}")'))
        selected = ", ".join(f'"{name}", typeof("{name}")' for name, _ in columns)
        digest = hashlib.sha256()
        rows = 0
        for row in con.execute(f'select {selected} from "{SEED}" order by rowid'):
            digest.update(repr(row).encode())
            rows += 1
    return columns, rows, digest.hexdigest()


def measure(route: str, project: Path, work: Path, expected_rows: int, label: str) -> Run:
    """Switch to ``route``, warm ``dbt parse``, then time ``dbt seed --full-refresh``."""
    set_route(project, route)
    env = dbt_env(work)
    parse_s, _ = _run_measured(
        dbt_command(project, "parse"), env=env, cwd=work, log=work / f"{label}-parse.log"
    )
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    if (PROJECT_LOADER in manifest["macros"]) != (route == "project"):
        raise RuntimeError(f"{label}: the manifest does not match route {route}")
    log = work / f"{label}-seed.log"
    command_s, rss = _run_measured(
        dbt_command(project, "seed", "--full-refresh"), env=env, cwd=work, log=log
    )
    if "Unable to do partial parsing" in log.read_text(errors="replace"):
        raise RuntimeError(f"{label}: dbt seed parsed the project again (see {log})")
    results = json.loads((project / "target" / "run_results.json").read_text())
    (node,) = [r for r in results["results"] if r["unique_id"] == NODE]
    table = table_snapshot(work / "build" / "jaffle_shop.db")
    columns, rows, _ = table
    if rows != expected_rows:
        raise RuntimeError(f"{label}: {rows} rows loaded, {expected_rows} in the CSV")
    if all(declared.lower() == "text" for _, declared in columns):
        raise RuntimeError(f"{label}: every column is text: column_types were in effect")
    return Run(route, parse_s, command_s, node["execution_time"], rss, table)


def report(runs: list[Run], csv_file: Path, rows: int) -> list[str]:
    """The runs, the best per route, the ratios against the goals, the tables' equality."""
    lines = [
        f"plain dbt seed --full-refresh of {csv_file} ({rows:,} rows, types inferred), "
        f"{os.cpu_count()} CPUs",
        "",
        "| run | route | parse s | command s | node s | peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| {i} | {r.route} | {r.parse_s:.2f} | {r.command_s:.2f} | {r.node_s:.2f} "
            f"| {r.peak_rss_mb:.0f} |"
        )
    best = {}
    for route in ROUTES:
        mine = [r for r in runs if r.route == route]
        best[route] = {
            "command": min(r.command_s for r in mine),
            "node": min(r.node_s for r in mine),
            "rss": max(r.peak_rss_mb for r in mine),
        }
    lines += [
        "",
        f"min of {len(runs) // len(ROUTES)} run(s) per route (RSS: max):",
        "| route | command s | node s | command - node s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for route, b in best.items():
        lines.append(
            f"| {route} | {b['command']:.2f} | {b['node']:.2f} "
            f"| {b['command'] - b['node']:.2f} | {b['rss']:.0f} |"
        )
    lines.append("")
    for what, goal in GOALS.items():
        ratio = best["stock"][what] / best["project"][what]
        verdict = "met" if ratio >= goal else "NOT met"
        lines.append(f"stock/project, {what}: {ratio:.1f}x (goal >= {goal:g}x: {verdict})")
    tables = {r.table for r in runs}
    columns, loaded, digest = runs[0].table
    described = ", ".join(f"{name} {declared}" for name, declared in columns)
    if len(tables) == 1:
        lines.append(
            f"tables identical across routes and runs: yes ({described}; {loaded:,} rows; "
            f"rows sha256 {digest[:16]})"
        )
    else:
        lines.append("tables identical across routes and runs: NO")
        for i, r in enumerate(runs, 1):
            lines.append(f"  run {i} {r.route}: {r.table[0]} {r.table[1]:,} rows {r.table[2]}")
    return lines


#: The frames that mark a part of ``dbt seed`` in a py-spy stack (``file (path:line)``).
AGATE_READ = "load_agate_table"
WAITING = ("Pool._handle_", "GraphRunnableTask.run_queue", "_PollLikeSelector.select")
ARTIFACTS = ("write_manifest", "RunExecutionResult.write", "write_catalog")


def classify(stack: str) -> str:
    """The part of ``dbt seed`` one collapsed stack (frames joined by ``;``) belongs to."""
    if not stack.strip():
        return "no Python frame (interpreter start-up and exit)"
    if any(marker in stack for marker in WAITING):
        return "threads waiting (pool handlers, main thread; sampled, not work)"
    if AGATE_READ in stack:  # dbt's seed materialization, before any loader macro
        if "agate/type_tester.py" in stack:
            return "node: agate type inference (TypeTester.run)"
        if "(agate/table/__init__.py" in stack:
            return "node: agate casting every value (Table.__init__)"
        return "node: agate CSV reading (csv reader, rows; babel import)"
    if "convert_agate_type" in stack:
        return "node: create table, agate MaxPrecision of number columns"
    if "ConnectingExecutor" in stack:
        return "run set-up: relation cache (list schemas, relations)"
    if "BaseRunner.safe_run" in stack or "compile_and_execute" in stack:
        if "add_query" in stack:
            return "node: SQLite statements (the inserts; DDL)"
        if "transform_seed_row" in stack:
            return "node: loader, transform_seed_row (Decimal -> str)"
        return "node: Jinja (materialization, loader loop, DDL, commit)"
    frames = stack.split(";")
    if frames[0].startswith("<module> (dbt") and frames[1:2] and "_find_and_load" in frames[1]:
        return "start-up: importing dbt"
    if any(marker in stack for marker in ARTIFACTS):
        return "artifacts: manifest.json, run_results.json"
    if "parse_manifest" in stack:
        return "parse (warm partial parse), adapter registration"
    return "start-up: CLI, flags, project, profile, other"


def bucket_profile(raw: Path) -> Counter:
    """Samples per part (:func:`classify`) of a py-spy ``--format raw`` file."""
    totals: Counter = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        totals[classify(stack)] += int(count)
    return totals


def record_profile(csv_file: Path, route: str, rate: int) -> list[str]:
    """py-spy one ``dbt seed`` of ``route`` (after a warm parse); the split of its time."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    work = Path(tempfile.mkdtemp(prefix="bench-seed-typed-profile-"))
    try:
        project = make_project(work, csv_file)
        set_route(project, route)
        env = dbt_env(work)
        _run_measured(dbt_command(project, "parse"), env=env, cwd=work, log=work / "parse.log")
        raw = work / "seed.raw"
        cmd = [py_spy, "record", "--format", "raw", "--rate", str(rate), "--output", str(raw)]
        cmd += ["--", *dbt_command(project, "seed", "--full-refresh")]
        wall, _ = _run_measured(cmd, env=env, cwd=work, log=work / "seed.log")
        results = json.loads((project / "target" / "run_results.json").read_text())
        (node,) = [r for r in results["results"] if r["unique_id"] == NODE]
        totals = bucket_profile(raw)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    samples = sum(totals.values())
    lines = [
        f"{route} route, py-spy at {rate} Hz: {samples} samples ({samples / rate:.2f} s); "
        f"under py-spy: command {wall:.2f} s, node {node['execution_time']:.2f} s",
        "| part | s | share |",
        "|---|---:|---:|",
    ]
    for label, count in totals.most_common():
        lines.append(f"| {label} | {count / rate:.2f} | {count / samples:.0%} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; alternate the routes; print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--csv", type=Path, help="the typed CSV (default: 1 year's raw_orders)")
    parser.add_argument("--data-cache", type=Path, default=harness.DATA_CACHE)
    parser.add_argument("--repeat", type=int, default=2, help="runs per route (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the throw-away project")
    parser.add_argument("--profile", action="store_true", help="print the profile summary and exit")
    parser.add_argument(
        "--record-profile",
        nargs="?",
        const="project",
        choices=ROUTES,
        help="py-spy one dbt seed of this route (default project), print where its time goes",
    )
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    args = parser.parse_args(argv)
    if args.profile:
        print(__doc__[__doc__.index(PROFILE_HEADING) :].rstrip())
        return 0

    csv_file = args.csv or harness.dataset(1, args.data_cache) / f"{SEED}.csv"
    if args.record_profile:
        print("\n".join(record_profile(csv_file, args.record_profile, args.rate)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-seed-typed-"))
    runs: list[Run] = []
    try:
        floor = _rss_floor(work)
        project = make_project(work, csv_file)
        rows = harness.raw_rows(work / "seeds")
        for i in range(args.repeat):
            for route in ROUTES:
                label = f"{i + 1}-{route}"
                run = measure(route, project, work, rows, label)
                print(
                    f"{label}: parse {run.parse_s:.2f} s, seed {run.command_s:.2f} s, "
                    f"node {run.node_s:.2f} s, {run.peak_rss_mb:.0f} MB",
                    flush=True,
                )
                runs.append(run)
    finally:
        if args.keep:
            print(f"project kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("\n".join(report(runs, csv_file, rows)))
    print(f"peak RSS of /bin/true started the same way: {floor:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
