"""Notifications: real HTTP posts and real SMTP sessions, captured on 127.0.0.1."""

from __future__ import annotations

import base64
import re
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from dq import config, notify, pipeline


def _run(tmp_path: Path, failed: bool) -> pipeline.Run:
    settings = config.for_root(tmp_path)
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
                self._say("250-localhost" if self.server.echo_auth else "250 localhost")
                if self.server.echo_auth:
                    self._say("250 AUTH PLAIN")
            elif verb == "AUTH":
                # A careless (or hostile) server: quotes the credentials in its refusal,
                # encoded as sent and decoded.
                sent = line.decode().split()[-1]
                decoded = base64.b64decode(sent).decode("utf-8", "replace").replace("\0", " ")
                self._say(f"535 5.7.8 bad login {sent} for{decoded}")
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
    server.mails, server.echo_auth = [], False
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
    port = webhook.server_address[1]
    assert f"webhook notification to http://127.0.0.1:{port}/… failed: HTTPError: HTTP 500" in (
        caplog.text
    )
    assert webhook.url not in caplog.text and "/services/T0/B0/x" not in caplog.text


def test_only_http_webhooks(tmp_path, caplog):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    assert (
        notify.notify_run(_run(tmp_path, failed=True), {"DQ_SLACK_WEBHOOK_URL": secret.as_uri()})
        == []
    )
    assert "must be an http(s) URL" in caplog.text


def test_a_run_that_cannot_start_is_notified_too(tmp_path, webhook, monkeypatch):
    """The CLI path (run_all) for a run refused before it began: one alert, exit 3."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DQ_ROOT", str(tmp_path))
    monkeypatch.setenv("DQ_WAREHOUSE_DIR", str(blocker / "warehouse"))
    monkeypatch.setenv("DQ_SLACK_WEBHOOK_URL", webhook.url)
    run = pipeline.run_all(config.load(), run_id="cannot-start")
    assert run.exit_code == pipeline.EXIT_ENVIRONMENT
    assert len(webhook.posts) == 1
    text = webhook.posts[0][2]["text"]
    assert "cannot-start" in text and "begin" in text and "cannot be created" in text


def test_the_dag_begin_path_notifies_with_the_airflow_run_id(tmp_path, webhook, monkeypatch):
    """The DAG's setup task calls pipeline.begin: a refusal there is notified once."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DQ_ROOT", str(tmp_path))
    monkeypatch.setenv("DQ_WAREHOUSE_DIR", str(blocker / "warehouse"))
    monkeypatch.setenv("DQ_SLACK_WEBHOOK_URL", webhook.url)
    with pytest.raises(pipeline.EnvironmentFailure) as raised:
        pipeline.begin(config.load(), origin="airflow", airflow_run_id="scheduled__2026-11-26")
    assert raised.value.run.status == "environment failure"
    assert len(webhook.posts) == 1
    text = webhook.posts[0][2]["text"]
    assert "Airflow run: scheduled__2026-11-26" in text and "cannot be created" in text


# --- secrets never leak -----------------------------------------------------
# Each value carries two markers standing for its token (or password): neither may
# show up in a log line, on stdout/stderr or in the notification, whatever fails.
TOKEN, TOKEN2 = "XOXBTOKEN7g2h", "TAILSECRET9q8w"

MALFORMED_WEBHOOKS = {
    "space": f"https://hooks.example.org/services/T1/B1/{TOKEN} {TOKEN2}",
    "newline": f"https://hooks.example.org/services/T1/B1/{TOKEN}\n{TOKEN2}",
    "carriage-return": f"https://hooks.example.org/services/{TOKEN}\r\nX-Injected: {TOKEN2}",
    "tab-in-query": f"https://hooks.example.org/hook?token={TOKEN}\t{TOKEN2}",
    "nul": f"https://hooks.example.org/services/{TOKEN}\x00{TOKEN2}",
    "non-numeric-port": f"https://hooks.example.org:44x3/services/{TOKEN}/{TOKEN2}",
    "port-out-of-range": f"https://hooks.example.org:99999/services/{TOKEN}/{TOKEN2}",
    "unicode": f"https://hooks.example.org/services/{TOKEN}é{TOKEN2}",
    "unicode-host": f"https://höoks.example.org/services/{TOKEN}/{TOKEN2}",
    "very-long": f"https://hooks.example.org/services/{TOKEN}/{'A' * 20000} {TOKEN2}",
    "user-password": f"http://{TOKEN}:{TOKEN2}@hooks.example.org/services/x",
    "encoded-newline": f"https://hooks.example.org/services/{TOKEN}%0a{TOKEN2}",
    "no-scheme": f"hooks.example.org/services/{TOKEN}/{TOKEN2}",
    "file-scheme": f"file:///etc/{TOKEN}/{TOKEN2}",
    "bracket-host": f"https://[{TOKEN}/{TOKEN2}",
}


