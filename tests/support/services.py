"""Real PostgreSQL and Redis servers for the tests in tests/services/, started from the Debian packages;
also ``free_port`` and ``wait_for_port``, used by every helper that starts a process.

`.ci/run` installs ``postgresql`` and ``redis-server``; on a machine without them the tests that
need them are skipped with the reason (never faked). Each server runs in a temporary folder on a
free port and is stopped at the end of the session. PostgreSQL refuses to run as root, so as root
it runs as the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


_wait_for_port = wait_for_port  # the older private name


def postgres_bin() -> Path | None:
    for directory in PG_BIN_DIRS:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def redis_bin() -> str | None:
    return shutil.which("redis-server")


@dataclass
class PostgresServer:
    """One PostgreSQL cluster; ``url(name)`` creates a fresh database per caller so tests stay independent."""

    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None  # run as this OS user (root cannot run PostgreSQL)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        # -l: the postmaster must not inherit our pipes, or waiting for pg_ctl would wait for the server.
        log = str(self.data_dir.parent / "postgres.log")
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", log, "-o", options, "-w", "-t", "60", "start"
        )
        wait_for_port(self.port, 30)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop")

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL (psycopg 3 driver)."""
        self._run(str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="kestrel-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(root, user=user)
    server = PostgresServer(bin_dir, root / "data", free_port(), user)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = redis_bin()
    if binary is None:
        raise RuntimeError("Redis is not installed (apt-get install redis-server)")
    root = Path(tempfile.mkdtemp(prefix="kestrel-redis-"))
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(root),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 20)
        yield RedisServer(port, process)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)
