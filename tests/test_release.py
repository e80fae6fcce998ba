"""Releases: deploy, refusals, rollback, a deploy killed half-way, and the
whole chain (model stage -> deploy) on the bundled sample.

Every test works on a copy of the session run's published project
(``bundled_run``) with a production folder of its own; candidates are written
by hand in the model stage's format (tests/release_fixtures.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dq import release
from dq.publish import table_counts
from tests import release_fixtures as fx
from tests.conftest import REPO, project_env, run_cli, sha256


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    """Three different tiny real models (skops files)."""
    return {"a": fx.tiny_model(1.0), "b": fx.tiny_model(0.01), "c": fx.tiny_model(100.0)}


@pytest.fixture
def root(tmp_path, bundled_run) -> Path:
    source, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    return fx.published_copy(source, tmp_path / "project")


def deploy(root: Path, **extra: str):
    return run_cli(root, "deploy", **extra)


def current_id(root: Path) -> str | None:
    found = release.current(fx.settings_for(root))
    return found.release_id if found else None


def ids(root: Path) -> list[str]:
    return [r.release_id for r in release.releases(fx.settings_for(root))]


# ------------------------------------------------------------------ deploy


def test_deploy_lands_a_whole_release_with_its_manifest(root, models, webhook):
    candidate = fx.write_candidate(root, models["a"])
    result = deploy(root, DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert result.returncode == 0, result.stderr
    [release_id] = ids(root)
    assert release.RELEASE_ID.fullmatch(release_id)
    assert f"Deployed release {release_id}" in result.stdout

    production = root / "production"
    assert os.readlink(production / "current") == f"releases/{release_id}"  # relative
    folder = production / "releases" / release_id
    # The model, byte for byte as the gate passed it.
    for name in fx.CANDIDATE_FILES:
        assert (folder / "model" / name).read_bytes() == (candidate / name).read_bytes(), name
    # The data release: the audited warehouse and both docs sites of its run.
    record = fx.latest_record(root)
    fingerprint = next(s for s in record["steps"] if s["name"] == "publish")["detail"][
        "fingerprint"
    ]
    assert sha256(folder / "data" / "jaffle_shop.db") == fingerprint
    for page in ("index.html", "static_index.html", "manifest.json", "catalog.json"):
        assert (folder / "data" / "docs" / "dbt" / page).read_bytes() == (
            root / "warehouse" / "docs" / "dbt" / page
        ).read_bytes()
    site = root / "gx" / "uncommitted" / "data_docs" / "local_site"
    copied = sorted(
        p.relative_to(folder / "data/docs/gx") for p in (folder / "data/docs/gx").rglob("*")
    )
    assert copied == sorted(p.relative_to(site) for p in site.rglob("*"))
    assert not any(p.is_symlink() for p in folder.rglob("*"))  # self-contained

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["release_id"] == release_id
    assert manifest["git_commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert manifest["created_at"].endswith("+00:00")  # UTC
    data = manifest["data"]
    assert (data["run_id"], data["sha256"]) == (record["run_id"], fingerprint)
    assert data["row_counts"] == table_counts(root / "warehouse" / "jaffle_shop.db")
    assert data["row_counts"]["orders"] > 1000
    summary = data["validation"]
    suites = [
        s for step in record["steps"] for s in step["detail"].get("suites", [])
    ]  # what the run's gates recorded
    assert summary["success"] is True and len(summary["suites"]) == len(suites)
    assert summary["evaluated"] == sum(s["evaluated"] for s in suites) > 0
    assert manifest["model"]["metrics"]["f1"] == 0.61
    assert manifest["model"]["gate"] == {"passed": True, "reasons": []}
    assert manifest["model"]["trained_on"] == {"run_id": record["run_id"], "sha256": fingerprint}
    assert set(manifest["files"]) == {
        *(f"model/{n}" for n in fx.CANDIDATE_FILES),
        "data/jaffle_shop.db",
    }
    assert release.verify(release.current(fx.settings_for(root))) == []

    # Success is notified and names the release.
    [(_, _, body)] = webhook.posts
    assert "deploy: OK" in body["text"] and release_id in body["text"]


def test_deploying_the_same_release_twice_is_a_no_op(root, models, webhook):
    fx.write_candidate(root, models["a"])
    assert deploy(root).returncode == 0
    before = fx.tree_digest(root / "production")
    again = deploy(root, DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert again.returncode == 0, again.stderr
    assert "Nothing to deploy" in again.stdout and "already in force" in again.stdout
    assert fx.tree_digest(root / "production") == before
    assert webhook.posts == []  # nothing happened: nothing to tell


def test_releases_beyond_the_kept_number_are_removed(root, models):
    for name in ("a", "b", "c"):
        fx.write_candidate(root, models[name])
        assert deploy(root, DQ_KEEP_RELEASES="2").returncode == 0
    kept = ids(root)
    assert len(kept) == 2 and current_id(root) == kept[-1]
    assert sorted(p.name for p in (root / "production" / "releases").iterdir()) == kept


# ------------------------------------------------------------------ refusals


def _failed_latest_run(root: Path) -> str:
    """A later run whose transformed checkpoint failed: latest.json is its record."""
    record = fx.latest_record(root)
    record["run_id"] = "20991231T000000Z-fail"
    record["status"], record["exit_code"] = "gate failed", 1
    steps = [s for s in record["steps"] if s["name"] not in ("publish", "docs")]
    step = next(s for s in steps if s["name"] == "validate_transformed")
    step.update(status="failed", exit_code=1, message="GX transformed checkpoint failed:")
    record["steps"] = steps
    runs = root / "warehouse" / "runs"
    for name in (f"{record['run_id']}.json", "latest.json"):
        (runs / name).write_text(json.dumps(record), encoding="utf-8")
    return record["run_id"]


@pytest.mark.parametrize(
    ("case", "code", "reason"),
    [
        ("gate failed", 1, "model gate failed: F1 0.41 < threshold 0.60"),
        ("last run failed", 1, "did not publish (validate_transformed failed"),
        ("trained on other data", 1, "the candidate was trained on the warehouse of run older"),
        ("warehouse changed", 1, "is not what run"),
        ("no candidate", 2, "no model candidate in"),
    ],
)
def test_a_refused_deploy_leaves_production_byte_for_byte_and_says_why(
    root, models, webhook, case, code, reason
):
    fx.write_candidate(root, models["a"])
    assert deploy(root).returncode == 0
    first = current_id(root)
    before = fx.tree_digest(root / "production")

    if case == "gate failed":
        fx.write_candidate(
            root, models["b"], f1=0.41, passed=False, reasons=("F1 0.41 < threshold 0.60",)
        )
    elif case == "last run failed":
        fx.write_candidate(root, models["b"])
        _failed_latest_run(root)
    elif case == "trained on other data":
        fx.write_candidate(root, models["b"], run_id="older", warehouse_sha256="0" * 64)
    elif case == "warehouse changed":
        fx.write_candidate(root, models["b"])
        with open(root / "warehouse" / "jaffle_shop.db", "ab") as db:
            db.write(b"\0")
    else:
        shutil.rmtree(root / "warehouse" / "model" / "candidate")

    result = deploy(root, DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert result.returncode == code, result.stdout + result.stderr
    assert reason in result.stderr
    assert fx.tree_digest(root / "production") == before
    assert current_id(root) == first
    # The failure is notified, with the stage and the reason.
    [(_, _, body)] = webhook.posts
    assert "deploy: FAILED" in body["text"] and reason in body["text"]


def test_the_first_deploy_refused_creates_no_production(root, models):
    fx.write_candidate(root, models["a"], passed=False, reasons=("F1 0.41 < threshold 0.60",))
    assert deploy(root).returncode == 1
    assert not (root / "production").exists()


# ------------------------------------------------------------------ rollback


def test_rollback_restores_the_previous_release_and_refuses_past_the_oldest(root, models, webhook):
    fx.write_candidate(root, models["a"])
    assert deploy(root).returncode == 0
    fx.write_candidate(root, models["b"])
    assert deploy(root).returncode == 0
    first, second = ids(root)
    assert current_id(root) == second

    result = run_cli(root, "rollback", DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert result.returncode == 0, result.stderr
    assert current_id(root) == first and f"Rolled back to release {first}" in result.stdout
    assert ids(root) == [first, second]  # the newer one stays, to roll forward
    assert (root / "production" / "current" / "model" / "model.skops").read_bytes() == models["a"]
    assert "rollback: OK" in webhook.posts[-1][2]["text"]
    assert first in webhook.posts[-1][2]["text"]

    before = fx.tree_digest(root / "production")
    again = run_cli(root, "rollback", DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert again.returncode == 2 and "nothing to roll back to" in again.stderr
    assert fx.tree_digest(root / "production") == before
    assert "rollback: FAILED" in webhook.posts[-1][2]["text"]

    # Deploying the newer candidate again puts its very folder back into force.
    assert deploy(root).returncode == 0
    assert ids(root) == [first, second] and current_id(root) == second

    listing = run_cli(root, "releases")
    assert listing.returncode == 0
    assert listing.stdout.splitlines() == [
        f"  {release.releases(fx.settings_for(root))[0].describe()}",
        f"* {release.current(fx.settings_for(root)).describe()}",
    ]


def test_rollback_with_nothing_deployed_is_refused(root):
    result = run_cli(root, "rollback")
    assert result.returncode == 2 and "nothing is deployed" in result.stderr


def test_rollback_refuses_a_damaged_release(root, models):
    fx.write_candidate(root, models["a"])
    assert deploy(root).returncode == 0
    fx.write_candidate(root, models["b"])
    assert deploy(root).returncode == 0
    first, second = ids(root)
    (root / "production" / "releases" / first / "data" / "jaffle_shop.db").write_bytes(b"x")
    result = run_cli(root, "rollback")
    assert result.returncode == 3 and f"release {first} is damaged" in result.stderr
    assert current_id(root) == second


# ------------------------------------------------------------------ killed deploys

#: Runs ``python -m dq deploy`` in a process that SIGKILLs itself at one point.
_KILLER = """
import os, signal, sys
from dq import cli, release

