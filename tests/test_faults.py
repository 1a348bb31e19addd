"""A fault campaign: runs killed, interrupted or refused by Stripe at random moments, first runs and
incremental ones. Each faulty run ends with a documented exit code and (when it can speak) one line
saying why, leaves no process behind, and the next run ends with the account's rows exactly.

STRIPE_FAULT_TRIALS runs more trials (each a seed of its own).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from stripe_emulator import Emulator, FaultConfig
from stripe_emulator.server import RateLimits
from tests.helpers import assert_equals_emulator
from tests.processes import finish, in_load_step, in_normalize_step, kill_when, start_run
from tests.test_equivalence import Changes
from tests.test_workers import _in_group

TRIALS = int(os.environ.get("STRIPE_FAULT_TRIALS", "6"))
# what a faulty run may end with: killed, or one of the documented codes
DOCUMENTED = {-signal.SIGKILL, 1, 5, 130, 143}


def _fault(rng: random.Random, emu: Emulator, process_args: dict) -> tuple[str, object]:
    kind = rng.choice(["kill_extract", "kill_normalize", "kill_load", "kill_after_commit", "sigint", "sigterm",
                       "storm", "outage"])
    if kind == "kill_after_commit":
        process_args["kill_at"] = f"load_job:{rng.randint(1, 15)}"
    if kind == "storm":  # 5xx, resets and 429s at random: the run retries through them
        emu.faults = FaultConfig(error_rate=0.05, reset_rate=0.05, seed=rng.randint(1, 1000))
        emu.rate_limits = RateLimits(global_rps=40, endpoint_rps=10)
    if kind == "outage":  # Stripe answers 500 to everything, for good
        emu.faults = FaultConfig(error_rate=1.0)
    return kind, None


def _strike(kind: str, rng: random.Random, emu: Emulator, process) -> None:
    moment = rng.uniform(0, 0.4)
    if kind == "kill_extract":
        kill_when(process, lambda: emu.stats()["requests_total"] > rng.randint(2, 30))
    elif kind == "kill_normalize":
        kill_when(process, in_normalize_step, moment)
    elif kind == "kill_load":
        kill_when(process, in_load_step, moment)
    elif kind in ("sigint", "sigterm"):
        deadline = time.monotonic() + 60
        while emu.stats()["requests_total"] < rng.randint(2, 30) and process.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT if kind == "sigint" else signal.SIGTERM)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_faulty_run_is_followed_by_an_exact_one(trial, tmp_path):
    rng = random.Random(1000 + trial)
    with Emulator(seed=trial + 20, scale=300) as emu:
        db = tmp_path / "faults.duckdb"
        if rng.random() < 0.5:  # an incremental run is the faulty one
            code, _, err = finish(start_run(emu, db))
            assert code == 0, err
            Changes(emu, rng).some(8)
        emu.reset_stats()
        args: dict = {}
        kind, _ = _fault(rng, emu, args)
        process = start_run(emu, db, env={"SOURCES__STRIPE__FLATTEN_PROCESSES": str(rng.choice([0, 1]))}, **args)
        _strike(kind, rng, emu, process)
        code, _, err = finish(process)
        emu.faults, emu.rate_limits = FaultConfig(), None
        assert code in DOCUMENTED | {0}, f"{kind}: exit {code}: {err[-2000:]}"
        if code not in (0, -signal.SIGKILL):
            lines = [line for line in err.splitlines() if line.strip() and not line.startswith("WARNING")]
            assert len(lines) == 1, f"{kind}: not one line: {err[-2000:]}"
        if kind == "outage":
            assert code == 5 and "Stripe" in err
        deadline = time.monotonic() + 10
        while _in_group(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _in_group(process.pid) == [], f"{kind}: processes left behind"
        code, _, err = finish(start_run(emu, db))
        assert code == 0, f"after {kind}: {err[-2000:]}"
        assert_equals_emulator(emu, db)
