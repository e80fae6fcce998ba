"""The whole pipeline at 1 and 3 years, this code next to the previous release.

Run from the repository root (``make bench BENCH=--pipeline`` or ``make bench-pipeline``)::

    python bench/pipeline.py                          # bundled, 1 year, 3 years vs the last tag
    python bench/pipeline.py --years 0 --baseline release-12 --repeat 2
    python bench/pipeline.py --monitors-cost --postgres --json pipeline.json

What it measures. Each measurement is one real ``python -m dq run`` process on a fresh
project copy (nothing published before it, so every run does the same work: preflight,
seed, both GX layers, dbt build, the monitors, publish and docs), for each data size of
``--years`` (0 is the bundled sample in ``seeds/``; N years are generated once with seed
42 into ``--data-cache``/years-N, ``make data``'s folder) and each code version:

- *current*: the code of this checkout (its work tree, uncommitted changes included);
- *baseline*: ``--baseline REF`` (default: the newest tag reachable from HEAD but not on
  HEAD, ``git describe --tags --abbrev=0 HEAD^``, else ``release-12``), exported with
  ``git archive REF | tar -x`` into a temporary folder (the repository's work tree is not
  touched); its project copy is made from that tree and its process runs with
  ``PYTHONPATH`` on that tree, in the same virtualenv. Before each run a ``python -c``
  in the same environment prints ``dq.__file__``; a run whose ``dq`` does not come from
  its tree stops the benchmark.

Per run: wall seconds and peak RSS of the whole process (``os.wait4``: the process and
the children it waited for, not a PostgreSQL server), the exit code, and from its run
record each step's seconds and ``peak_rss_mb`` (the process's high-water mark when the
step ended; releases before 6058c2e lack it and show a blank). The versions run in turn
per size (baseline, current, baseline, current for ``--repeat 2``), so a drift of the
machine hits both; a failed run is printed with its log's tail, left out of the figures
and makes the exit status 1. Each figure is the min of the runs (``--repeat`` 1 or 2) or
their median (3 or more).

Printed: per size a table of steps (baseline s, current s, baseline/current, peak RSS);
its row "outside the steps" is the whole run minus its steps' seconds (Python, dbt and
GX start-up, and ``conclude``: history, trends page). Then the growth exponent k of time
and memory in rows (least squares of log figure on log rows over the sizes measured),
and the budgets: whole run at most 15 s bundled, 25 s at 1 year, 60 s and 600 MB at 3
years, and what the anomaly monitors (``--monitors-cost``: a run with
``DQ_MONITORS=off`` too), the source declarations (the preflight step) and PostgreSQL
(``--postgres``: a run with ``DQ_TARGET=postgres`` on a throw-away cluster, as
``bench/targets.py``) cost.

How long. Two runs of the bundled sample (``--years 0``) take 1 to 1.5 minutes on this
2-core machine (75 s while another benchmark ran); one year adds about 40 s per run
(README, ``make bench-targets``); three years take minutes per run. The default (3
sizes, 2 versions) is about 10 minutes, and each of ``--repeat``, ``--monitors-cost``
and ``--postgres`` adds its share.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from dq.sandbox import copy_project, project_env  # noqa: E402
from dq.steps import STEPS  # noqa: E402

STEP_NAMES = [s.__name__ for s in STEPS] + ["docs"]
#: The baseline when ``git describe`` finds no tag before HEAD.
FALLBACK_BASELINE = "release-12"
#: The issue's goals per size (years): whole-run seconds, peak RSS MB (None: no goal).
BUDGETS: dict[float, tuple[float, float | None]] = {0: (15, None), 1: (25, None), 3: (60, 600)}


@dataclass
class Measurement:
    """One ``python -m dq run`` process."""

    code: str  # baseline, current, monitors-off (current), postgres (current)
    years: float
    repeat: int
    rows: int
    wall_s: float
    peak_rss_mb: float
    exit_code: int
    dq_file: str
    #: step name -> {"seconds", "status", "peak_rss_mb" (None when the record lacks it)}
    steps: dict[str, dict] = field(default_factory=dict)


@dataclass
class Summary:
    """The successful runs of one code version on one size, reduced to one figure each."""

    years: float
    rows: int
    runs: int
    failed: int
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    #: whole run minus its steps: Python, dbt and GX start-up, and ``conclude`` (history,
    #: trends page, notification)
    outside_s: float | None = None
    #: step name -> {"seconds": float | None, "peak_rss_mb": float | None}
    steps: dict[str, dict] = field(default_factory=dict)


# ------------------------------------------------------------------ git


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def default_baseline(repo: Path) -> str:
    """The newest tag reachable from HEAD that is not on HEAD itself (``git describe
    --tags --abbrev=0 HEAD^``: through the first parent), else :data:`FALLBACK_BASELINE`."""
    done = _git(repo, "describe", "--tags", "--abbrev=0", "HEAD^")
    return (
        done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else FALLBACK_BASELINE
    )


def commit_of(repo: Path, ref: str) -> str:
    """The short commit ``ref`` names; SystemExit when it names none."""
    done = _git(repo, "rev-parse", "--short", "--verify", "--end-of-options", f"{ref}^{{commit}}")
    if done.returncode != 0:
        raise SystemExit(f"--baseline {ref}: not a commit in {repo} ({done.stderr.strip()})")
    return done.stdout.strip()


def export_tree(repo: Path, ref: str, dest: Path) -> Path:
    """``git -C repo archive ref | tar -x -C dest``: the ref's files, no work-tree change."""
    dest.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(
        ["git", "-C", str(repo), "archive", "--end-of-options", ref], stdout=subprocess.PIPE
    ) as archive:
        tar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=False)
        archive.stdout.close()
    if archive.returncode != 0 or tar.returncode != 0:
        raise SystemExit(f"git archive {ref} | tar -x -C {dest} failed")
    return dest