point = sys.argv[1]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)

if point == "copy":  # half of the warehouse copied into the release being built
    copy = release._copy_file
    def half_then_die(source, target):
        if target.name == "jaffle_shop.db":
            data = open(source, "rb").read()
            with open(target, "wb") as out:
                out.write(data[: len(data) // 2])
            die()
        return copy(source, target)
    release._copy_file = half_then_die
elif point == "rename":  # everything written and synced, not yet renamed into place
    sync = release._fsync_tree
    release._fsync_tree = lambda root: (sync(root), die())
elif point == "switch":  # the new release in place, `current` about to be switched
    replace = os.replace
    def replace_then_die(src, dst, *args, **kwargs):
        if os.path.basename(dst) == "current":
            die()
        return replace(src, dst, *args, **kwargs)
    os.replace = replace_then_die
sys.exit(cli.main(["deploy"]))
"""


@pytest.mark.parametrize("point", ["copy", "rename", "switch"])
def test_a_deploy_killed_half_way_leaves_production_whole(root, models, point):
    fx.write_candidate(root, models["a"])
    assert deploy(root).returncode == 0
    old = current_id(root)
    fx.write_candidate(root, models["b"])

    env = project_env(root, PYTHONPATH=str(REPO))
    killed = subprocess.run(
        [sys.executable, "-c", _KILLER, point],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    # `current` is the old release, complete; no half release is listed.
    settings = fx.settings_for(root)
    assert current_id(root) == old
    assert release.verify(release.current(settings)) == []
    listed = ids(root)
    if point == "switch":  # the new one was complete and renamed: listed, not in force
        assert len(listed) == 2 and listed[0] == old
        assert release.verify(release.releases(settings)[1]) == []
    else:
        assert listed == [old]
    hidden = [
        p.name
        for p in [*(root / "production").iterdir(), *(root / "production/releases").iterdir()]
        if p.name.startswith(".") and p.name != ".lock"
    ]
    assert hidden  # what the killed process left, out of sight

    # The next deploy cleans up and brings the new release into force.
    result = deploy(root)
    assert result.returncode == 0, result.stderr
    assert current_id(root) != old and ids(root) == [old, current_id(root)]
    assert (root / "production/current/model/model.skops").read_bytes() == models["b"]
    leftovers = [
        p.name
        for p in [*(root / "production").iterdir(), *(root / "production/releases").iterdir()]
        if p.name.startswith(".") and p.name != ".lock"
    ]
    assert leftovers == []


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_model_stage_then_deploy_into_a_temporary_production(tmp_path, bundled_run, webhook):
    """What `make model` and `make deploy` do, on the bundled sample's published
    warehouse, into a production folder given by DQ_PRODUCTION_DIR."""
    source, result = bundled_run
    assert result.returncode == 0, result.stdout + result.stderr
    root = fx.published_copy(source, tmp_path / "project")
    production = tmp_path / "elsewhere" / "production"

    trained = run_cli(root, "model")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    candidate = root / "warehouse" / "model" / "candidate"
    gate = json.loads((candidate / "gate.json").read_text())
    assert gate["passed"] is True

    deployed = deploy(root, DQ_PRODUCTION_DIR=str(production), DQ_SLACK_WEBHOOK_URL=webhook.url)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert not (root / "production").exists()
    settings = fx.settings_for(root, production_dir=production)
    live = release.current(settings)
    assert live is not None and release.verify(live) == []
    assert (live.model_dir / "model.skops").read_bytes() == (candidate / "model.skops").read_bytes()
    assert live.manifest["model"]["metrics"] == json.loads((candidate / "metrics.json").read_text())
    assert live.manifest["data"]["run_id"] == fx.latest_record(root)["run_id"]
    assert any(
        "deploy: OK" in body["text"] and live.release_id in body["text"]
        for *_, body in webhook.posts
    )
