"""Tell people how a run went: a Slack-compatible webhook and/or e-mail.

One code path for the command line and the Airflow DAG: both hand a finished
:class:`~dq.record.Run` to :func:`notify_run`. Channels come from the
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

Secrets (:data:`SECRET_VARIABLES`: the whole webhook URL, whose path and query
carry its token, the SMTP login and password, the Airflow admin password) never
reach a log line, and so never an Airflow task log. The webhook URL is checked
before use (scheme, host, port, no user:password@, nothing but printable ASCII),
so ``http.client`` never gets to quote it in an ``InvalidURL``; a failure is
logged as the exception type, the target in redacted form
(``https://hooks.slack.com/…``) and only details known to be free of secrets
(an HTTP status, an OS error text, an SMTP reply code). On top of that,
:func:`redact` blanks every configured secret value, whole or in pieces, out of
each line this module logs and out of the message it sends.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from dq.errors import EXIT_OK
from dq.record import Run

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0
SECRET_VARIABLES = (
    "DQ_SLACK_WEBHOOK_URL",
    "DQ_SMTP_PASSWORD",
    "DQ_SMTP_USER",
    "DQ_AIRFLOW_PASSWORD",
)
# A secret value, and a login in a URL, are blanked from this length on; its parts
# (URL path, query, what lies between spaces or newlines) only from the longer one,
# so that "/hook" does not turn "https://hooks.example.org" into "https:/***s.example.org".
_MIN_VALUE = 4
_MIN_PART = 8
_PRINTABLE_ASCII = re.compile(r"[!-~]+")
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-f]|7f)", re.IGNORECASE)


class NotifyError(ValueError):
    """A channel's setting is unusable; the message never quotes the setting."""


def _escaped(text: str) -> set[str]:
    """``text`` as exception messages and reprs tend to quote it."""
    return {
        text,
        repr(text)[1:-1],
        text.encode("unicode_escape").decode("ascii"),
        text.replace("\n", "\\n").replace("\r", "\\r"),
    }


def _pieces(value: str) -> set[str]:
    """The forms and parts of one secret value that must not show up anywhere."""
    whole = {value, value.strip(), unquote(value)}
    parts: set[str] = set()
    try:
        url = urlsplit(value.strip())
        whole |= {url.username or "", url.password or ""}
        parts |= {url.path, url.query, url.fragment, *url.query.split("&")}
    except ValueError:
        pass
    parts |= {unquote(part) for part in parts}
    # What lies between spaces and control characters: an error message may quote
    # only the part after a newline.
    for text in whole | parts:
        parts |= set(re.split(r"[\s\x00-\x1f\x7f]+|%0[ad]", text, flags=re.IGNORECASE))
    found = {f for text in whole if len(text) >= _MIN_VALUE for f in _escaped(text)}
    found |= {f for text in parts if len(text) >= _MIN_PART for f in _escaped(text)}
    # SMTP AUTH LOGIN sends each credential base64-encoded; a server may echo it.
    found |= {base64.b64encode(f.encode()).decode() for f in list(found)}
    return found


def secrets_in(env: Mapping[str, str] | None = None) -> list[str]:
    """Every form of every configured secret value, longest first."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name in SECRET_VARIABLES:
        if env.get(name):
            found |= _pieces(env[name])
    user, password = env.get("DQ_SMTP_USER", ""), env.get("DQ_SMTP_PASSWORD", "")
    if user:  # AUTH PLAIN's credentials as one base64 string
        plain = f"\0{user}\0{password}".encode()
        found.add(base64.b64encode(plain).decode())
    return sorted(found, key=len, reverse=True)


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every configured secret value (and its parts) replaced by ``***``."""
    for secret in secrets_in(env):
        text = text.replace(secret, "***")
    return text


