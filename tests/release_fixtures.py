"""Helpers for the release tests: a project with published data, fake model
candidates in the model stage's format, and a digest of a whole folder tree.

A candidate is written here by hand in the model stage's format (a tiny real
skops model, its card, metrics and gate verdict), so that deploy and rollback
are tested without training; dq.model's own loader reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from dq import config
from tests.conftest import copy_project

CANDIDATE_FILES = ("model.skops", "card.json", "metrics.json", "gate.json")


def published_copy(bundled_root: Path, dest: Path) -> Path:
    """A project copy holding the session run's published warehouse, its run
    records, dbt docs and GX Data Docs: what deploy releases (no pipeline run)."""
    root = copy_project(dest)
    source = bundled_root / "warehouse"
    (root / "warehouse").mkdir(exist_ok=True)
    shutil.copy2(source / "jaffle_shop.db", root / "warehouse" / "jaffle_shop.db")
    for name in ("runs", "docs"):
        shutil.copytree(source / name, root / "warehouse" / name)
    site = Path("gx") / "uncommitted" / "data_docs"
    shutil.copytree(bundled_root / site, root / site)
    return root


def settings_for(root: Path, **overrides) -> config.Settings:
    """What ``config.load()`` gives a process with ``DQ_ROOT=root`` (and no other DQ_*)."""
    return config.for_root(root, **{"production_dir": root / "production", **overrides})


def latest_record(root: Path) -> dict:
    return json.loads((root / "warehouse" / "runs" / "latest.json").read_text(encoding="utf-8"))


def tiny_model(c: float = 1.0) -> bytes:
    """A real, tiny scikit-learn model saved with skops; ``c`` makes another one."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    return sio.dumps(model)


def write_candidate(
    root: Path,
    model: bytes,
    *,
    f1: float = 0.61,
    passed: bool = True,
    reasons: tuple[str, ...] = (),
    run_id: str | None = None,
    warehouse_sha256: str | None = None,
) -> Path:
    """A candidate folder as the model stage leaves it, trained (by default) on
    the published warehouse of the latest run."""
    publish = next(s for s in latest_record(root)["steps"] if s["name"] == "publish")
    run_id = run_id or latest_record(root)["run_id"]
    sha = warehouse_sha256 or publish["detail"]["fingerprint"]
    folder = root / "warehouse" / "model" / "candidate"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "model.skops").write_bytes(model)
    metrics = {
        "f1": f1,
        "baseline_f1": 0.30,
        "precision": 0.5,
        "recall": 0.8,
        "accuracy": 0.7,
        "rows": 1686,
        "train_rows": 1264,
        "test_rows": 422,
    }
    card = {
        "table": "order_features",
        "estimator": {"class": "LogisticRegression", "params": {}},
        "gate": {"f1_min": 0.5, "max_f1_drop": 0.05},
        "metrics": metrics,
        "data": {"run_id": run_id, "warehouse_sha256": sha, "warehouse": "jaffle_shop.db"},
        "code": {"git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": False},
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "trained_at": "2026-11-28T08:00:00+00:00",
    }
    verdict = {"passed": passed, "reasons": list(reasons), "f1": f1, "baseline_f1": 0.30}
    for name, data in (("metrics.json", metrics), ("card.json", card), ("gate.json", verdict)):
        (folder / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return folder


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root``: a file's sha256, a link's target, a folder's mode."""
    found = {}
    if not root.exists():
        return found
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[key] = f"dir {path.stat().st_mode:o}"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
