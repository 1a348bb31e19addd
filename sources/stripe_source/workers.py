"""Worker processes that digest pages off the extracting process, never outliving it.

They are forked when the source is built, before any thread of the run exists, so they begin with
every module imported and no lock held by a thread that will not be there. (The `forkserver` and
`spawn` start methods would re-run an unguarded user script in every worker.) A worker lets go of
the network sockets fork gave it, and exits as soon as its parent is gone, so a killed run leaves
no process behind holding its output open.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def default_processes() -> int:
    """One worker process per core beyond the one extracting (which fetches, parses and runs dlt)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class WorkerPool:
    """`processes` forked workers. `submit` returns None once the pool is closed or broken: the
    caller then does the work itself."""

    def __init__(self, processes: int) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        if processes > 0 and "fork" in multiprocessing.get_all_start_methods():
            try:
                self._executor = _forked(processes)
            except OSError as exc:  # a sandbox without fork: digest in-process
                logger.info("Worker processes unavailable (%s): pages are digested in-process", exc)
        # stopped at interpreter exit at the latest (a source built and never run), while Python can
        # still stop them cleanly
        weakref.finalize(self, _shutdown, self._executor)

    @property
    def started(self) -> bool:
        return self._executor is not None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future | None:
        executor = self._executor
        if executor is None:
            return None
        try:
            return executor.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):  # a worker died (e.g. out of memory), or shut down
            self.close()
            return None

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        _shutdown(executor)


def _shutdown(executor: ProcessPoolExecutor | None) -> None:
    if executor is not None:
        executor.shutdown(wait=False, cancel_futures=True)


def _forked(processes: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("fork")
    in_main_thread = threading.current_thread() is threading.main_thread()
    executor = ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_init_worker,
                                   initargs=(in_main_thread,))
    for ready in [executor.submit(_ready) for _ in range(processes)]:  # with fork, all start now
        ready.result()
    return executor


def _ready() -> bool:
    return True


def _init_worker(parent_is_main_thread: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the extracting process's to handle
    _die_with_parent(parent_is_main_thread)
    _drop_inherited_sockets()
    gc.freeze()  # what was inherited stays shared with the parent instead of being copied
    gc.set_threshold(50_000, 50, 100)  # pages are short-lived: far fewer full collections


def _die_with_parent(kernel_signal: bool) -> None:
    """Exit as soon as the process that forked us is gone (killed, crashed or just ended)."""
    parent = os.getppid()
    # the kernel's own signal on the parent's death is immediate, but it fires when the forking
    # *thread* ends: only ask for it when that thread is the main one
    if kernel_signal and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:  # everywhere else, and as a second line: an orphan is reparented
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _drop_inherited_sockets() -> None:
    """A worker never talks to the network, but fork gave it a copy of every socket the parent had
    open (pooled connections to Stripe, an in-process server's). While a copy is open, closing a
    socket in the parent closes no connection (no FIN, no reset): the peer waits. Point them at
    /dev/null instead of closing them, so a stale socket object can never close a reused number."""
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):  # not Linux: nothing to look through
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir(fd_dir):
            fd = int(name)
            # only network sockets: stdio, log handlers' Unix sockets and multiprocessing's own
            # channels stay as they are
            if fd > 2 and fd != devnull and _is_network_socket(fd):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _is_network_socket(fd: int) -> bool:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return False
        probe = socket.socket(fileno=fd)
    except OSError:  # closed meanwhile (e.g. the listing's own descriptor)
        return False
    try:
        return probe.family in (socket.AF_INET, socket.AF_INET6)
    finally:
        probe.detach()  # the descriptor is not ours to close
