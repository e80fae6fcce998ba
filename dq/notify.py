"""Tell people how a run went: a Slack-compatible webhook and/or e-mail.

One code path for the command line and the Airflow DAG: both hand a finished
:class:`~dq.pipeline.Run` to :func:`notify_run`. Channels come from the
environment only, so no secret lives in the repository:

=========================  ===================================================
``DQ_SLACK_WEBHOOK_URL``   incoming-webhook URL (Slack, Mattermost, Rocket.Chat
                           and Teams "Slack-compatible" hooks accept ``{"text"}``)
``DQ_SMTP_HOST``           SMTP server; e-mail is sent when this and ``DQ_SMTP_TO`` are set
``DQ_SMTP_PORT``           default 25; 465 means implicit TLS
``DQ_SMTP_STARTTLS``       ``1`` to upgrade with STARTTLS (default on for port 587)
``DQ_SMTP_USER``           login, optional (``DQ_SMTP_PASSWORD`` with it)
``DQ_SMTP_FROM``           sender, default ``dq@localhost``
``DQ_SMTP_TO``             recipients, comma-separated
``DQ_NOTIFY_ON``           ``failure,success`` (default) or just one of them
``DQ_DOCS_BASE_URL``       where ``python -m dq serve`` is reachable; links point
                           there instead of at local file paths
=========================  ===================================================

A notification that cannot be delivered is logged and skipped: telling people
about a run must never change the run's outcome.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from urllib.parse import urlparse

from dq.pipeline import EXIT_OK, Run

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0


def docs_links(run: Run, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where to read about this run: GX Data Docs and dbt docs, served or as files.

    The served layout (``/gx/``, ``/dbt/``) is the one :mod:`dq.serve` uses.
    """
    env = os.environ if env is None else env
    base = env.get("DQ_DOCS_BASE_URL", "").rstrip("/")
    if base:
        return {
            "data_docs": f"{base}/gx/index.html",
            "dbt_docs": f"{base}/dbt/index.html",
            "run_record": f"{base}/runs/{run.run_id}.json",
        }
    info = run.to_dict()
    return {
        "data_docs": info["data_docs"],
        "dbt_docs": info["dbt_docs"],
        "run_record": str(run.record_path),
    }


def failed_suites(run: Run) -> list[tuple[str, list[str]]]:
    """``(layer/suite, failed critical expectations)`` for every suite that failed."""
    out = []
    for step in run.steps:
        for suite in step.detail.get("suites", []):
            if suite.get("failed_critical"):
                out.append((f"{suite['layer']}/{suite['suite']}", list(suite["failed_critical"])))
    return out


def compose(run: Run, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Subject line and plain-text body for one run (also used for the webhook)."""
    ok = run.exit_code == EXIT_OK
    subject = f"[dq] jaffle_shop run {run.run_id}: {run.status.upper()}"
    lines = [
        f"Run {run.run_id} {'published the warehouse' if ok else 'did NOT publish'}"
        f" (status: {run.status}, exit {run.exit_code}).",
    ]
    failed_steps = [s for s in run.steps if s.status == "failed"]
    for step in failed_steps:
        first = step.message.splitlines()[0] if step.message else "(no message)"
        lines.append(f"Failed step: {step.name} ({first})")
    suites = failed_suites(run)
    if suites:
        lines.append("Failed expectations:")
        for name, messages in suites:
            lines.append(f"  {name}:")
            lines += [f"    - {m}" for m in messages]
    links = docs_links(run, env)
    lines += [
        f"GX Data Docs: {links['data_docs']}",
        f"dbt docs:     {links['dbt_docs']}",
        f"Run record:   {links['run_record']}",
    ]
    return subject, "\n".join(lines)


def _wanted(run: Run, env: Mapping[str, str]) -> bool:
    on = {p.strip().lower() for p in env.get("DQ_NOTIFY_ON", "failure,success").split(",")}
    return ("success" if run.exit_code == EXIT_OK else "failure") in on


def send_webhook(url: str, subject: str, body: str) -> None:
    """POST ``{"text": ...}`` as JSON; raises on anything but a 2xx answer."""
    # urllib also opens file:// and ftp:// URLs; a webhook is only ever http(s).
    if urlparse(url).scheme not in ("http", "https"):
        raise ValueError("DQ_SLACK_WEBHOOK_URL must be an http(s) URL")
    payload = json.dumps({"text": f"*{subject}*\n{body}"}).encode()
    request = urllib.request.Request(
        url, data=payload, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        if not 200 <= response.status < 300:
            raise OSError(f"webhook answered HTTP {response.status}")


def send_email(env: Mapping[str, str], subject: str, body: str) -> list[str]:
    """Send one plain-text e-mail through ``DQ_SMTP_*``; returns the recipients."""
    recipients = [a.strip() for a in env["DQ_SMTP_TO"].split(",") if a.strip()]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = env.get("DQ_SMTP_FROM", "dq@localhost")
    message["To"] = ", ".join(recipients)
    message.set_content(body)
    host = env["DQ_SMTP_HOST"]
    port = int(env.get("DQ_SMTP_PORT", "25"))
    context = ssl.create_default_context()
    if port == 465:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_SECONDS, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT_SECONDS)
    with smtp:
        if env.get("DQ_SMTP_STARTTLS", "1" if port == 587 else "0") == "1":
            smtp.starttls(context=context)
        if env.get("DQ_SMTP_USER"):
            smtp.login(env["DQ_SMTP_USER"], env.get("DQ_SMTP_PASSWORD", ""))
        smtp.send_message(message, to_addrs=recipients)
    return recipients


def notify_run(run: Run, env: Mapping[str, str] | None = None) -> list[str]:
    """Send the run's outcome to every configured channel.

    Returns what was sent (``"webhook"``, ``"email:<addr>"``), empty when no
    channel is configured or none wanted this outcome. Never raises.
    """
    env = os.environ if env is None else env
    webhook = env.get("DQ_SLACK_WEBHOOK_URL", "").strip()
    smtp = bool(env.get("DQ_SMTP_HOST", "").strip() and env.get("DQ_SMTP_TO", "").strip())
    if not webhook and not smtp:
        log.info(
            "[%s] no notification channel configured (DQ_SLACK_WEBHOOK_URL, "
            "DQ_SMTP_HOST + DQ_SMTP_TO); not notifying",
            run.run_id,
        )
        return []
    if not _wanted(run, env):
        log.info(
            "[%s] DQ_NOTIFY_ON=%s: not notifying about %s",
            run.run_id,
            env.get("DQ_NOTIFY_ON"),
            run.status,
        )
        return []
    subject, body = compose(run, env)
    sent: list[str] = []
    if webhook:
        try:
            send_webhook(webhook, subject, body)
            sent.append("webhook")
        except Exception as exc:  # a broken channel must not fail the run
            # The URL itself is a secret (it carries the token): never log it.
            log.warning("[%s] webhook notification failed: %s", run.run_id, exc)
    if smtp:
        try:
            sent += [f"email:{to}" for to in send_email(env, subject, body)]
        except Exception as exc:
            log.warning("[%s] e-mail notification failed: %s", run.run_id, exc)
    log.info("[%s] notified: %s", run.run_id, ", ".join(sent) or "nothing (all channels failed)")
    return sent