def _assert_secret_free(*texts: str) -> None:
    for text in texts:
        for marker in (TOKEN, TOKEN2):
            assert marker not in text
            assert base64.b64encode(marker.encode()).decode() not in text


@pytest.mark.parametrize("url", MALFORMED_WEBHOOKS.values(), ids=MALFORMED_WEBHOOKS.keys())
def test_a_malformed_webhook_url_is_reported_without_its_token(tmp_path, caplog, capsys, url):
    caplog.set_level("INFO", logger="dq.notify")
    assert notify.notify_run(_run(tmp_path, failed=True), {"DQ_SLACK_WEBHOOK_URL": url}) == []
    out, err = capsys.readouterr()
    _assert_secret_free(caplog.text, out, err)
    [failure] = [r.getMessage() for r in caplog.records if "notification to" in r.getMessage()]
    # Still says which channel, where (redacted) and what kind of failure.
    target = r"(https?://(hooks\.example\.org|\?)(:\?)?/…|DQ_SLACK_WEBHOOK_URL \(.+\))"
    assert re.search(f"webhook notification to {target} failed: NotifyError: ", failure), failure


def test_a_token_with_an_encoded_newline_is_not_sent(tmp_path, webhook, caplog):
    url = f"{webhook.url}{TOKEN}%0a{TOKEN2}"
    assert notify.notify_run(_run(tmp_path, failed=True), {"DQ_SLACK_WEBHOOK_URL": url}) == []
    assert webhook.posts == []
    _assert_secret_free(caplog.text)
    assert "percent-encoded control character" in caplog.text


@pytest.mark.parametrize(
    ("answer", "padding"), [(404, ""), (500, ""), (414, "A" * 20000)], ids=["404", "500", "long"]
)
def test_an_http_error_is_reported_by_status_only(tmp_path, webhook, caplog, answer, padding):
    webhook.answer = answer
    url = f"{webhook.url}/{TOKEN}{padding}?token={TOKEN2}"
    assert notify.notify_run(_run(tmp_path, failed=True), {"DQ_SLACK_WEBHOOK_URL": url}) == []
    _assert_secret_free(caplog.text)
    assert f"HTTPError: HTTP {answer}" in caplog.text


def test_an_unreachable_webhook_is_reported_without_its_token(tmp_path, caplog):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/{TOKEN}/{TOKEN2}"
    assert notify.notify_run(_run(tmp_path, failed=True), {"DQ_SLACK_WEBHOOK_URL": url}) == []
    _assert_secret_free(caplog.text)
    assert f"to http://127.0.0.1:{port}/… failed: URLError: ConnectionRefusedError" in caplog.text


SMTP_LOGINS = {
    "plain": (f"{TOKEN}@example.org", TOKEN2),
    "space": (f"{TOKEN} user", f"{TOKEN2} pw"),
    "newline-in-password": (f"{TOKEN}@example.org", f"pw\n{TOKEN2}"),
    "newline-in-user": (f"{TOKEN}\r\nRCPT TO:<x@example.org>", TOKEN2),
    "unicode": (f"{TOKEN}ü@example.org", f"{TOKEN2}ß"),
    "very-long": (f"{TOKEN}@example.org", TOKEN2 + "p" * 20000),
    "url-like": (f"http://{TOKEN}:{TOKEN2}@host", f"%0a{TOKEN2}"),
}


@pytest.mark.parametrize(("user", "password"), SMTP_LOGINS.values(), ids=SMTP_LOGINS.keys())
def test_smtp_login_failures_never_show_the_login(
    tmp_path, smtp_server, caplog, capsys, user, password
):
    smtp_server.echo_auth = True
    env = {
        "DQ_SMTP_HOST": "127.0.0.1",
        "DQ_SMTP_PORT": str(smtp_server.server_address[1]),
        "DQ_SMTP_TO": "data-team@example.org",
        "DQ_SMTP_USER": user,
        "DQ_SMTP_PASSWORD": password,
    }
    caplog.set_level("INFO", logger="dq.notify")
    assert notify.notify_run(_run(tmp_path, failed=True), env) == []
    out, err = capsys.readouterr()
    _assert_secret_free(caplog.text, out, err)
    assert smtp_server.mails == []
    port = smtp_server.server_address[1]
    assert f"e-mail notification via smtp://127.0.0.1:{port} failed: " in caplog.text


