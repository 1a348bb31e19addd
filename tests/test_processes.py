"""Real processes: two runs of one pipeline at once (cron overlap), kill -9, Ctrl-C and SIGTERM.

Each run is `python -m stripe_source.cli run` against an emulator in this process, paced
slowly enough (--max-rps) that the first run is still extracting when the test acts on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stripe_emulator import Emulator
from stripe_source.cli.run_lock import lock_path
from stripe_source.errors import EXIT_INTERRUPTED, EXIT_RUN_IN_PROGRESS
from tests.helpers import assert_equals_emulator, run_pipeline

SLOW = ("--max-rps", "8", "--flatten-processes", "0")  # ~100 requests: a run of ~12 s


@pytest.fixture
def world() -> Iterator[Emulator]:
    with Emulator(seed=5, scale=300) as emu:
        yield emu


def start_run(emu: Emulator, db: Path, *args: str, session: bool = False) -> subprocess.Popen:
    """`session`: in a process group of its own, as a terminal's foreground job is."""
    env = dict(os.environ, STRIPE_API_KEY=emu.api_key)
    command = [sys.executable, "-m", "stripe_source.cli", "run", "--api-base", emu.api_base,
               "--duckdb-path", str(db), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=session)


def finish(run: subprocess.Popen, timeout: float = 120) -> tuple[int, list[str]]:
    """Exit code and stderr lines (dlt's progress goes to stdout)."""
    _, err = run.communicate(timeout=timeout)
    return run.returncode, [line for line in err.splitlines() if line.strip()]


def wait_until_running(run: subprocess.Popen, emu: Emulator, pipeline: str = "stripe", requests: int = 10) -> None:
    """Until `run` holds the pipeline's lock and has made `requests` requests to Stripe."""
    lock = lock_path(Path(os.environ["DLT_DATA_DIR"]) / "pipelines", pipeline)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert run.poll() is None, finish(run)
        held_by = lock.read_text().strip() if lock.exists() else ""
        if held_by == str(run.pid) and emu.stats()["requests_total"] >= requests:
            return
        time.sleep(0.05)
    raise AssertionError("the run did not start")


def test_a_second_run_of_the_same_pipeline_is_refused_in_one_line(world, tmp_path):
    # the same pipeline name with another DuckDB file: before, it exited 0 with a file missing most objects
    first = start_run(world, tmp_path / "a.duckdb", *SLOW)
    wait_until_running(first, world)
    second = start_run(world, tmp_path / "b.duckdb")
    code, err = finish(second)
    assert code == EXIT_RUN_IN_PROGRESS
    assert err == [f"Error: another run of pipeline 'stripe' is in progress (PID {first.pid}): let it finish, "
                   "or give --wait SECONDS to queue behind it"]
    assert not (tmp_path / "b.duckdb").exists()
    assert finish(first)[0] == 0
    assert_equals_emulator(world, tmp_path / "a.duckdb")


def test_with_wait_a_second_run_queues_behind_the_first(world, tmp_path):
    first = start_run(world, tmp_path / "a.duckdb", *SLOW)
    wait_until_running(first, world)
    second = start_run(world, tmp_path / "b.duckdb", "--wait", "120")
    assert finish(first)[0] == 0
    code, err = finish(second)
    assert code == 0, err
    for db in ("a.duckdb", "b.duckdb"):
        assert_equals_emulator(world, tmp_path / db)


def test_a_run_killed_with_sigkill_does_not_keep_the_pipeline_locked(world, monkeypatch, tmp_path):
    first = start_run(world, tmp_path / "a.duckdb", *SLOW)
    wait_until_running(first, world)
    first.kill()
    first.wait(timeout=30)
    assert run_pipeline(world, monkeypatch, tmp_path / "a.duckdb") == 0
    assert_equals_emulator(world, tmp_path / "a.duckdb")


@pytest.mark.parametrize(("sig", "code", "said"), [
    (signal.SIGINT, EXIT_INTERRUPTED, "Interrupted: the run stopped before it finished"),
    (signal.SIGTERM, 128 + signal.SIGTERM, "Terminated (SIGTERM): the run stopped before it finished"),
])
def test_a_signal_during_extract_stops_the_run_with_one_line(world, monkeypatch, tmp_path, sig, code, said):
    db = tmp_path / "a.duckdb"
    run = start_run(world, db, *SLOW)
    wait_until_running(run, world)
    run.send_signal(sig)
    exit_code, err = finish(run, timeout=60)
    assert exit_code == code
    assert len(err) == 1 and err[0].startswith(said), err
    # and the next run loads everything, once
    assert run_pipeline(world, monkeypatch, db) == 0
    assert_equals_emulator(world, db)


@pytest.mark.parametrize("step", ["Normalize", "Load"])
def test_ctrl_c_during_normalize_or_load_stops_the_run_with_one_line(world, monkeypatch, tmp_path, step):
    # before: exit 1 after dlt's "will lock indefinitely", or an IndexError in our own error handler
    db = tmp_path / "a.duckdb"
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")  # dlt's progress lines tell the step as it starts
    run = start_run(world, db, "--flatten-processes", "0")
    for line in run.stdout:
        if line.startswith("-") and f" {step} stripe " in line:
            run.send_signal(signal.SIGINT)
            break
    exit_code, err = finish(run, timeout=60)
    assert exit_code == EXIT_INTERRUPTED
    assert len(err) == 1 and err[0].startswith("Interrupted:"), err
    assert run_pipeline(world, monkeypatch, db) == 0
    assert_equals_emulator(world, db)


def test_ctrl_c_at_a_terminal_reaches_the_flatten_workers_too_and_still_gives_one_line(world, monkeypatch, tmp_path):
    # a terminal sends SIGINT to the whole foreground process group: the run and its worker processes
    db = tmp_path / "a.duckdb"
    run = start_run(world, db, "--max-rps", "8", "--flatten-processes", "2", session=True)
    wait_until_running(run, world)
    os.killpg(run.pid, signal.SIGINT)
    exit_code, err = finish(run, timeout=60)
    assert exit_code == EXIT_INTERRUPTED
    assert len(err) == 1 and err[0].startswith("Interrupted:"), err
    assert run_pipeline(world, monkeypatch, db) == 0
    assert_equals_emulator(world, db)


def test_a_duckdb_file_another_process_has_open_is_named(world, monkeypatch, tmp_path, capsys):
    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('open', flush=True); "
                               "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        world.reset_stats()
        assert run_pipeline(world, monkeypatch, db, "--pipeline-name", "another") == EXIT_RUN_IN_PROGRESS
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"Error: --duckdb-path {db} is in use by another process (PID {holder.pid}): let it finish, "
                       "or load into another file"]
        assert world.stats()["requests_total"] == 0
    finally:
        holder.kill()
        holder.wait()
