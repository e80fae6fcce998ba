"""Notifications: real HTTP posts and real SMTP sessions, captured on 127.0.0.1."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dq import config, notify, pipeline


def _run(tmp_path: Path, failed: bool) -> pipeline.Run:
    settings = config.Settings(
        root=tmp_path,
        seeds_dir=tmp_path / "seeds",
        dbt_project_dir=tmp_path / "dbt_project",
        profiles_dir=tmp_path,
        gx_dir=tmp_path / "gx",
        warehouse_dir=tmp_path / "warehouse",
    )
    run = pipeline.Run(settings=settings, run_id="20261126T120000Z-abcd")
    run.steps.append(pipeline.StepRecord("seed", "ok", 1.0))
    failures = ["rejected share of raw_orders is at most 5.0%"] if failed else []
    suites = [
        {
            "suite": "stg_orders",
            "layer": "transformed",
            "evaluated": 12,
            "passed": 11,
            "failed_critical": failures,
            "failed_warning": [],
        }
    ]
    run.steps.append(
        pipeline.StepRecord(
            "validate_transformed",
            "failed" if failed else "ok",
            2.0,
            message="GX transformed checkpoint failed:\n  stg_orders: ..." if failed else "",
            exit_code=pipeline.EXIT_GATE if failed else 0,
            detail={"suites": suites},
        )
    )
    run.exit_code = pipeline.EXIT_GATE if failed else pipeline.EXIT_OK
    run.status = "gate failed" if failed else "published"
    return run


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.answer)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.posts, server.answer = [], 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/x"
    yield server
    server.shutdown()
    server.server_close()


class _SMTP(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 localhost test SMTP")
        envelope = {"from": None, "to": [], "data": b""}
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 localhost")
            elif verb == "MAIL":
                envelope["from"] = line.decode().strip()
                self._say("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(line.decode().strip().split(":", 1)[1].strip("<> "))
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 end with .")
                chunks = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                envelope["data"] = b"".join(chunks)
                self.server.mails.append(envelope)
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 OK")


@pytest.fixture
def smtp_server() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
    server.daemon_threads = True
    server.mails = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_failure_goes_to_webhook_and_email(tmp_path, webhook, smtp_server):
    env = {
        "DQ_SLACK_WEBHOOK_URL": webhook.url,
        "DQ_SMTP_HOST": "127.0.0.1",
        "DQ_SMTP_PORT": str(smtp_server.server_address[1]),
        "DQ_SMTP_FROM": "dq@example.org",
        "DQ_SMTP_TO": "data-team@example.org, oncall@example.org",
        "DQ_DOCS_BASE_URL": "http://127.0.0.1:8765/",
    }
    sent = notify.notify_run(_run(tmp_path, failed=True), env)
    assert sent == ["webhook", "email:data-team@example.org", "email:oncall@example.org"]

    [(path, content_type, payload)] = webhook.posts
    assert path == "/services/T0/B0/x" and content_type == "application/json"
    text = payload["text"]
    assert "GATE FAILED" in text
    assert "Failed step: validate_transformed" in text
    assert "transformed/stg_orders" in text
    assert "rejected share of raw_orders is at most 5.0%" in text
    assert "http://127.0.0.1:8765/gx/index.html" in text

    [mail] = smtp_server.mails
    assert mail["to"] == ["data-team@example.org", "oncall@example.org"]
    message = message_from_bytes(mail["data"], policy=default_policy)
    assert message["From"] == "dq@example.org"
    assert "GATE FAILED" in message["Subject"]
    assert "rejected share of raw_orders" in message.get_content()


def test_success_links_to_local_files_without_docs_url(tmp_path, webhook):
    run = _run(tmp_path, failed=False)
    assert notify.notify_run(run, {"DQ_SLACK_WEBHOOK_URL": webhook.url}) == ["webhook"]
    text = webhook.posts[0][2]["text"]
    assert "PUBLISHED" in text and "published the warehouse" in text
    assert "Failed" not in text
    assert str(run.settings.data_docs_dir / "index.html") in text


def test_nothing_configured_logs_and_carries_on(tmp_path, caplog):
    caplog.set_level("INFO", logger="dq.notify")
    assert notify.notify_run(_run(tmp_path, failed=True), {}) == []
    assert "no notification channel configured" in caplog.text


def test_notify_on_failure_only_skips_successes(tmp_path, webhook):
    env = {"DQ_SLACK_WEBHOOK_URL": webhook.url, "DQ_NOTIFY_ON": "failure"}
    assert notify.notify_run(_run(tmp_path, failed=False), env) == []
    assert notify.notify_run(_run(tmp_path, failed=True), env) == ["webhook"]


def test_broken_channel_is_logged_not_raised_and_url_kept_secret(tmp_path, webhook, caplog):
    webhook.answer = 500
    assert (
        notify.notify_run(_run(tmp_path, failed=True), {"DQ_SLACK_WEBHOOK_URL": webhook.url}) == []
    )
    assert "webhook notification failed" in caplog.text
    assert webhook.url not in caplog.text


def test_only_http_webhooks(tmp_path, caplog):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    assert (
        notify.notify_run(_run(tmp_path, failed=True), {"DQ_SLACK_WEBHOOK_URL": secret.as_uri()})
        == []
    )
    assert "must be an http(s) URL" in caplog.text


def test_a_run_that_cannot_start_is_notified_too(tmp_path, webhook, monkeypatch):
    """The CLI path (run_all) for a run refused before it began: one alert, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DQ_ROOT", str(tmp_path))
    monkeypatch.setenv("DQ_WAREHOUSE_DIR", str(blocker / "warehouse"))
    monkeypatch.setenv("DQ_SLACK_WEBHOOK_URL", webhook.url)
    run = pipeline.run_all(config.load(), run_id="cannot-start")
    assert run.exit_code == pipeline.EXIT_INPUT
    assert len(webhook.posts) == 1
    text = webhook.posts[0][2]["text"]
    assert "cannot-start" in text and "start" in text and "cannot be created" in text


def test_the_dag_start_task_failure_callback_notifies(tmp_path, webhook, monkeypatch):
    import importlib.util

    from tests.conftest import REPO

    monkeypatch.setenv("DQ_ROOT", str(tmp_path))
    monkeypatch.setenv("DQ_SLACK_WEBHOOK_URL", webhook.url)
    spec = importlib.util.spec_from_file_location("dq_dag", REPO / "dags" / "jaffle_shop.py")
    dag_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dag_module)
    dag_module._notify_start_failed(
        {"run_id": "scheduled__2026-11-26", "exception": RuntimeError("disk full")}
    )
    text = webhook.posts[0][2]["text"]
    assert "airflow-scheduled__2026-11-26" in text and "disk full" in text
