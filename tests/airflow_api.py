"""The Airflow REST API as the Airflow tests use it: a call, a wait, a login.

Shared by the browser test (LocalExecutor) and the distributed test
(CeleryExecutor), which drive the same DAG through the same API.
"""

from __future__ import annotations

import json
import time
import urllib.request


def api(base: str, method: str, path: str, token: str | None = None, body: dict | None = None):
    """One JSON request to the API server at ``base``; the decoded answer."""
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait(what: str, check, timeout: float, every: float = 2.0):
    """``check()``'s first truthy value (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def token(base: str, username: str, password: str) -> str:
    """A bearer token for the simple auth manager's user."""
    body = {"username": username, "password": password}
    return api(base, "POST", "/auth/token", body=body)["access_token"]
