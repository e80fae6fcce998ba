"""CI/CD: the Jenkinsfile and `make ci` run the same stages in the same order, the
Jenkinsfile is what Jenkins expects (npm-groovy-lint), and CI notifications name
the build and the stage."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

JENKINSFILE = (REPO / "Jenkinsfile").read_text(encoding="utf-8")


def _block(text: str, name: str) -> str:
    """The body of the first ``name { ... }`` block (braces balanced, comments skipped)."""
    start = re.search(rf"^\s*{name}\s*\{{", text, re.M)
    assert start, f"no {name} block"
    depth, i = 1, start.end()
    while depth:
        char = text[i]
        if text.startswith("//", i):
            i = text.index("\n", i)
            continue
        if char in "'\"":
            i = text.index(char, i + 1)
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        i += 1
    return text[start.end() : i - 1]


def jenkins_stages() -> list[tuple[str, list[str]]]:
    """Each ``stage('Name')`` of the ``stages`` block and the make targets it runs."""
    stages = _block(JENKINSFILE, "stages")
    found = []
    for match in re.finditer(r"stage\('([^']+)'\)\s*\{", stages):
        body = _block(stages[match.start() :], r"stage\('[^']+'\)")
        found.append((match.group(1), re.findall(r"\bsh\s+'make ([a-z-]+)'", body)))
    return found


def make_ci_stages() -> list[str]:
    """The targets `make ci` runs, in order, read from a dry run of it."""
    out = subprocess.run(
        ["make", "-n", "ci", "VENV=/nonexistent"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.findall(r"^=== make ([a-z-]+)$", out, re.M)


def test_jenkinsfile_stages_and_make_ci_run_the_same_targets_in_order():
    stages = jenkins_stages()
    assert [targets for _, targets in stages] == [[t] for _, (t,) in stages]  # one each
    jenkins = [targets[0] for _, targets in stages]
    assert jenkins == make_ci_stages() == ["lint", "test", "validate", "model", "deploy"]
    assert [name.lower() for name, _ in stages] == jenkins
    # The one declaration both follow.
    declared = re.search(r"^CI_STAGES := (.*)$", (REPO / "Makefile").read_text(), re.M)
    assert declared.group(1).split() == jenkins


def test_jenkinsfile_triggers_on_change_notifies_and_keeps_secrets_in_credentials():
    assert "pipeline {" in JENKINSFILE and "agent any" in JENKINSFILE
    assert re.search(r"pollSCM\('H/5 \* \* \* \*'\)", _block(JENKINSFILE, "triggers"))
    environment = _block(JENKINSFILE, "environment")
    assert "DQ_SLACK_WEBHOOK_URL = credentials('dq-slack-webhook')" in environment
    post = _block(JENKINSFILE, "post")
    assert "sh 'make ci-notify OUTCOME=success'" in _block(post, "success")
    assert "sh 'make ci-notify OUTCOME=failure'" in _block(post, "failure")
    # Groovy never interpolates a secret: no double-quoted strings with ${...}.
    assert not re.search(r'"[^"\n]*\$\{', JENKINSFILE)


def _webhook_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DQ_", "BUILD_", "JOB_"))}
    return {**env, "DQ_SLACK_WEBHOOK_URL": url, **extra}


def test_ci_notify_names_the_build_and_the_failed_stage(tmp_path, webhook):
    env = _webhook_env(
        webhook.url,
        DQ_ROOT=str(tmp_path),
        DQ_STAGE="model",
        JOB_NAME="jaffle",
        BUILD_NUMBER="7",
        BUILD_URL="http://jenkins.example/job/jaffle/7/",
    )
    result = subprocess.run(
        ["make", "-s", "ci-notify", "OUTCOME=failure", f"VENV={sys.prefix}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [(_, _, body)] = webhook.posts
    assert "ci: FAILED" in body["text"]
    assert "jaffle #7" in body["text"] and "stage model failed" in body["text"]
    assert "http://jenkins.example/job/jaffle/7/" in body["text"]


def test_ci_notify_on_success_names_the_release_in_force(tmp_path, webhook):
    release_id = "20261128T081502.123456Z-1a2b3c4d"
    production = tmp_path / "production"
    (production / "releases" / release_id).mkdir(parents=True)
    (production / "releases" / release_id / "manifest.json").write_text("{}")
    (production / "current").symlink_to(f"releases/{release_id}")
    env = _webhook_env(webhook.url, DQ_ROOT=str(tmp_path), JOB_NAME="jaffle", BUILD_NUMBER="8")
    result = subprocess.run(
        ["make", "-s", "ci-notify", "OUTCOME=success", f"VENV={sys.prefix}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [(_, _, body)] = webhook.posts
    assert "ci: OK" in body["text"] and f"release {release_id} is in force" in body["text"]
    assert "lint test validate model deploy passed" in body["text"]


def _groovy_lint() -> Path | None:
    path = REPO / "node_modules" / ".bin" / "npm-groovy-lint"
    return path if path.exists() and shutil.which("java") else None


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.skipif(_groovy_lint() is None, reason="needs Java and npm-groovy-lint (make setup-ui)")
def test_jenkinsfile_passes_npm_groovy_lint_and_leaves_no_server():
    """What `make lint-jenkins` runs (~20 s: CodeNarc on the JVM), without its server."""
    started = time.monotonic()
    result = subprocess.run(
        [str(_groovy_lint()), "--noserver", "--failon", "error", "Jenkinsfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(f"npm-groovy-lint took {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for severity in ("Error", "Warning"):  # clean, not just passing
        assert re.search(rf"{severity}\W+0\b", result.stdout), result.stdout[-2000:]
    assert not _listening(7484)  # --noserver: no CodeNarc server left on its port
