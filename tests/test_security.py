"""Secrets never leak: not to stdout/stderr, logs, exceptions, dlt traces, state or any file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from stripe_source.errors import EXIT_REAUTHENTICATE
from tests.helpers import run_pipeline


def files_containing(root: Path, secret: str, skip: set[Path] = frozenset()) -> list[Path]:
    needle = secret.encode()
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path not in skip and needle in path.read_bytes():
            hits.append(path)
    return hits


def test_a_run_leaves_no_trace_of_the_key(fresh_emulator, monkeypatch, tmp_path, capsys, caplog):
    marker = fresh_emulator.add_key("sk_test_MARKER" + "x7Qp2Zr9Lk4Vb8Nd", kind="secret")
    db = tmp_path / "secure.duckdb"
    with caplog.at_level(logging.DEBUG):
        assert run_pipeline(fresh_emulator, monkeypatch, db, "--resources", "charges,customers", key=marker) == 0
        fresh_emulator.revoke_key(marker)
        code = run_pipeline(fresh_emulator, monkeypatch, db, "--resources", "charges", key=marker)
    assert code == EXIT_REAUTHENTICATE
    out = capsys.readouterr()
    for text in (out.out, out.err, caplog.text):
        assert marker not in text
    assert "stripe-pipeline connect" in out.err
    assert fresh_emulator.account_id in out.err  # which account to re-authenticate
    # every file the run wrote: pipeline working dir (state, traces, load packages), DuckDB, project
    for root in (Path(os.environ["DLT_DATA_DIR"]), tmp_path):
        assert files_containing(root, marker) == []


def test_errors_mask_the_key(fresh_emulator, monkeypatch, tmp_path, capsys):
    unknown = "sk_test_" + "NeverRegistered42abcdefgh"
    code = run_pipeline(fresh_emulator, monkeypatch, tmp_path / "x.duckdb", key=unknown)
    assert code == EXIT_REAUTHENTICATE
    out = capsys.readouterr()
    assert unknown not in out.out + out.err
    assert not (tmp_path / "x.duckdb").exists()
