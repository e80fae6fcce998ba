"""The same lint CI runs for everyone (`make lint`): ruff and pylint for Python, SQLFluff
for the dbt models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def test_ruff_check_and_format():
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [str(BIN / "ruff"), *args], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_sqlfluff_lints_the_models(tmp_path):
    env = {
        **os.environ,
        "DQ_BUILD_DB": str(tmp_path / "build.db"),
        "DQ_BUILD_DIR": str(tmp_path),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    result = subprocess.run(
        [str(BIN / "sqlfluff"), "lint", "dbt_project/models"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_pylint_scores_above_the_threshold():
    """`make lint`'s third linter: pylint fails under `fail-under` of pyproject.toml."""
    import re
    import tomllib

    threshold = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "pylint"
    ]["main"]["fail-under"]
    assert threshold >= 9.0
    result = subprocess.run(
        [str(BIN / "pylint"), "dq", "dags"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    score = re.search(r"rated at (-?[\d.]+)/10", result.stdout)
    assert score, result.stdout[-2000:] + result.stderr[-2000:]
    assert float(score.group(1)) >= threshold, result.stdout[-4000:]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
