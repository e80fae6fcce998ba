"""Shared fixtures: temporary copies of the project, and one full pipeline run.

Tests never touch the repository's own warehouse, Data Docs or seeds: each
works on a copy under ``tmp_path`` and points ``DQ_ROOT`` at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_IGNORE = shutil.ignore_patterns("target", "logs", "uncommitted", "__pycache__", ".user.yml")


def copy_project(dest: Path) -> Path:
    """Copy what a run needs (dbt project, seeds, GX config, profile) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dbt_project", "seeds", "gx"):
        shutil.copytree(REPO / name, dest / name, ignore=_IGNORE, symlinks=True)
    shutil.copy2(REPO / "profiles.yml", dest / "profiles.yml")
    return dest


def project_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for a subprocess run on the copy at ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env.update({"DQ_ROOT": str(root), "DQ_LOCK_TIMEOUT": "0", **extra})
    return env


def run_cli(root: Path, *args: str, timeout: float = 600, **extra: str):
    """``python -m dq <args>`` on the copy at ``root``; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "dq", *args],
        cwd=root,
        env=project_env(root, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the project for one test."""
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def bundled_run(tmp_path_factory: pytest.TempPathFactory):
    """The whole pipeline, once per session, on the bundled sample (a copy)."""
    root = copy_project(tmp_path_factory.mktemp("bundled") / "project")
    result = run_cli(root, "run")
    return root, result