def _log(env: Mapping[str, str], level: int, message: str, *args: object) -> None:
    """The only way this module logs: format, then redact."""
    if log.isEnabledFor(level):
        log.log(level, "%s", redact(message % args if args else message, env), stacklevel=2)


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
    """``(layer/suite, failed critical expectations)`` for every suite that failed
    (the monitors' suites are named by their anomaly lines instead)."""
    out = []
    for step in run.steps:
        for suite in step.detail.get("suites", []):
            if suite.get("failed_critical") and suite.get("layer") != "monitors":
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
    if run.airflow_run_id:
        lines.append(f"Airflow run: {run.airflow_run_id}")
    for accepted in run.acceptances:
        lines.append(f"Accepted {accepted['what']} (by {accepted['by']}): {accepted['reason']}")
    failed_steps = [s for s in run.steps if s.status in ("failed", "terminated")]
    for step in failed_steps:
        first = step.message.splitlines()[0] if step.message else "(no message)"
        lines.append(f"Failed step: {step.name} ({first})")
    suites = failed_suites(run)
    if suites:
        lines.append("Failed expectations:")
        for name, messages in suites:
            lines.append(f"  {name}:")
            lines += [f"    - {m}" for m in messages]
    from dq.monitors import anomaly_lines

    anomalies = anomaly_lines(run)
    if anomalies:
        lines.append("Anomalies (stop: not published; warn: published, look at it):")
        lines += [f"  - {line}" for line in anomalies]
    links = docs_links(run, env)
    lines += [
        f"GX Data Docs: {links['data_docs']}",
        f"dbt docs:     {links['dbt_docs']}",
        f"Run record:   {links['run_record']}",
    ]
    return subject, "\n".join(lines)


def _wanted(ok: bool, env: Mapping[str, str]) -> bool:
    on = {p.strip().lower() for p in env.get("DQ_NOTIFY_ON", "failure,success").split(",")}
    return ("success" if ok else "failure") in on


