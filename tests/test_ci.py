"""`.ci/run` runs exactly the README's test command and fails when a test fails."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Two commands\s+```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_ci_runs_the_readme_test_command():
    demo, test = _readme_commands()
    assert (demo, test) == ("make demo", "make test")
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip() for line in script.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert commands[-1] == f"exec {test}"


@pytest.mark.parametrize("body, code", [("assert 1 + 1 == 2", 0), ("assert 1 + 1 == 3", 1)])
def test_ci_exit_code_follows_the_tests(tmp_path, body, code):
    test_file = tmp_path / "test_probe.py"
    test_file.write_text(f"def test_probe():\n    {body}\n")
    env = {**os.environ, "CI": "true", "PYTEST_ARGS": f"{test_file} -p no:cacheprovider -q"}
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "run")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (result.returncode == 0) == (code == 0), result.stdout[-2000:] + result.stderr[-2000:]
    assert ("1 passed" if code == 0 else "1 failed") in result.stdout