def test_a_refused_login_still_says_what_the_server_answered(tmp_path, smtp_server, caplog):
    smtp_server.echo_auth = True
    env = {
        "DQ_SMTP_HOST": "127.0.0.1",
        "DQ_SMTP_PORT": str(smtp_server.server_address[1]),
        "DQ_SMTP_TO": "data-team@example.org",
        "DQ_SMTP_USER": f"{TOKEN}@example.org",
        "DQ_SMTP_PASSWORD": TOKEN2,
    }
    assert notify.notify_run(_run(tmp_path, failed=True), env) == []
    _assert_secret_free(caplog.text)
    assert "SMTPAuthenticationError: 535 5.7.8 bad login *** for" in caplog.text


@pytest.mark.parametrize("port", ["25x", "", "0", "70000", "٢٥"])
def test_a_bad_smtp_port_is_reported_not_raised(tmp_path, caplog, port):
    env = {"DQ_SMTP_HOST": "127.0.0.1", "DQ_SMTP_PORT": port, "DQ_SMTP_TO": "a@example.org"}
    assert notify.notify_run(_run(tmp_path, failed=True), env) == []
    assert "NotifyError: DQ_SMTP_PORT must be a number from 1 to 65535" in caplog.text


def test_secrets_quoted_by_a_step_stay_out_of_logs_and_the_message(tmp_path, webhook, caplog):
    """Belt and braces: a step message that quotes a secret (the Airflow password,
    the SMTP password) is redacted in what is sent and in what is logged."""
    run = _run(tmp_path, failed=True)
    run.steps[-1].message = f"could not log in as admin/{TOKEN} (smtp password {TOKEN2})"
    env = {
        "DQ_SLACK_WEBHOOK_URL": webhook.url,
        "DQ_AIRFLOW_PASSWORD": TOKEN,
        "DQ_SMTP_PASSWORD": TOKEN2,
    }
    caplog.set_level("DEBUG", logger="dq.notify")
    assert notify.notify_run(run, env) == ["webhook"]
    text = webhook.posts[0][2]["text"]
    _assert_secret_free(text, caplog.text)
    assert "could not log in as admin/*** (smtp password ***)" in text


def test_notify_run_never_raises(tmp_path, caplog, monkeypatch):
    def broken(run, env=None):
        raise RuntimeError(f"run record unreadable: {TOKEN}")

    monkeypatch.setattr(notify, "compose", broken)
    env = {"DQ_SLACK_WEBHOOK_URL": f"https://hooks.example.org/{TOKEN}"}
    assert notify.notify_run(_run(tmp_path, failed=True), env) == []
    _assert_secret_free(caplog.text)
    assert "notification failed: RuntimeError" in caplog.text


@pytest.mark.parametrize(
    "shown",
    [
        f"InvalidURL: URL can't contain control characters. '/services/{TOKEN}' (found ' ')",
        f"nonnumeric port: '{TOKEN2}@hooks.example.org'",
        f"ValueError: prohibited newline characters: AUTH PLAIN {TOKEN}\\n{TOKEN2}",
        "535 " + base64.b64encode(f"\0{TOKEN}\0pw {TOKEN2}".encode()).decode(),
        f"%2Fservices%2F{TOKEN}",
    ],
)
def test_redact_blanks_secrets_however_they_are_quoted(shown):
    env = {
        "DQ_SLACK_WEBHOOK_URL": f"https://hooks.example.org/services/{TOKEN} x",
        "DQ_SMTP_USER": TOKEN,
        "DQ_SMTP_PASSWORD": f"pw {TOKEN2}",
    }
    env["DQ_SMTP_PASSWORD"] = f"pw {TOKEN2}" if "535" in shown else f"{TOKEN2}"
    if "\\n" in shown:
        env["DQ_SMTP_PASSWORD"] = f"\n{TOKEN2}"
    redacted = notify.redact(shown, env)
    _assert_secret_free(redacted)
    assert "***" in redacted
    assert notify.redact("webhook hooks.example.org services", env) == (
        "webhook hooks.example.org services"
    )
