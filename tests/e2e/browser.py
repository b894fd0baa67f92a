"""Debian's chromium, driven by Playwright, for the dashboard's tests: headless, no sandbox (the
tests may run as root), and a screenshot of each page kept under ``.test-artifacts/dashboard``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crm_cli.system import REPO

ARTIFACTS = REPO / ".test-artifacts" / "dashboard"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium is not installed: 'make test' installs it (apt-get install chromium)")
    return found


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
