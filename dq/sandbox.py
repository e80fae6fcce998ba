"""Throw-away copies of the project: what the tests, the benchmarks and the quality
eval run pipelines on, so that nothing touches the repository's own warehouse,
Data Docs or seeds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dq.config import PROJECT_ROOT

_ignored = shutil.ignore_patterns(
    "target", "logs", "uncommitted", "__pycache__", ".user.yml", "*.db"
)


def copy_project(dest: Path, source: Path = PROJECT_ROOT) -> Path:
    """Copy what a run needs (dbt project, seeds, GX config, model config, profile) to ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dbt_project", "seeds", "gx", "model"):
        shutil.copytree(source / name, dest / name, ignore=_ignored, symlinks=True)
    shutil.copy2(source / "profiles.yml", dest / "profiles.yml")
    return dest


def project_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for a subprocess run on the copy at ``root``: this process's
    environment without any ``DQ_*`` setting, ``DQ_ROOT`` pointing at the copy and
    no waiting for the warehouse lock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env.update({"DQ_ROOT": str(root), "DQ_LOCK_TIMEOUT": "0", **extra})
    return env
