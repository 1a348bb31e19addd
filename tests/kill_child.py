"""`stripe-pipeline` in a child process that kills itself (SIGKILL) at a chosen moment.

    KILL_AT=load_job:3 python -m tests.kill_child run ...

load_job:N  after the Nth load job's rows are committed by the destination, before dlt records the
            job as done (the window in which a resumed load runs the job again)
normalize:N when the Nth file is being normalized
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from dlt.common.destination.client import RunnableLoadJob

from stripe_source.cli.commands import main

_count = 0
_lock = threading.Lock()


def _die_at(n: int) -> None:
    global _count
    with _lock:
        _count += 1
        if _count == n:
            os.kill(os.getpid(), signal.SIGKILL)


def _install(moment: str, n: int) -> None:
    if moment == "load_job":
        release = RunnableLoadJob._release

        def _release(self: RunnableLoadJob, next_state: str) -> None:
            if next_state == "completed":
                _die_at(n)
            release(self, next_state)

        RunnableLoadJob._release = _release  # type: ignore[method-assign]
    elif moment == "normalize":
        from dlt.normalize.items_normalizers import ArrowItemsNormalizer

        normalize = ArrowItemsNormalizer.__call__

        def _normalize(self: ArrowItemsNormalizer, *args: object, **kwargs: object) -> object:
            _die_at(n)
            return normalize(self, *args, **kwargs)

        ArrowItemsNormalizer.__call__ = _normalize  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown KILL_AT moment {moment!r}")


if __name__ == "__main__":
    moment, _, n = os.environ.get("KILL_AT", "").partition(":")
    if moment:
        _install(moment, int(n))
    sys.exit(main(sys.argv[1:]))
