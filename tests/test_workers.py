"""Worker processes: they die with the run, hold no connection open, and a run's process settings
last exactly as long as the resources that actually run."""

from __future__ import annotations

import gc
import multiprocessing
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import dlt

from stripe_source import stripe_source
from stripe_source.workers import WorkerPool
from tests.processes import ROOT, kill_when, start_run


def _in_group(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def test_a_killed_run_leaves_no_process_behind(emulator, tmp_path):
    emulator.reset_stats()
    process = start_run(emulator, tmp_path / "killed.duckdb", env={"SOURCES__STRIPE__FLATTEN_PROCESSES": "1",
                                                                   "SOURCES__STRIPE__MAX_REQUESTS_PER_SECOND": "30"})
    assert kill_when(process, lambda: emulator.stats()["requests_total"] > 10)
    # a supervisor reading the run's output sees it end: no worker holds stdout open
    deadline = time.monotonic() + 10
    while _in_group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _in_group(process.pid) == []
    assert process.stdout.read() is not None  # EOF, not a hang


def test_a_busy_worker_dies_with_its_parent():
    # the parent is killed while its worker is in the middle of a long task
    script = (
        "import sys, time; sys.path[:0] = [sys.argv[1] + '/sources', sys.argv[1]]\n"
        "from stripe_source.workers import WorkerPool\n"
        "pool = WorkerPool(1)\n"
        "print(pool.submit(__import__('os').getpid).result(), flush=True)\n"
        "pool.submit(time.sleep, 60)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(ROOT)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists()


def test_a_source_built_and_never_run_exits_cleanly(emulator):
    script = (
        "import sys; sys.path[:0] = [sys.argv[1] + '/sources', sys.argv[1]]\n"
        "from stripe_emulator import Emulator\n"
        "from stripe_source import stripe_source\n"
        "emu = Emulator(seed=1, scale=100).start()\n"
        "source = stripe_source(credentials=emu.api_key, api_base=emu.api_base, flatten_processes=1)\n"
        "print('built')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "built"
    assert done.stderr == ""  # no "Exception ignored in: weakref_cb" at exit


def test_a_narrowed_source_restores_the_process_after_its_run(emulator, tmp_path):
    threshold = gc.get_threshold()
    source = stripe_source(credentials=emulator.api_key, api_base=emulator.api_base, flatten_processes=1)
    pipeline = dlt.pipeline("narrowed", destination=dlt.destinations.duckdb(str(tmp_path / "n.duckdb")),
                            dataset_name="stripe_data")
    pipeline.run(source.with_resources("charges"))
    assert gc.get_threshold() == threshold
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert multiprocessing.active_children() == []


def _kinds(fds: list[int]) -> list[str]:
    return ["socket" if stat.S_ISSOCK(os.fstat(fd).st_mode) else "not a socket" for fd in fds]


def test_workers_let_go_of_inherited_network_sockets() -> None:
    # A forked worker holding a copy of a socket keeps its connection open after the parent
    # closes it (the peer then waits for its timeout): workers point such copies at /dev/null.
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unix_a, unix_b = socket.socketpair()
    pool = WorkerPool(1)
    try:
        kinds = pool.submit(_kinds, [tcp.fileno(), unix_a.fileno()]).result()
    finally:
        pool.close()
        for sock in (tcp, unix_a, unix_b):
            sock.close()
    assert kinds == ["not a socket", "socket"]  # the TCP socket let go of, the Unix one kept
