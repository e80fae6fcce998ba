"""``bench/pipeline.py``'s arithmetic and report, without running a pipeline: the growth
fit, the budgets' verdicts, the step table, the default baseline (a tiny git repo) and
the peak RSS of one small child process."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bench import pipeline
from bench.pipeline import Measurement, Summary


def _summary(years, rows, wall, rss, steps) -> Summary:
    return Summary(years, rows, runs=1, failed=0, wall_s=wall, peak_rss_mb=rss, steps=steps)


def test_growth_exponent_of_a_power_law():
    points = [(rows, 2 * rows**0.5) for rows in (4_430, 182_282, 1_649_797)]
    assert pipeline.growth_exponent(points) == pytest.approx(0.5)
    linear = [(rows, 3e-5 * rows) for rows in (1_000, 10_000)]
    assert pipeline.growth_exponent(linear) == pytest.approx(1.0)


def test_growth_exponent_needs_two_sizes_with_rows_and_a_figure():
    assert pipeline.growth_exponent([(0, 5.0), (1_000, 7.0)]) is None
    assert pipeline.growth_exponent([(1_000, 7.0), (1_000, 8.0)]) is None
    assert pipeline.growth_exponent([(1_000, 7.0), (9_000, None), (4_000, 0.0)]) is None
    assert pipeline.growth_exponent([]) is None


def test_summary_leaves_out_failed_runs_and_keeps_missing_fields_missing():
    def run(wall, exit_code, rss_field):
        step = {"seconds": wall / 10, "status": "ok", "peak_rss_mb": rss_field}
        return Measurement("baseline", 1, 0, 182_282, wall, 400.0, exit_code, "x", {"seed": step})

    runs = [run(40.0, 0, None), run(38.0, 0, None), run(5.0, 1, None)]
    summary = pipeline.summarize(runs, "min")
    assert (summary.runs, summary.failed, summary.wall_s) == (2, 1, 38.0)
    assert summary.steps["seed"] == {"seconds": 3.8, "peak_rss_mb": None}
    assert summary.outside_s == pytest.approx(34.2)  # 38 s minus its 3.8 s step
    assert pipeline.summarize(runs[:2] + [run(50.0, 0, None)], "median").wall_s == 40.0
    assert pipeline.summarize([run(5.0, 2, None)], "min").wall_s is None
    assert pipeline.statistic_name(2) == "min" and pipeline.statistic_name(3) == "median"


def test_budget_verdicts():
    assert pipeline.verdict(60.0, 60) == "met"
    assert pipeline.verdict(60.1, 60) == "NOT met"
    assert pipeline.verdict(None, 60) == "not measured (failed)"
    current = {
        0: _summary(0, 4_430, 14.0, 300.0, {"preflight": {"seconds": 0.8}}),
        3: _summary(3, 1_649_797, 55.0, 650.0, {"monitor": {"seconds": 6.5}}),
    }
    off = {3: _summary(3, 1_649_797, 50.0, 640.0, {})}
    current[0].outside_s = 9.0
    lines = pipeline.budget_lines(current, monitors_off=off)
    assert lines[0] == (
        "- bundled sample: whole run 14.0 s (goal ≤ 15 s): met [9.0 s of it outside the steps]"
    )
    assert lines[1] == "- 1 year: not measured (--years)"
    assert lines[2] == (
        "- 3 years: whole run 55.0 s (goal ≤ 60 s): met; peak RSS 650.0 MB (goal ≤ 600 MB): NOT met"
    )
    assert "bundled sample: monitor step n/a s" in lines[3]
    assert "3 years: monitor step 6.50 s, whole run 55.0 s on vs 50.0 s" in lines[3]
    assert "(+5.0 s, ×1.10)" in lines[3]
    assert lines[4].endswith("bundled sample: 0.80 s; 3 years: n/a s")
    assert lines[5] == "- PostgreSQL: not measured (--postgres)"
    pg = {0: _summary(0, 4_430, 28.0, 300.0, {})}
    assert pipeline.budget_lines(current, postgres=pg)[-1] == (
        "- PostgreSQL (DQ_TARGET=postgres):"
        " bundled sample: whole run 28.0 s vs SQLite 14.0 s (×2.00)"
    )


def test_step_table_leaves_a_field_the_baseline_lacks_blank():
    baseline = _summary(0, 4_430, 30.0, 400.0, {"seed": {"seconds": 8.0, "peak_rss_mb": None}})
    current = _summary(
        0,
        4_430,
        24.0,
        410.0,
        {
            "seed": {"seconds": 6.0, "peak_rss_mb": 250.0},
            "docs": {"seconds": 3.0, "peak_rss_mb": 260.0},
        },
    )
    lines = pipeline.step_table(current, baseline).splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0] == [
        "step",
        "baseline s",
        "current s",
        "baseline/current",
        "baseline peak RSS MB",
        "current peak RSS MB",
    ]
    assert set(lines[1]) <= {"|", "-", ":"}
    rows = {row[0]: row[1:] for row in cells[2:]}
    assert rows["seed"] == ["8.00", "6.00", "1.33", "", "250.0"]
    assert rows["docs"] == ["", "3.00", "", "", "260.0"]  # a step the baseline did not run
    assert rows["outside the steps"] == ["", "", "", "", ""]  # no runs: no figure
    assert rows["whole run"] == ["30.00", "24.00", "1.25", "", ""]
    assert rows["peak RSS MB"] == ["400.0", "410.0", "0.98", "", ""]
    assert list(rows) == ["seed", "docs", "outside the steps", "whole run", "peak RSS MB"]
    # Without a baseline, no baseline columns.
    alone = pipeline.step_table(current).splitlines()[0]
    assert "baseline" not in alone and "current s" in alone


def test_run_measured_reports_that_one_child(tmp_path):
    # Bigger than this process (a pytest worker of the whole suite holds ~500 MB), whose
    # peak a child inherits over fork+exec.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = int(own) + 200
    big = f"x = bytearray({size} * 2**20); x[::4096] = b'1' * len(x[::4096])"
    wall, big_rss, code = pipeline.run_measured(
        [sys.executable, "-c", big], env=dict(os.environ), cwd=tmp_path, log=tmp_path / "big.log"
    )
    assert code == 0 and big_rss > size and wall > 0
    small = "import sys; print('bye'); sys.exit(3)"
    _, rss, code = pipeline.run_measured(
        [sys.executable, "-c", small], env=dict(os.environ), cwd=tmp_path, log=tmp_path / "s.log"
    )
    # Not the bigger child before it; at least this process's own peak, which Linux
    # carries over fork+exec (why bench/pipeline.py keeps its own process small).
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert code == 3 and rss < big_rss - 50 and rss < own + 30
    assert (tmp_path / "s.log").read_text() == "bye\n"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _commit(repo: Path, text: str) -> None:
    (repo / "file.txt").write_text(text)
    _git(repo, "add", "file.txt")
    _git(repo, "commit", "-q", "-m", text)


def test_default_baseline_is_the_last_tag_before_head(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _commit(repo, "one")
    # A single commit has no HEAD^: the fallback.
    assert pipeline.default_baseline(repo) == pipeline.FALLBACK_BASELINE
    _git(repo, "tag", "v1")
    _commit(repo, "two")
    _git(repo, "tag", "-a", "v2", "-m", "release two")
    assert pipeline.default_baseline(repo) == "v1"  # not v2: it is on HEAD itself
    _commit(repo, "three")
    assert pipeline.default_baseline(repo) == "v2"
    # And the baseline's files come out of git, the work tree untouched.
    tree = pipeline.export_tree(repo, "v1", tmp_path / "v1")
    assert (tree / "file.txt").read_text() == "one"
    assert (repo / "file.txt").read_text() == "three"
    assert _git(repo, "status", "--porcelain") == ""
    with pytest.raises(SystemExit):
        pipeline.commit_of(repo, "no-such-tag")