def compile_tree(tree: Path) -> None:
    """Byte-compile ``tree/dq`` before timing, so the first run of a fresh export does
    not pay for it when the current code's bytecode is already there."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(tree / "dq")], check=True, cwd=tree
    )


# ------------------------------------------------------------------ running


def _dq_file(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import dq; print(dq.__file__)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run_measured(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path):
    """Run ``cmd`` with its output in ``log``; (wall s, peak RSS MB, exit code) of that
    one child (``os.wait4``; ``RUSAGE_CHILDREN`` would keep the maximum of every child)."""
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C, SIGTERM: the run does not outlive the benchmark
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode  # ru_maxrss: KiB on Linux


def measure(
    work: Path,
    code: str,
    tree: Path,
    years: float,
    data: Path | None,
    repeat: int,
    extra_env: dict[str, str] | None = None,
    warm: bool = False,
) -> Measurement:
    """One ``python -m dq run`` of the code in ``tree`` on a fresh copy of its project
    (``warm``: the copy's second run, after one unmeasured run of the same data had
    published, as a scheduled run finds its project: a warehouse, a history, caches)."""
    label = f"{code}-{size_slug(years)}-r{repeat + 1}"
    root = copy_project(work / label, source=tree)
    try:
        if data is not None:
            for csv in data.glob("raw_*.csv"):
                shutil.copyfile(csv, root / "seeds" / csv.name)
        rows = harness.raw_rows(root / "seeds")
        env = project_env(root, **(extra_env or {}))
        env["PYTHONPATH"] = str(tree)
        dq_file = _dq_file(env, root)
        if not Path(dq_file).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"{label}: dq imported from {dq_file}, not from {tree}")
        log = work / f"{label}.log"
        if warm:
            _, _, warmed = run_measured(
                [sys.executable, "-m", "dq", "run", "--run-id", f"{label}-warm-up"],
                env=env, cwd=root, log=work / f"{label}-warm-up.log",
            )  # fmt: skip
            if warmed != 0:
                print(f"!!! {label}: the warm-up run exited {warmed}")
        print(f"{label} ({rows:,} raw rows) ...", end=" ", flush=True)
        wall, rss, exit_code = run_measured(
            [sys.executable, "-m", "dq", "run", "--run-id", label], env=env, cwd=root, log=log
        )
        print(f"{wall:.1f} s, {rss:.0f} MB, exit {exit_code}", flush=True)
        record_path = root / "warehouse" / "runs" / f"{label}.json"
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        if exit_code != 0:
            tail = log.read_text(errors="replace")[-3000:]
            print(f"\n!!! {label} FAILED with exit {exit_code}; its output ends:\n{tail}\n")
        steps = {
            s["name"]: {
                "seconds": s.get("seconds"),
                "status": s.get("status"),
                "peak_rss_mb": s.get("peak_rss_mb"),
            }
            for s in record.get("steps", [])
        }
        return Measurement(code, years, repeat, rows, wall, rss, exit_code, dq_file, steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ figures


def statistic_name(repeat: int) -> str:
    """Min of 1 or 2 runs (the least disturbed), median of 3 or more."""
    return "min" if repeat <= 2 else "median"


def _pick(values, statistic: str) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return min(known) if statistic == "min" else statistics.median(known)


def summarize(runs: list[Measurement], statistic: str) -> Summary | None:
    """One figure per measured quantity over the runs that exited 0 (a figure no
    record holds, like ``peak_rss_mb`` before 6058c2e, stays None)."""
    if not runs:
        return None
    ok = [r for r in runs if r.exit_code == 0]
    summary = Summary(runs[0].years, runs[0].rows, len(ok), len(runs) - len(ok))
    if not ok:
        return summary
    summary.wall_s = _pick((r.wall_s for r in ok), statistic)
    summary.peak_rss_mb = _pick((r.peak_rss_mb for r in ok), statistic)
    summary.outside_s = _pick(
        (r.wall_s - sum(s["seconds"] or 0 for s in r.steps.values()) for r in ok), statistic
    )
    for name in dict.fromkeys(n for r in ok for n in r.steps):
        summary.steps[name] = {
            key: _pick((r.steps.get(name, {}).get(key) for r in ok), statistic)
            for key in ("seconds", "peak_rss_mb")
        }
    return summary


def growth_exponent(points: list[tuple[float, float | None]]) -> float | None:
    """k of ``value = c * rows**k``: the least-squares slope of log value on log rows over
    the points with rows > 0 and a value > 0 (None with fewer than 2 distinct rows)."""
    usable = [(math.log(r), math.log(v)) for r, v in points if r > 0 and v is not None and v > 0]
    if len({x for x, _ in usable}) < 2:
        return None
    mx = sum(x for x, _ in usable) / len(usable)
    my = sum(y for _, y in usable) / len(usable)
    sxx = sum((x - mx) ** 2 for x, _ in usable)
    return sum((x - mx) * (y - my) for x, y in usable) / sxx


def size_label(years: float) -> str:
    if not years:
        return "bundled sample"
    return f"{years:g} year" + ("" if years == 1 else "s")


def size_slug(years: float) -> str:
    return "bundled" if not years else f"{years:g}y"


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _said(value: float | None, digits: int = 1) -> str:
    """A figure in a sentence: "n/a" where a table leaves the cell blank."""
    return _num(value, digits) or "n/a"


def _ratio(top: float | None, bottom: float | None) -> str:
    return f"{top / bottom:.2f}" if top is not None and bottom else ""


def _md_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A markdown table, first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells):
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i < left else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = "|" + "|".join(
        "-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)
    )
    return "\n".join([line(header), rule + "|", *(line(r) for r in rows)])


def step_table(
    current: Summary, baseline: Summary | None = None, others: dict[str, Summary] | None = None
) -> str:
    """Rows: the steps, ``outside the steps``, ``whole run`` and ``peak RSS MB``.
    Columns: baseline s, current s, baseline/current, then each of ``others`` (name ->
    Summary) in seconds, then the steps' peak RSS. A figure the baseline's records lack
    is a blank cell."""
    others = others or {}
    versions = ([("baseline", baseline)] if baseline else []) + [("current", current)]
    header = ["step"] + [f"{name} s" for name, _ in versions]
    header += ["baseline/current"] if baseline else []
    header += [f"{name} s" for name in others]
    header += [f"{name} peak RSS MB" for name, _ in versions]
    named = [s for s in STEP_NAMES if any(s in v.steps for _, v in versions)]
    named += [s for _, v in versions for s in v.steps if s not in named]

    def figures(get) -> list[str]:
        row = [_num(get(v), 2) for _, v in versions]
        row += [_ratio(get(baseline), get(current))] if baseline else []
        return row + [_num(get(o), 2) for o in others.values()]

    rows = []
    for step in named:

        def seconds(summary, step=step):
            return summary.steps.get(step, {}).get("seconds")

        rss = [_num(v.steps.get(step, {}).get("peak_rss_mb")) for _, v in versions]
        rows.append([step, *figures(seconds), *rss])
    blank = [""] * len(versions)
    rows.append(["outside the steps", *figures(lambda s: s.outside_s), *blank])
    rows.append(["whole run", *figures(lambda s: s.wall_s), *blank])
    rss_row = [_num(v.peak_rss_mb) for _, v in versions]
    rss_row += [_ratio(baseline.peak_rss_mb, current.peak_rss_mb)] if baseline else []
    rss_row += [_num(o.peak_rss_mb) for o in others.values()]
    rows.append(["peak RSS MB", *rss_row, *blank])
    return _md_table(header, rows)


def growth_table(by_code: dict[str, dict[float, Summary]]) -> str | None:
    """k per figure (whole run s, peak RSS MB, each step's s) and code version."""
    codes = [c for c in ("baseline", "current") if c in by_code]
    sized = {c: [s for s in by_code[c].values() if s.rows > 0] for c in codes}
    if not any(len({s.rows for s in sized[c]}) >= 2 for c in codes):
        return None
    figures = {
        "whole run s": lambda s: s.wall_s,
        "peak RSS MB": lambda s: s.peak_rss_mb,
    }
    for step in STEP_NAMES:
        figures[f"{step} s"] = lambda s, step=step: s.steps.get(step, {}).get("seconds")
    rows = []
    for name, get in figures.items():
        ks = [growth_exponent([(s.rows, get(s)) for s in sized[c]]) for c in codes]
        if any(k is not None for k in ks):
            rows.append([name, *(_num(k, 2) for k in ks)])
    return _md_table(["figure", *(f"{c} k" for c in codes)], rows)


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "not measured (failed)"
    return "met" if value <= limit else "NOT met"


def budget_lines(
    current: dict[float, Summary],
    monitors_off: dict[float, Summary] | None = None,
    postgres: dict[float, Summary] | None = None,
) -> list[str]:
    """The issue's goals as met / NOT met with the figure, then what the anomaly monitors,
    the source declarations and PostgreSQL cost, per size measured."""
    lines = []
    for years, (seconds, rss) in BUDGETS.items():
        summary = current.get(years)
        if summary is None:
            lines.append(f"- {size_label(years)}: not measured (--years)")
            continue
        line = (
            f"- {size_label(years)}: whole run {_said(summary.wall_s)} s"
            f" (goal ≤ {seconds:g} s): {verdict(summary.wall_s, seconds)}"
        )
        if summary.outside_s is not None:
            line += f" [{summary.outside_s:.1f} s of it outside the steps]"
        if rss is not None:
            line += (
                f"; peak RSS {_said(summary.peak_rss_mb)} MB"
                f" (goal ≤ {rss:g} MB): {verdict(summary.peak_rss_mb, rss)}"
            )
        lines.append(line)

    def step_s(summary: Summary, step: str) -> float | None:
        return summary.steps.get(step, {}).get("seconds")

    parts = []
    for years, summary in current.items():
        part = f"{size_label(years)}: monitor step {_said(step_s(summary, 'monitor'), 2)} s"
        off = (monitors_off or {}).get(years)
        if off is not None and summary.wall_s is not None and off.wall_s is not None:
            delta = summary.wall_s - off.wall_s
            part += (
                f", whole run {summary.wall_s:.1f} s on vs {off.wall_s:.1f} s with"
                f" DQ_MONITORS=off ({delta:+.1f} s, ×{summary.wall_s / off.wall_s:.2f})"
            )
        parts.append(part)
    hint = "" if monitors_off else " (whole-run cost: --monitors-cost)"
    lines.append("- anomaly monitors: " + "; ".join(parts) + hint)
    preflight = "; ".join(
        f"{size_label(y)}: {_said(step_s(s, 'preflight'), 2)} s" for y, s in current.items()
    )
    lines.append(
        "- source declarations (the preflight step of the run record: snapshotting the CSVs,"
        f" checking them against seeds/*.yml, generating the source models): {preflight}"
    )
    if postgres:
        parts = []
        for years, pg in postgres.items():
            sqlite = current.get(years)
            parts.append(
                f"{size_label(years)}: whole run {_said(pg.wall_s)} s vs SQLite"
                f" {_said(sqlite.wall_s if sqlite else None)} s"
                f" (×{_ratio(pg.wall_s, sqlite.wall_s if sqlite else None) or '?'})"
            )
        lines.append("- PostgreSQL (DQ_TARGET=postgres): " + "; ".join(parts))
    else:
        lines.append("- PostgreSQL: not measured (--postgres)")
    return lines


# ------------------------------------------------------------------ main


def _years(text: str) -> list[float]:
    try:
        years = [float(y) for y in text.split(",") if y.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not years or any(y < 0 for y in years):
        raise argparse.ArgumentTypeError(f"sizes must be 0 or more years: {text!r}")
    return sorted(dict.fromkeys(years))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument(
        "--years", type=_years, default=[0.0, 1.0, 3.0], help="sizes: 0 = bundled (default 0,1,3)"
    )
    p.add_argument("--baseline", metavar="REF", help="code to compare with (default: last tag)")
    p.add_argument("--no-baseline", action="store_true", help="measure the current code only")
    p.add_argument("--repeat", type=int, default=1, help="runs per version and size (default 1)")
    p.add_argument(
        "--data-cache",
        type=Path,
        default=harness.DATA_CACHE,
        metavar="DIR",
        help="generated years in DIR/years-N (default .cache/data)",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write all measurements here")
    p.add_argument(
        "--warm",
        action="store_true",
        help="measure each copy's second run (after an unmeasured one published)",
    )
    p.add_argument(
        "--monitors-cost", action="store_true", help="also run the current code DQ_MONITORS=off"
    )
    p.add_argument(
        "--postgres", action="store_true", help="also run the current code DQ_TARGET=postgres"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    statistic = statistic_name(args.repeat)
    head = _git(ROOT, "rev-parse", "--short", "HEAD").stdout.strip()
    dirty = bool(_git(ROOT, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    ref = None if args.no_baseline else (args.baseline or default_baseline(ROOT))

    # A SIGTERM (kill, a CI timeout) still stops the cluster and removes the copies.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="dq-bench-pipeline-"))
    pg = harness.ThrowawayPostgres(work) if args.postgres else None
    trees = {"current": ROOT}
    runs: list[Measurement] = []
    try:
        if ref:
            trees["baseline"] = export_tree(ROOT, ref, work / "baseline-tree")
            print(f"baseline: {ref} ({commit_of(ROOT, ref)}), exported to {trees['baseline']}")
        print(f"current: {ROOT} at {head}" + (" + uncommitted changes" if dirty else ""))
        for tree in trees.values():
            compile_tree(tree)
        if pg:
            print(pg.start(), flush=True)
        for years in args.years:
            data = harness.dataset(years, args.data_cache)
            for i in range(args.repeat):
                if ref:
                    runs.append(
                        measure(work, "baseline", trees["baseline"], years, data, i, warm=args.warm)
                    )
                runs.append(measure(work, "current", ROOT, years, data, i, warm=args.warm))
                if args.monitors_cost:
                    off = {"DQ_MONITORS": "off"}
                    runs.append(measure(work, "monitors-off", ROOT, years, data, i, off))
                if pg:
                    label = f"postgres-{size_slug(years)}-r{i + 1}"
                    runs.append(measure(work, "postgres", ROOT, years, data, i, pg.env(label)))
    finally:
        if pg:
            pg.remove()
        shutil.rmtree(work, ignore_errors=True)

    by_code: dict[str, dict[float, Summary]] = {}
    for code in dict.fromkeys(r.code for r in runs):
        for years in args.years:
            summary = summarize([r for r in runs if r.code == code and r.years == years], statistic)
            if summary is not None:
                by_code.setdefault(code, {})[years] = summary
    report(args, by_code, statistic, ref)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n(this process's own peak RSS: {own:.0f} MB; Linux carries a parent's peak over"
        " fork+exec, so it is a floor under each run's figure)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "statistic": statistic,
                    "current": {"root": str(ROOT), "commit": head, "uncommitted": dirty},
                    "baseline": {"ref": ref, "commit": commit_of(ROOT, ref)} if ref else None,
                    "runs": [asdict(r) for r in runs],
                    "summaries": {
                        code: {size_slug(y): asdict(s) for y, s in sizes.items()}
                        for code, sizes in by_code.items()
                    },
                    "budgets": budget_lines(
                        by_code.get("current", {}),
                        by_code.get("monitors-off"),
                        by_code.get("postgres"),
                    ),
                },
                indent=1,
            )
        )
        print(f"measurements written to {args.json}")
    failed = [r for r in runs if r.exit_code != 0]
    for r in failed:
        print(f"FAILED: {r.code} on {size_label(r.years)} run {r.repeat + 1}: exit {r.exit_code}")
    return 1 if failed else 0


def report(args, by_code, statistic, ref) -> None:
    """Print the per-size tables, the growth section and the budgets."""
    current = by_code.get("current", {})
    print(
        f"\nEach figure: the {statistic} of {args.repeat} run(s) per code version and size"
        f" (runs that failed left out); baseline = {ref or 'none (--no-baseline)'};"
        " ratio > 1: the current code is faster. Row peak RSS MB: the whole process and"
        " the children it waited for (os.wait4); columns peak RSS MB: the run record's"
        " peak_rss_mb when the step ended."
    )
    for years, summary in current.items():
        baseline = by_code.get("baseline", {}).get(years)
        others = {
            code: sizes[years]
            for code, sizes in by_code.items()
            if code not in ("current", "baseline") and years in sizes
        }
        print(f"\n### {size_label(years)}: {summary.rows:,} raw rows\n")
        print(step_table(summary, baseline, others))
        for code, s in [("baseline", baseline), ("current", summary), *others.items()]:
            if s is not None and s.failed:
                print(f"\n!!! {code}: {s.failed} of {s.runs + s.failed} run(s) FAILED")
    growth = growth_table(by_code)
    fitted = ", ".join(f"{size_label(y)} ({s.rows:,} rows)" for y, s in current.items())
    print(f"\n### growth: k in figure ∝ rows^k, least squares on logs over {fitted}\n")
    print(growth or "needs at least 2 sizes (--years)")
    if growth and 0 in current:
        print(
            '\nThe bundled sample\'s run is mostly fixed cost (row "outside the steps"), which'
            " flattens k; --years 1,3 fits the large sizes alone."
        )
    print("\n### budgets (current code)\n")
    print("\n".join(budget_lines(current, by_code.get("monitors-off"), by_code.get("postgres"))))


if __name__ == "__main__":
    sys.exit(main())
