"""A real `chatbot serve` process and Debian's headless Chromium, shared by the browser tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from chatbot.config import Settings
from tests.support.servers import ServerProcess, free_port

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "Server", "free_port"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "Chromium is not installed: apt-get install chromium (make test does it where it may)", allow_module_level=True
    )
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Server(ServerProcess):
    """`chatbot serve` in a child process, with its own SQLite database (tests/support/servers.py runs it)."""

    def __init__(self, settings: Settings, port: int, database: Path, **env: str) -> None:
        environment = dict(
            os.environ,
            CHATBOT_DATA_DIR=str(settings.data_dir),
            CHATBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
            CHATBOT_GENERATOR_MODEL=settings.generator_model,
            CHATBOT_DATABASE_URL=f"sqlite:///{database}",
            **env,
        )
        if settings.nlu_dir is not None:  # the intent classifier `make` built, not one trained per server
            environment["CHATBOT_NLU_DIR"] = str(settings.nlu_dir)
        super().__init__(environment, port, database.with_suffix(".server.log"))


# Records every Content-Security-Policy violation the page reports (the browser fires
# `securitypolicyviolation` for a blocked inline style or script), for the tests to assert none.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline") + " " + event.sample);
});
"""


def watch_page(page: object) -> list[str]:
    """Record CSP violations (``CSP_RECORDER``) and console errors of ``page``; returns the error list."""
    errors: list[str] = []
    page.add_init_script(CSP_RECORDER)  # type: ignore[attr-defined]
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)  # type: ignore[attr-defined]
    return errors


def csp_violations(page: object) -> list[str]:
    return list(page.evaluate("window.__cspViolations || []"))  # type: ignore[attr-defined]
