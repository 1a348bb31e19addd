"""One run of a pipeline at a time: an OS lock beside the pipeline's working dir.

Two runs of one pipeline (a cron job overlapping the last) share dlt's working dir: its state,
schemas and pending load packages. dlt does not guard it, and the second run corrupts or silently
empties the first's packages. A POSIX record lock (`lockf`) is released by the kernel when its
process ends in any way, kill -9 included, and unlike `flock` it is not inherited by the forked
flatten workers, so a worker that outlives a killed run cannot keep the pipeline locked.
The lock file sits beside the working dir, not in it: dlt deletes the working dir when a pipeline
is dropped, and a lock on a deleted file would let the next run lock a new one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stripe_source.errors import EXIT_RUN_IN_PROGRESS, StripeSourceError

POLL_SECONDS = 0.2


class RunInProgress(StripeSourceError):
    """Another process holds the pipeline's lock (or its DuckDB file)."""

    exit_code = EXIT_RUN_IN_PROGRESS


def lock_path(pipelines_dir: str | os.PathLike[str], pipeline_name: str) -> Path:
    return Path(pipelines_dir) / f".{pipeline_name}.run.lock"


@contextmanager
def run_lock(pipelines_dir: str | os.PathLike[str], pipeline_name: str, wait: float = 0.0) -> Iterator[Path]:
    """Hold the pipeline's run lock for the block; wait up to `wait` seconds for another run to end.

    Raises `RunInProgress` (one line naming the holder's PID) when it is still held after `wait`.
    """
    path = lock_path(pipelines_dir, pipeline_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                holder = _holder(fd)
                waited = f" (waited {wait:g} s)" if wait else ""
                raise RunInProgress(
                    f"another run of pipeline '{pipeline_name}' is in progress{holder}{waited}: let it finish, "
                    "or give --wait SECONDS to queue behind it"
                )
            time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def _holder(fd: int) -> str:
    try:
        pid = int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return ""
    return f" (PID {pid})"
