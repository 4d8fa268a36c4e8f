"""uvicorn serving ``config.asgi`` in its own process on a local TCP port, as ``./dev demo``
runs it: pages, static files (``DEBUG``) and ``/api/events`` from one ASGI server. The browser
tests open it; ``stop()`` then ``start()`` restarts it on the same port (a deploy, a crash)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from config.env import ROOT
from tests.subprocesses import child_env
from tests.waiting import wait_until

# What start() asks before it returns: a static file (the storefront's script) is served.
READY_PATH = "/static/catalog/storefront.js"


class AsgiServer:
    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "1",
            ],
            cwd=ROOT,
            env={**child_env(), "DEBUG": "true"},  # DEBUG: static files from the same server
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        proc = self.proc

        def answers() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                return httpx.get(f"{self.url}{READY_PATH}", timeout=2).is_success
            except httpx.TransportError:
                return False

        wait_until(answers, timeout=60, what="uvicorn answering")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def asgi_server() -> Iterator[AsgiServer]:
    found = AsgiServer()
    found.start()
    try:
        yield found
    finally:
        found.stop()
