"""Fixtures for the browser tests: headless Chromium, project copies, free ports.

A test module registers the fixtures it needs by binding them at module level
(``browser = browser_fixtures.browser``); project copies and CLI runs come from
``tests/conftest.py``.

Chromium is the Debian package (``apt-get install -y chromium``), driven by
Playwright for Python through ``executable_path``; we never run
``playwright install``. A missing browser FAILS the test with a clear message:
a browser test that silently skips proves nothing.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dq import config

CHROMIUM = os.environ.get("DQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = config.PROJECT_ROOT / "artifacts"
README_IMAGES = config.PROJECT_ROOT / "docs" / "img"
LOCAL_HOSTS = {"127.0.0.1"}


@contextlib.contextmanager
def served(root: Path) -> Iterator[str]:
    """``dq.serve`` over a project copy (``DQ_ROOT`` set while it serves): its base URL."""
    from dq.serve import start_in_thread

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DQ_ROOT", str(root))
        server, url = start_in_thread(config.load())
        try:
            yield url
        finally:
            server.shutdown()
            server.server_close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_bad_orders(root: Path, count: int = 150) -> None:
    """Append orders with a negative subtotal: staging quarantines them and the
    transformed checkpoint's rejected-share budget (5 %) fails."""
    path = root / "seeds" / "raw_orders.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    template = dict(zip(rows[0], rows[1], strict=True))
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for _ in range(count):
            row = dict(template, id=str(uuid.uuid4()), subtotal="-700", order_total="-658")
            writer.writerow([row[c] for c in rows[0]])


#: Values that would run as script if a page inserted them as HTML, and where
#: they go. The visible ones fail a raw row rule, so GX lists them among the
#: unexpected values of the raw validation page; all are quarantined by staging.
SCRIPT_PAYLOADS = {
    "ordered_at": '<script>alert("ordered_at")</script>',
    "price": '<img src=x onerror=alert("price")>',
    "customer_id": '"><img src=x onerror=alert("customer_id")>',
}
#: In columns no rule lists (customer, store_id, name): kept in raw tables only.
HIDDEN_PAYLOADS = {
    "customer": "<svg onload=alert('customer')>",
    "store_id": "'><script>alert('store_id')</script>",
    "name": "<iframe srcdoc=\"<script>alert('name')</script>\">",
}


def add_script_payloads(root: Path) -> dict[str, str]:
    """Put :data:`SCRIPT_PAYLOADS` and :data:`HIDDEN_PAYLOADS` into several columns
    of three seed CSVs; returns the payloads Data Docs must show (as text)."""

    def edit(path: Path, make_rows) -> None:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        header = rows[0]
        template = dict(zip(header, rows[1], strict=True))
        with path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            for changes in make_rows():
                row = dict(template, **changes)
                writer.writerow([row[c] for c in header])

    seeds = root / "seeds"
    edit(
        seeds / "raw_orders.csv",
        lambda: [
            {"id": str(uuid.uuid4()), "ordered_at": SCRIPT_PAYLOADS["ordered_at"]},
            {
                "id": str(uuid.uuid4()),
                "customer": HIDDEN_PAYLOADS["customer"],
                "store_id": HIDDEN_PAYLOADS["store_id"],
            },
        ],
    )
    edit(
        seeds / "raw_products.csv", lambda: [{"sku": "XSS-001", "price": SCRIPT_PAYLOADS["price"]}]
    )
    # The same id twice: the raw uniqueness check lists it.
    edit(
        seeds / "raw_customers.csv",
        lambda: [
            {"id": SCRIPT_PAYLOADS["customer_id"], "name": HIDDEN_PAYLOADS["name"]},
            {"id": SCRIPT_PAYLOADS["customer_id"], "name": "twin"},
        ],
    )
    return dict(SCRIPT_PAYLOADS)


def save_screenshot(page, name: str, readme: bool = False) -> Path:
    """PNG under ``artifacts/``; with DQ_UPDATE_README_IMAGES=1 (``make screenshots``)
    also into ``docs/img/`` for the README, so test runs leave tracked files alone."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    if readme and os.environ.get("DQ_UPDATE_README_IMAGES") == "1":
        README_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_IMAGES / name)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium per test module (fails, never skips, when absent).

    Module scope, not session: each module binds this fixture itself, and two
    live Playwright sync sessions in one process are not allowed.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium` "
            "(or set DQ_CHROMIUM). Browser tests do not skip.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright (python) is not installed in this venv", pytrace=False)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def offline_page(browser) -> Iterator:
    """A fresh page whose requests to any host but 127.0.0.1 (or a local file)
    are blocked and make the test fail at teardown (``page.external_requests``
    lists them)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    external: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:", "about:", "file:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.external_requests = external
    try:
        yield page
    finally:
        context.close()
    assert not external, f"requests left the machine: {sorted(set(external))}"
