"""docker-compose.yml and the Dockerfile, checked where no Docker engine runs.

The compose file must start the containers with the settings
:func:`dq.airflow_local.airflow_settings` gives the processes the distributed
test starts (host names aside), the commands :func:`dq.airflow_local.command_args`
gives them, secrets only from the environment, and be valid against the Compose
Specification (the JSON schema check-jsonschema bundles). hadolint lints the
Dockerfile and fails on any finding.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from dq import airflow_local, config
from tests.conftest import REPO

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]
#: What docker compose would read from the user's .env (sample values, URL-safe).
USER_ENV = {
    "DQ_PG_PASSWORD": "pg-sample-Pw1",
    "DQ_REDIS_PASSWORD": "redis-sample-Pw2",
    "AIRFLOW_JWT_SECRET": "jwt-sample",
    "AIRFLOW_API_SECRET_KEY": "api-sample",
    "AIRFLOW_FERNET_KEY": "fernet-sample",
}
#: Settings only containers need: one AIRFLOW_HOME per container, so the secrets
#: Airflow draws into a shared airflow.cfg outside containers must be given.
CONTAINER_SECRETS = {
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?\?[^}]*)?\}")


def _interpolate(value) -> str:
    """Compose's ``${NAME}`` / ``${NAME:?message}``, from :data:`USER_ENV` (a
    variable it lacks fails the test, as docker compose would refuse to start)."""
    return _VARIABLE.sub(lambda m: USER_ENV[m.group(1)], str(value))


def _container_settings() -> dict[str, str]:
    """What ``airflow_settings`` gives containers: the defaults of dq/config.py,
    the servers by their service names, the API bound to every interface of its
    container and reached as ``airflow-apiserver``."""
    defaults = config.for_root(Path("/opt/dq"))
    services = airflow_local.Services(
        pg_host="postgres",
        pg_port=5432,
        pg_user=defaults.pg_user,
        pg_password=USER_ENV["DQ_PG_PASSWORD"],
        redis_host="redis",
        redis_port=6379,
        redis_password=USER_ENV["DQ_REDIS_PASSWORD"],
        worker_concurrency=defaults.airflow_worker_concurrency,
    )
    return airflow_local.airflow_settings(
        Path("/opt/airflow"),
        Path("/opt/dq"),
        port=8080,
        bind="0.0.0.0",
        api_host="airflow-apiserver",
        public_url="http://localhost:8080",
        services=services,
    )


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_every_airflow_container_gets_the_settings_the_tests_start_with(service):
    environment = {k: _interpolate(v) for k, v in SERVICES[service]["environment"].items()}
    hostname = SERVICES[service].get("hostname")
    expected = _container_settings()
    if hostname:  # a worker
        expected |= airflow_local.worker_settings(hostname)
    airflow = {
        k: v
        for k, v in environment.items()
        if k.startswith("AIRFLOW__") and k not in CONTAINER_SECRETS
    }
    assert airflow == {k: v for k, v in expected.items() if k.startswith("AIRFLOW__")}
    assert environment.get("DQ_AIRFLOW_WORKER_NAME") == hostname
    # The pipeline's PostgreSQL settings (DQ_TARGET=postgres) name the same server.
    defaults = config.for_root(Path("/opt/dq"))
    assert {k: v for k, v in environment.items() if k.startswith("DQ_PG_")} == {
        "DQ_PG_HOST": "postgres",
        "DQ_PG_PORT": "5432",
        "DQ_PG_USER": defaults.pg_user,
        "DQ_PG_PASSWORD": USER_ENV["DQ_PG_PASSWORD"],
    }
    assert set(environment) >= CONTAINER_SECRETS


def test_secrets_come_only_from_the_users_environment():
    raw = {
        (service, key): str(value)
        for service, spec in SERVICES.items()
        for key, value in (spec.get("environment") or {}).items()
    }
    holds_secret = re.compile(
        r"PASSWORD$|SECRET|FERNET_KEY|SQL_ALCHEMY_CONN|BROKER_URL|RESULT_BACKEND|REDISCLI_AUTH"
    )
    secret = {k: v for k, v in raw.items() if holds_secret.search(k[1])}
    assert len(secret) == 2 + 7 * len(AIRFLOW_SERVICES)  # postgres, redis, 7 per Airflow service
    command = SERVICES["redis"]["command"]
    secret["redis", "--requirepass"] = command[command.index("--requirepass") + 1]
    for key, value in secret.items():
        assert re.search(r"\$\{\w+:\?[^}]+\}", value), f"{key}: not from the environment"
    # Every variable the file needs is required (":?"): no silent empty password.
    names = set(re.findall(r"\$\{(\w+)", COMPOSE_TEXT))
    assert names == set(USER_ENV)
    assert not re.search(r"\$\{\w+(:?-)", COMPOSE_TEXT)
    # .env (where users put them) is ignored by git and kept out of the image, with
    # the passwords the project draws on this machine.
    assert ".env" in (REPO / ".gitignore").read_text(encoding="utf-8").split()
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", ".services", "airflow_home", ".git", ".venv"} <= set(ignored)


def test_the_containers_run_the_commands_start_runs():
    assert SERVICES["airflow-init"]["command"] == ["db", "migrate"]
    for component in airflow_local.COMPONENTS:
        service = "airflow-apiserver" if component == "api-server" else f"airflow-{component}"
        assert SERVICES[service]["command"] == airflow_local.command_args(component)
    workers = {s["hostname"]: s for s in SERVICES.values() if "hostname" in s}
    default_workers = config.for_root(Path("/opt/dq")).airflow_workers
    assert sorted(workers) == airflow_local.worker_names(default_workers)
    for hostname, spec in workers.items():
        assert spec["command"] == airflow_local.command_args(hostname)
    # The broker keeps nothing on disk, as the project's own Redis.
    assert SERVICES["redis"]["command"][:3] == ["redis-server", "--save", ""]


def test_compose_structure():
    assert set(SERVICES) == {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker-1",
        "airflow-worker-2",
    }
    for name, spec in SERVICES.items():
        for target in spec.get("depends_on", {}):
            assert target in SERVICES and target != name, (name, target)
    for name in ("postgres", "redis", "airflow-apiserver"):
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD", name
    # One image for every Airflow service, built from this repository's Dockerfile.
    assert {(SERVICES[s]["image"], SERVICES[s]["build"]) for s in AIRFLOW_SERVICES} == {
        ("dq-airflow:latest", ".")
    }
    # Every service but the migration waits for it to succeed, and for its servers.
    for name in AIRFLOW_SERVICES:
        after = SERVICES[name]["depends_on"]
        assert after["postgres"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert after["redis"]["condition"] == "service_healthy"
            assert after["airflow-init"]["condition"] == "service_completed_successfully"
    # The tasks share logs, the warehouse, the GX results and the releases.
    shared = {v.split(":")[1] for v in SERVICES["airflow-worker-1"]["volumes"]}
    assert shared == {
        "/opt/airflow/logs",
        "/opt/dq/warehouse",
        "/opt/dq/gx/uncommitted",
        "/opt/dq/production",
    }
    for name in AIRFLOW_SERVICES:
        assert {v.split(":")[1] for v in SERVICES[name]["volumes"]} == shared
    # The only published port, on the host's loopback.
    published = [p for spec in SERVICES.values() for p in spec.get("ports", [])]
    assert published == ["127.0.0.1:8080:8080"]


def test_compose_file_is_valid_against_the_compose_specification():
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors
    # The schema is not toothless here: a misspelt key fails it.
    broken = {**COMPOSE, "services": {**SERVICES, "redis": {**SERVICES["redis"], "comand": []}}}
    assert list(validator.iter_errors(broken))


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    hadolint = Path(sys.executable).with_name("hadolint")
    return subprocess.run(
        [str(hadolint), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path):
    done = _hadolint(REPO / "Dockerfile")
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    # ...and it does fail on what it should (an unpinned base image, root user).
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install uv\n", encoding="utf-8")
    done = _hadolint(bad)
    assert done.returncode != 0 and "DL3006" in done.stdout and "DL3013" in done.stdout


def test_the_image_runs_as_a_non_root_user():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0", "0:0")
    assert "uv pip install" in text and "requirements.txt" in text