def webhook_target(url: str) -> str:
    """The webhook URL in a form fit for logs: ``scheme://host[:port]/…`` at most."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return "DQ_SLACK_WEBHOOK_URL (not a URL)"
    if parts.scheme not in ("http", "https"):
        return "DQ_SLACK_WEBHOOK_URL (not an http(s) URL)"
    if not re.fullmatch(r"[a-z0-9.-]+|[0-9a-f:.]+", host):
        return f"{parts.scheme}://?/…"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    return f"{parts.scheme}://{host}{port}/…"


def check_webhook_url(url: str) -> str:
    """``url`` if it is a usable http(s) webhook URL; raises :class:`NotifyError`.

    Checked up front so that no library gets to quote a malformed URL (and the
    token in it) in an error message.
    """
    if not _PRINTABLE_ASCII.fullmatch(url):
        raise NotifyError(
            "DQ_SLACK_WEBHOOK_URL must be printable ASCII without spaces "
            "(no whitespace, control or non-ASCII characters)"
        )
    if _ENCODED_CONTROL.search(url):
        raise NotifyError("DQ_SLACK_WEBHOOK_URL contains a percent-encoded control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise NotifyError("DQ_SLACK_WEBHOOK_URL has an invalid host or port") from None
    # urllib also opens file:// and ftp:// URLs; a webhook is only ever http(s).
    if parts.scheme not in ("http", "https"):
        raise NotifyError("DQ_SLACK_WEBHOOK_URL must be an http(s) URL")
    if "@" in parts.netloc:
        # urllib would not log in with it: http.client takes "pass@host" for a port.
        raise NotifyError("DQ_SLACK_WEBHOOK_URL must not contain user:password@")
    host = parts.hostname or ""
    if not re.fullmatch(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+", host) or port == 0:
        raise NotifyError("DQ_SLACK_WEBHOOK_URL has an invalid host or port")
    return url


def send_webhook(url: str, subject: str, body: str) -> None:
    """POST ``{"text": ...}`` as JSON; raises on anything but a 2xx answer."""
    check_webhook_url(url)
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
    host = env["DQ_SMTP_HOST"].strip()
    port = _smtp_port(env)
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


def _smtp_port(env: Mapping[str, str]) -> int:
    value = env.get("DQ_SMTP_PORT", "25").strip()
    if not value.isascii() or not value.isdigit() or not 0 < int(value) < 65536:
        raise NotifyError("DQ_SMTP_PORT must be a number from 1 to 65535")
    return int(value)


def smtp_target(env: Mapping[str, str]) -> str:
    """The SMTP server in a form fit for logs (no login)."""
    host = env.get("DQ_SMTP_HOST", "").strip()
    host = host if re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", host) else "(invalid DQ_SMTP_HOST)"
    port = env.get("DQ_SMTP_PORT", "25").strip()
    return f"smtp://{host}:{port if port.isascii() and port.isdigit() else '?'}"


def describe_error(exc: BaseException) -> str:
    """What went wrong, from parts of ``exc`` that cannot quote a URL or a login.

    Never ``str(exc)`` of an arbitrary exception: ``http.client.InvalidURL``
    quotes the URL, ``smtplib`` quotes commands and server replies.
    """
    name = type(exc).__name__
    if isinstance(exc, NotifyError):
        return f"{name}: {exc}"
    if isinstance(exc, urllib.error.HTTPError):
        return f"{name}: HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return f"{name}: {describe_error(reason)}"
        return name
    if isinstance(exc, smtplib.SMTPResponseException):
        # The code says what happened; the server's text may echo the login (redacted).
        text = exc.smtp_error
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return f"{name}: {exc.smtp_code} {' '.join(text.split())[:200]}"
    if isinstance(exc, TimeoutError):
        return f"{name}: timed out"
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return f"{name}: {exc.strerror}"
    if isinstance(exc, OSError) and str(exc).startswith("webhook answered HTTP "):
        return f"{name}: {exc}"
    return name


def notify_run(run: Run, env: Mapping[str, str] | None = None) -> list[str]:
    """Send the run's outcome to every configured channel.

    Returns what was sent (``"webhook"``, ``"email:<addr>"``), empty when no
    channel is configured or none wanted this outcome. Never raises, and logs
    no secret (see the module docstring).
    """
    env = os.environ if env is None else env
    try:
        return _notify(run, env)
    except Exception as exc:  # e.g. a run record that cannot be read: still not the run's fault
        _log(env, logging.WARNING, "[%s] notification failed: %s", run.run_id, describe_error(exc))
        return []


def notify_stage(
    stage: str, ok: bool, message: str, env: Mapping[str, str] | None = None
) -> list[str]:
    """Send the outcome of a CI/CD stage (``model``, ``deploy``, ``rollback``) to
    every configured channel: on failure the message names the reason (``F1 0.41
    < threshold 0.60``), on success what was done (the release). Never raises."""
    env = os.environ if env is None else env
    subject = f"[dq] jaffle_shop {stage}: {'OK' if ok else 'FAILED'}"
    try:
        return _send(stage, ok, subject, f"{stage}: {message}", env)
    except Exception as exc:
        _log(env, logging.WARNING, "[%s] notification failed: %s", stage, describe_error(exc))
        return []


def _notify(run: Run, env: Mapping[str, str]) -> list[str]:
    subject, body = compose(run, env)
    return _send(run.run_id, run.exit_code == EXIT_OK, subject, body, env)


def _send(tag: str, ok: bool, subject: str, body: str, env: Mapping[str, str]) -> list[str]:
    """Send one message (subject, body) to every configured channel that wants
    this outcome; ``tag`` names what it is about in the log."""
    webhook = env.get("DQ_SLACK_WEBHOOK_URL", "").strip()
    smtp = bool(env.get("DQ_SMTP_HOST", "").strip() and env.get("DQ_SMTP_TO", "").strip())
    if not webhook and not smtp:
        _log(
            env,
            logging.INFO,
            "[%s] no notification channel configured (DQ_SLACK_WEBHOOK_URL, "
            "DQ_SMTP_HOST + DQ_SMTP_TO); not notifying",
            tag,
        )
        return []
    if not _wanted(ok, env):
        _log(
            env,
            logging.INFO,
            "[%s] DQ_NOTIFY_ON=%s: not notifying about %s",
            tag,
            env.get("DQ_NOTIFY_ON"),
            "success" if ok else "failure",
        )
        return []
    # Messages quote errors from elsewhere: keep secrets out of the message too.
    subject, body = (redact(text, env) for text in (subject, body))
    sent: list[str] = []
    if webhook:
        try:
            send_webhook(webhook, subject, body)
            sent.append("webhook")
        except Exception as exc:  # a broken channel must not fail the run
            _log(
                env,
                logging.WARNING,
                "[%s] webhook notification to %s failed: %s",
                tag,
                webhook_target(webhook),
                describe_error(exc),
            )
    if smtp:
        try:
            sent += [f"email:{to}" for to in send_email(env, subject, body)]
        except Exception as exc:
            _log(
                env,
                logging.WARNING,
                "[%s] e-mail notification via %s failed: %s",
                tag,
                smtp_target(env),
                describe_error(exc),
            )
    _log(
        env,
        logging.INFO,
        "[%s] notified: %s",
        tag,
        ", ".join(sent) or "nothing (all channels failed)",
    )
    return sent
