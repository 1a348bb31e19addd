"""`stripe-pipeline` in a child process whose load step starts when every sibling's does.

    BARRIER_DIR=/tmp/x BARRIER_PARTIES=4 python -m tests.barrier_child run ...

Each child extracts and normalizes on its own, then waits at the barrier (a file per arrived child
in BARRIER_DIR) until BARRIER_PARTIES have arrived, so the load steps, where tables are created and
altered, staging tables filled and merged, all start together: the moment concurrent writers race.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import dlt

from stripe_source.cli.commands import main

TIMEOUT = 120.0


def wait_for_siblings(directory: Path, parties: int) -> None:
    (directory / str(os.getpid())).touch()
    deadline = time.monotonic() + TIMEOUT
    while sum(1 for _ in directory.iterdir()) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sum(1 for _ in directory.iterdir())} of {parties} runs reached the load step")
        time.sleep(0.01)


def _install(directory: Path, parties: int) -> None:
    load = dlt.Pipeline.load
    waited = False

    def load_together(self: dlt.Pipeline, *args: Any, **kwargs: Any) -> Any:
        nonlocal waited
        if not waited:  # the run's own load step (a package left by a killed run would come first)
            waited = True
            wait_for_siblings(directory, parties)
        return load(self, *args, **kwargs)

    dlt.Pipeline.load = load_together  # type: ignore[method-assign]


if __name__ == "__main__":
    _install(Path(os.environ["BARRIER_DIR"]), int(os.environ["BARRIER_PARTIES"]))
    sys.exit(main(sys.argv[1:]))
