"""The pipeline as a real process: killed at chosen moments, interrupted, or run twice at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pipeline_dir(name: str = "stripe") -> Path:
    """The pipeline's working dir under the test's isolated DLT_DATA_DIR."""
    return Path(os.environ["DLT_DATA_DIR"]) / "pipelines" / name


def in_load_step(name: str = "stripe") -> bool:
    """A load package is being loaded: some of its jobs have started."""
    normalized = pipeline_dir(name) / "load" / "normalized"
    return any(normalized.glob("*/started_jobs/*")) or any(normalized.glob("*/completed_jobs/*"))


def in_normalize_step(name: str = "stripe") -> bool:
    return any((pipeline_dir(name) / "normalize").glob("*")) or any(
        (pipeline_dir(name) / "load" / "new").glob("*"))


def start_run(emu, db: Path, *args: str, key: str | None = None, env: dict[str, str] | None = None,
              kill_at: str | None = None) -> subprocess.Popen:
    """`stripe-pipeline run` in a child process, with this test's dlt project and environment;
    `kill_at` (e.g. "load_job:3"): the child kills itself then (see tests/kill_child.py)."""
    child_env = dict(os.environ, STRIPE_API_KEY=key or emu.api_key, PYTHONPATH=str(ROOT), **(env or {}))
    module = "stripe_source.cli"
    if kill_at:
        child_env["KILL_AT"], module = kill_at, "tests.kill_child"
    command = [sys.executable, "-m", module, "run", "--api-base", emu.api_base, "--duckdb-path", str(db), *args]
    return subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def kill_when(process: subprocess.Popen, moment: Callable[[], bool], delay: float = 0.0,
              timeout: float = 120.0) -> bool:
    """SIGKILL the process `delay` seconds after `moment()` first holds; False if it ended before."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if moment():
            if delay:
                time.sleep(delay)
            if process.poll() is not None:
                return False
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            return True
        time.sleep(0.002)
    return False


def finish(process: subprocess.Popen, timeout: float = 300.0) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()
