"""Failures the user sees: one line naming the cause and the fix, the documented exit code, fast.

Servers that are not Stripe are small throwaway HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from stripe_emulator import Emulator, FaultConfig
from stripe_source.cli.commands import main
from stripe_source.errors import EXIT_BAD_INPUT, EXIT_LOAD_FAILED, EXIT_STRIPE_UNAVAILABLE
from tests.helpers import assert_no_duplicates, ids, run_pipeline

KEY = "sk_test_" + "ThrowawayServer0000000001"


def one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("Error: ")
    return err[0]


def run_against(base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> int:
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    return main(["run", "--api-base", base, "--duckdb-path", str(tmp_path / "x.duckdb"), *args])


@pytest.fixture
def answering() -> Iterator:
    """`answering(status, content_type, body)`: a server that gives that answer to every request."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, content_type: str, body: bytes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


HTML = b"<html><head><title>Welcome to nginx!</title></head><body>...</body></html>"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "shown"),
    [
        (200, "text/html", HTML, "HTTP 200 with text/html '<html><head><title>Welcome to nginx!"),
        (404, "text/html", HTML, "HTTP 404 with text/html"),
        (502, "text/html", b"<html><body>502 Bad Gateway</body></html>", "HTTP 502"),
        (200, "application/json", b'{"object": "account", "id": ',
         """HTTP 200 with application/json '{"object": "account", "id":'"""),
        (200, "application/json", b"{}", "HTTP 200 with application/json '{}'"),
        (200, "application/json", b'["acct_1"]', "HTTP 200 with application/json '[\"acct_1\"]'"),
        (200, "application/json", b"", "HTTP 200 with an empty body"),
        (401, "application/json", b"{}", "HTTP 401 with application/json '{}'"),
    ],
)
def test_answers_that_are_not_stripes_are_named_in_one_line(answering, monkeypatch, tmp_path, capsys, status,
                                                            content_type, body, shown):
    base = answering(status, content_type, body)
    started = time.monotonic()
    assert run_against(base, monkeypatch, tmp_path, "--request-timeout", "1") == EXIT_STRIPE_UNAVAILABLE
    line = one_line(capsys)
    assert base in line and shown in line
    assert time.monotonic() - started < 30  # a guard, not a benchmark
    assert not (tmp_path / "x.duckdb").exists()


def test_an_unreachable_api_base_fails_fast_and_names_the_url(monkeypatch, tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    assert run_against(base, monkeypatch, tmp_path) == EXIT_STRIPE_UNAVAILABLE
    assert time.monotonic() - started < 15  # was 52 s of backoff
    line = one_line(capsys)
    assert f"Cannot reach {base} (connection refused)" in line and "--api-base" in line


def test_a_server_that_never_answers_is_not_waited_on(monkeypatch, tmp_path, capsys):
    with socket.socket() as silent:  # accepts connections (the backlog does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        assert run_against(base, monkeypatch, tmp_path, "--request-timeout", "1") == EXIT_STRIPE_UNAVAILABLE
        assert time.monotonic() - started < 30  # was 521 s
    line = one_line(capsys)
    assert f"Cannot reach {base} (no answer within 1 s)" in line


@pytest.mark.parametrize("value", ["0", "-3", "nan", "100000"])
def test_a_request_timeout_out_of_range_is_bad_input(emulator, monkeypatch, tmp_path, capsys, value):
    emulator.reset_stats()
    assert run_pipeline(emulator, monkeypatch, tmp_path / "t.duckdb", "--request-timeout", value) == EXIT_BAD_INPUT
    assert "request_timeout must be a number of seconds from 0.5 to 600" in one_line(capsys)
    assert emulator.stats()["requests_total"] == 0


@pytest.mark.parametrize("from_request", [1, 4], ids=["from-the-first-request", "during-extract"])
def test_stripe_answering_500_for_good_is_exit_5(monkeypatch, tmp_path, capsys, from_request):
    faults = FaultConfig(schedule={n: "500" for n in range(from_request, 100_000)})
    with Emulator(seed=3, scale=200, faults=faults) as emu:
        started = time.monotonic()
        code = run_pipeline(emu, monkeypatch, tmp_path / "down.duckdb", "--request-timeout", "1",
                            "--flatten-processes", "0")
        assert time.monotonic() - started < 60
    assert code == EXIT_STRIPE_UNAVAILABLE
    line = one_line(capsys)
    assert "with HTTP 500" in line and emu.api_base in line and "status page" in line


def test_a_duckdb_path_that_cannot_be_opened_fails_before_any_request(emulator, monkeypatch, tmp_path, capsys):
    not_duckdb = tmp_path / "notes.duckdb"
    not_duckdb.write_text("these are my notes, not a database\n")
    emulator.reset_stats()
    assert run_pipeline(emulator, monkeypatch, not_duckdb) == EXIT_BAD_INPUT
    assert "cannot be opened as a DuckDB database" in one_line(capsys)
    assert run_pipeline(emulator, monkeypatch, tmp_path / "missing" / "x.duckdb") == EXIT_BAD_INPUT
    assert "does not exist: create it first" in one_line(capsys)
    assert run_pipeline(emulator, monkeypatch, tmp_path) == EXIT_BAD_INPUT
    assert "is a directory" in one_line(capsys)
    assert emulator.stats()["requests_total"] == 0
    assert not_duckdb.read_text() == "these are my notes, not a database\n"


def test_a_failed_load_names_the_database_error_and_the_fix(emulator, monkeypatch, tmp_path, capsys):
    db = tmp_path / "clash.duckdb"
    args = ("--resources", "coupons", "--flatten-processes", "0")
    assert run_pipeline(emulator, monkeypatch, db, *args) == 0
    with duckdb.connect(str(db)) as con:  # someone changed a column's type under the pipeline
        con.execute("ALTER TABLE stripe.coupons ALTER COLUMN name TYPE INTEGER USING NULL")
    capsys.readouterr()
    assert run_pipeline(emulator, monkeypatch, db, *args, "--full-refresh") == EXIT_LOAD_FAILED
    line = one_line(capsys)
    assert "Traceback" not in line
    assert "loading table coupons failed: Conversion Error: Could not convert string" in line
    assert "fix or drop that table in the destination, then run `stripe-pipeline run` again" in line
    with duckdb.connect(str(db)) as con:  # what the message says to do works
        con.execute("ALTER TABLE stripe.coupons ALTER COLUMN name TYPE VARCHAR")
    assert run_pipeline(emulator, monkeypatch, db, *args) == 0
    assert set(ids(db, "coupons")) == {c["id"] for c in emulator.objects("coupons")}
    assert_no_duplicates(ids(db, "coupons"))


def test_a_table_the_load_cannot_change_is_named_with_the_fix(emulator, monkeypatch, tmp_path, capsys):
    db = tmp_path / "own.duckdb"
    with duckdb.connect(str(db)) as con:  # someone's own table where ours goes
        con.execute("CREATE SCHEMA stripe; CREATE TABLE stripe.coupons (id INTEGER, note VARCHAR)")
    assert run_pipeline(emulator, monkeypatch, db, "--resources", "coupons", "--flatten-processes", "0") == 1
    line = one_line(capsys)
    assert line.startswith("Error: loading into the destination failed: Parser Error:")
    assert "run `stripe-pipeline run` again" in line
