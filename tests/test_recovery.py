"""Killed runs, rerun, end exact: every table equals the emulator, every row once."""

from __future__ import annotations

import random
import signal

import pytest

from tests.helpers import assert_equals_emulator
from tests.processes import finish, in_load_step, kill_when, start_run


def rerun_ends_exact(emu, db) -> None:
    code, _, err = finish(start_run(emu, db))
    assert code == 0, err
    assert_equals_emulator(emu, db)


@pytest.mark.parametrize("job", [1, 5, 12])
def test_a_load_killed_after_a_job_committed_is_resumed_without_duplicates(fresh_emulator, tmp_path, job):
    # dlt records a job as done only after the destination committed its rows: killed in between,
    # the resumed load runs the job again
    db = tmp_path / "first.duckdb"
    code, _, _ = finish(start_run(fresh_emulator, db, kill_at=f"load_job:{job}"))
    assert code == -signal.SIGKILL
    rerun_ends_exact(fresh_emulator, db)


def test_a_reread_after_a_gap_killed_in_its_load_is_resumed_without_duplicates(fresh_emulator, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "gap.duckdb"
    code, _, err = finish(start_run(emu, db))
    assert code == 0, err
    for coupon in emu.objects("coupons")[:1]:
        emu.delete("coupons", coupon["id"])
    emu.advance(days=31)
    code, _, _ = finish(start_run(emu, db, kill_at="load_job:4"))
    assert code == -signal.SIGKILL
    rerun_ends_exact(emu, db)


@pytest.mark.parametrize("moment", ["normalize:1", "normalize:3"])
def test_a_run_killed_while_normalizing_is_finished_by_the_next(fresh_emulator, tmp_path, moment):
    db = tmp_path / "normalize.duckdb"
    code, _, _ = finish(start_run(fresh_emulator, db, kill_at=moment))
    assert code == -signal.SIGKILL
    rerun_ends_exact(fresh_emulator, db)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_run_killed_at_a_random_moment_of_its_load_is_finished_by_the_next(fresh_emulator, tmp_path, seed):
    db = tmp_path / "random.duckdb"
    process = start_run(fresh_emulator, db)
    kill_when(process, in_load_step, random.Random(seed).uniform(0, 0.6))
    finish(process)
    rerun_ends_exact(fresh_emulator, db)
