"""A Connect platform's accounts as partitions, on 1 process and then on 4, into one PostgreSQL dataset.

    .venv/bin/python benchmarks/bench_partitions.py            # 100 connected accounts (~7 minutes on 2 cores)
    .venv/bin/python benchmarks/bench_partitions.py --quick    # 20 accounts, to check it runs (~2 minutes)

What an orchestrator does with `stripe_source.partitions` (the Dagster and Airflow recipes): one run
per account, each through its own pipeline (`account_pipeline` + `account_source`, what
`load_account` does), all into one dataset of a real PostgreSQL server (tests/postgres.py). Here the
orchestrator is plain processes taking the next account from one queue, as a run queue hands the next
partition to a free slot: first 1 process, then 4, each variant a first load into a new database
from the same emulated platform (the platform and its connected accounts, most small, a few large,
~300 ms + 0-50 ms per request, Stripe's live limits enforced per account by the emulator). Each run
paces itself as the product does, at Stripe's live limits (100 req/s, 25 per endpoint); the
emulator's key is a test-mode key, so they are given explicitly. Every run keeps the product's
other defaults (flatten worker processes included).

Per variant: wall seconds (from the moment the processes, already started and imported, are let
go), requests, rows landed, CPU seconds of the loaders (their flatten workers included), of the
PostgreSQL server and of the emulator, then a check that every account's rows landed exactly once
(each table's ids per account against the emulator's; a FAIL line otherwise). Then what bounds the
speedup, from what was measured: the machine's CPU (all CPU / cores x wall), the rate budgets (time
requests waited in the pacer, 429s, the busiest second against the 100 req/s one platform budget
would allow) and latency (the longest single account's run, which no number of processes shortens).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "sources"), str(ROOT)]

from benchmarks.bench_backfill import ENDPOINT_RPS, GLOBAL_RPS  # noqa: E402

SMALL, LARGE = 60, 5_000
PLATFORM_SCALE = 300
DATASET = "stripe"
PROCESSES = (1, 4)
STEPS = ("extract", "normalize", "load")


# --- one loader process: takes the next account off the queue until none is left
def _loader(accounts: mp.Queue, results: mp.Queue, go: mp.Event, platform: str, pipelines_dir: str) -> None:
    from stripe_source.cli.commands import load
    from stripe_source.client import Pacer
    from stripe_source.partitions import account_pipeline, account_source
    from stripe_source.postgres import ConcurrentPostgresClient

    waits: list[float] = []
    lock_waits: list[float] = []
    take_lock = ConcurrentPostgresClient.migration_lock

    @contextmanager
    def timed_migration_lock(self):
        asked = time.monotonic()
        with take_lock(self):
            lock_waits.append(time.monotonic() - asked)
            yield

    ConcurrentPostgresClient.migration_lock = timed_migration_lock  # how long schema migrations queued
    original = Pacer.wait_turn

    def timed_wait_turn(self, endpoint: str, priority: int = 0) -> float:
        asked = time.monotonic()
        granted = original(self, endpoint, priority)
        waits.append(granted - asked)
        return granted

    Pacer.wait_turn = timed_wait_turn  # how long the rate budget held each request back
    results.put(("ready", os.getpid()))
    go.wait()
    while True:
        try:
            account = accounts.get_nowait()
        except queue.Empty:
            break
        started, waits[:], lock_waits[:] = time.perf_counter(), [], []
        try:
            pipeline = account_pipeline(account, "postgres", DATASET, pipelines_dir)
            loaded = load(pipeline, account_source(account, platform, max_requests_per_second=GLOBAL_RPS,
                                                   max_requests_per_endpoint=ENDPOINT_RPS))
            steps = {s.step: (s.finished_at - s.started_at).total_seconds() for s in pipeline.last_trace.steps}
            status = "loaded"
        except Exception as exc:  # one account's failure is reported; the others go on
            loaded, steps, status = {}, {}, f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        results.put(("account", {"account": account, "wall": time.perf_counter() - started, "steps": steps,
                                 "rows": sum(loaded.values()), "status": status, "requests_paced": len(waits),
                                 "paced_wait": sum(waits), "held": sum(1 for w in waits if w > 0.001),
                                 "lock_wait": sum(lock_waits)}))
    for worker in mp.active_children():  # flatten workers: reaped, so their CPU counts as ours
        worker.join(5)
    results.put(("done", os.getpid()))


# --- CPU of the PostgreSQL server: the postmaster, the backends it has reaped, and those still running
def _proc_cpu(pid: int, with_children: bool) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if with_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(server) -> float:
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    total = _proc_cpu(postmaster, with_children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    total += _proc_cpu(int(entry.name), with_children=True)
            except (OSError, ValueError):
                continue  # gone meanwhile
    return total


def own_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# --- one variant: n processes, a new database
def run_variant(emu, server, accounts: list[str], processes: int, workdir: Path) -> dict:
    database = server.create_database()
    os.environ["DESTINATION__POSTGRES__CREDENTIALS"] = server.url(database)
    context = mp.get_context("spawn")  # the emulator's threads run in this process: no fork under them
    todo, results, go = context.Queue(), context.Queue(), context.Event()
    for account in accounts:
        todo.put(account)
    loaders = [context.Process(target=_loader, args=(todo, results, go, accounts[0], str(workdir / f"p{processes}")))
               for _ in range(processes)]
    for loader in loaders:
        loader.start()
    for _ in loaders:
        kind, _pid = results.get(timeout=120)
        assert kind == "ready", kind
    emu.reset_stats()
    cpu_before = (own_cpu(resource.RUSAGE_CHILDREN), postgres_cpu(server), own_cpu(resource.RUSAGE_SELF))
    started = time.perf_counter()
    go.set()
    outcomes, done = [], 0
    while done < processes:
        kind, payload = results.get(timeout=1800)
        if kind == "account":
            outcomes.append(payload)
            if len(outcomes) % 25 == 0:
                print(f"    {processes} process(es): {len(outcomes)}/{len(accounts)} accounts, "
                      f"{time.perf_counter() - started:.0f}s", flush=True)
        else:
            done += 1
    for loader in loaders:
        loader.join(60)
    wall = time.perf_counter() - started
    time.sleep(1)  # the server's backends for the loaders' connections end and are reaped
    loaders_cpu = own_cpu(resource.RUSAGE_CHILDREN) - cpu_before[0]
    server_cpu = postgres_cpu(server) - cpu_before[1]
    emulator_cpu = own_cpu(resource.RUSAGE_SELF) - cpu_before[2]
    stats = emu.stats()
    per_second: Counter[int] = Counter()
    for seconds in stats["timeline"].values():
        per_second.update({int(s): n for s, n in seconds.items()})
    problems = verify(emu, server.url(database), accounts)
    return {"processes": processes, "wall": wall, "requests": stats["requests_total"], "429s": stats["rate_limited"],
            "busiest_second": max(per_second.values(), default=0), "rows": rows_landed(server.url(database)),
            "cpu": {"loaders": loaders_cpu, "postgres": server_cpu, "emulator": emulator_cpu},
            "outcomes": outcomes, "problems": problems}


# --- what landed
def _query(url: str, sql: str) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def data_tables(url: str) -> list[str]:
    found = _query(url, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{DATASET}'")
    return sorted(t for (t,) in found if not t.startswith("_dlt"))


def rows_landed(url: str) -> int:
    return sum(_query(url, f"SELECT count(*) FROM {DATASET}.{table}")[0][0] for table in data_tables(url))


def verify(emu, url: str, accounts: list[str]) -> list[str]:
    """Each table's ids per account against the emulator's: every object once (events: at least the
    ones Stripe still holds), and each account's own account row. Returns what differs."""
    from stripe_source.catalog import CATALOG
    from tests.helpers import EMULATOR_RESOURCE

    existing = set(data_tables(url))
    problems = []
    for entry in CATALOG:
        landed: dict[str, list[str]] = defaultdict(list)
        if entry.table in existing:
            for account, object_id in _query(url, f"SELECT stripe_account_id, id FROM {DATASET}.{entry.table}"):
                landed[account].append(object_id)
        for account in accounts:
            got = landed.get(account, [])
            twice = [i for i, n in Counter(got).items() if n > 1]
            if twice:
                problems.append(f"{account} {entry.table}: {len(twice)} ids landed more than once, e.g. {twice[0]}")
            if entry.singleton:
                expected = {account}
            else:
                expected = {o["id"] for o in emu.objects(EMULATOR_RESOURCE[entry.table], account=account)}
            missing, extra = expected - set(got), set(got) - expected
            if missing or (extra and entry.table != "events"):
                problems.append(f"{account} {entry.table}: {len(missing)} missing, {len(extra)} not in the emulator")
        stray = set(landed) - set(accounts)
        if stray:
            problems.append(f"{entry.table}: rows of accounts not loaded: {sorted(stray)[:3]}")
    return problems


# --- the report
def report(results: list[dict], accounts: int, cores: int) -> None:
    one, many = results[0], results[-1]
    header = ["", *(f"{r['processes']} process{'es' if r['processes'] > 1 else ''}" for r in results)]
    lines = [
        ["wall s", *(f"{r['wall']:.1f}" for r in results)],
        ["requests", *(f"{r['requests']:,}" for r in results)],
        ["rows landed", *(f"{r['rows']:,}" for r in results)],
        ["CPU s: loaders", *(f"{r['cpu']['loaders']:.1f}" for r in results)],
        ["CPU s: PostgreSQL server", *(f"{r['cpu']['postgres']:.1f}" for r in results)],
        ["CPU s: emulator", *(f"{r['cpu']['emulator']:.1f}" for r in results)],
        ["machine busy (all CPU / cores x wall)", *(f"{busy(r, cores):.0%}" for r in results)],
        ["requests per second: mean / busiest second",
         *(f"{r['requests'] / r['wall']:.0f} / {r['busiest_second']}" for r in results)],
        ["requests held by the pacer (> 1 ms) / mean hold ms",
         *(f"{held(r):.0%} / {mean_hold_ms(r):.1f}" for r in results)],
        ["429s", *(str(r["429s"]) for r in results)],
        ["account run s: median / longest",
         *(f"{statistics.median(o['wall'] for o in r['outcomes']):.1f} / {longest(r)['wall']:.1f}" for r in results)],
        ["account run s, median: extract / normalize / load",
         *(" / ".join(f"{stage_median(r, s):.2f}" for s in STEPS) for r in results)],
        ["accounts loaded / failed", *(f"{loaded(r)} / {len(r['outcomes']) - loaded(r)}" for r in results)],
        ["landed exactly once", *("yes" if not r["problems"] else f"NO ({len(r['problems'])})" for r in results)],
    ]
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    print(f"\n{accounts:,} accounts (the platform's own and its connected ones), one PostgreSQL dataset, "
          f"{cores} cores")
    for row in [header, *lines]:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                  strict=True))))
    print(f"wall, {many['processes']} processes vs 1: {many['wall'] / one['wall']:.2f}x "
          f"(speedup {one['wall'] / many['wall']:.2f}x)")
    for result in results:
        for problem in result["problems"][:20]:
            print(f"FAIL ({result['processes']} processes): {problem}")
        for outcome in result["outcomes"]:
            if outcome["status"] != "loaded":
                print(f"FAIL ({result['processes']} processes): {outcome['account']} {outcome['status']}")
    print(bounds(one, many, cores))


def busy(result: dict, cores: int) -> float:
    return sum(result["cpu"].values()) / (cores * result["wall"])


def held(result: dict) -> float:
    paced = sum(o["requests_paced"] for o in result["outcomes"])
    return sum(o["held"] for o in result["outcomes"]) / max(1, paced)


def mean_hold_ms(result: dict) -> float:
    paced = sum(o["requests_paced"] for o in result["outcomes"])
    return 1000 * sum(o["paced_wait"] for o in result["outcomes"]) / max(1, paced)


def longest(result: dict) -> dict:
    return max(result["outcomes"], key=lambda o: o["wall"])


def loaded(result: dict) -> int:
    return sum(1 for o in result["outcomes"] if o["status"] == "loaded")


def median_run(result: dict) -> float:
    return statistics.median(o["wall"] for o in result["outcomes"])


def stage_median(result: dict, step: str) -> float:
    return statistics.median(o["steps"].get(step, 0.0) for o in result["outcomes"])


def bounds(one: dict, many: dict, cores: int) -> str:
    """What the measured figures say holds the parallel run back."""
    slowest = longest(many)
    shared_floor = many["requests"] / GLOBAL_RPS
    grew = {step: stage_median(many, step) - stage_median(one, step) for step in STEPS}
    lines = [
        f"what bounds {many['processes']} processes ({many['wall']:.1f}s, {many['wall'] / one['wall']:.2f}x of 1):",
        "  an account's run, median s (extract / normalize / load): "
        + ", ".join(f"{r['processes']} at once {' / '.join(f'{stage_median(r, s):.2f}' for s in STEPS)}"
                    for r in (one, many)),
        f"  CPU: machine busy {busy(one, cores):.0%} with 1 process, {busy(many, cores):.0%} with "
        f"{many['processes']}; all the CPU of the {many['processes']}-process run needs >= "
        f"{sum(many['cpu'].values()) / cores:.1f}s on {cores} cores",
        f"  rate budgets: {held(many):.0%} of requests waited for their run's pacer, {mean_hold_ms(many):.0f} ms on "
        f"average ({mean_hold_ms(one):.0f} ms with 1 process) against ~325 ms of latency each; {many['429s']} 429s. "
        f"Each run paces only its own account: together the processes peaked at {many['busiest_second']} req/s; "
        f"one budget of {GLOBAL_RPS:.0f} req/s shared by all would need >= {shared_floor:.1f}s for these "
        f"{many['requests']:,} requests",
        f"  latency: the longest account run took {slowest['wall']:.1f}s ({slowest['account']}: "
        f"{', '.join(f'{k} {v:.1f}s' for k, v in slowest['steps'].items())}); more processes do not shorten it",
    ]
    slower = median_run(many) / median_run(one)
    lock = statistics.median(o["lock_wait"] for o in many["outcomes"])
    lines.append(f"  schema-migration lock: an account's run waited {lock:.2f}s for it (median; "
                 f"{statistics.median(o['lock_wait'] for o in one['outcomes']):.2f}s with 1 process)")
    if busy(many, cores) >= 0.8:
        verdict = f"CPU: the {cores} cores are busy {busy(many, cores):.0%} of the time"
    elif mean_hold_ms(many) > 2 * mean_hold_ms(one) or many["429s"]:
        verdict = "the rate budgets: runs waited longer for their pacers, or were refused, with more processes"
    else:
        verdict = ("the processes slowing each other down, not the rate budget nor latency: an account's run "
                   f"takes {slower:.1f}x as long with {many['processes']} at once (median), growing by "
                   + ", ".join(f"{step} +{grew[step]:.2f}s" for step in STEPS)
                   + f", while its pacer holds stayed ~{mean_hold_ms(many):.0f} ms and the cores averaged "
                   f"{busy(many, cores):.0%} busy (the CPU-heavy stages of several runs meet on {cores} cores)")
    lines.append(f"  => bound by {verdict}")
    if shared_floor < many["wall"]:
        lines.append(f"  => a platform-wide budget shared by every process ({shared_floor:.1f}s of requests at "
                     f"{GLOBAL_RPS:.0f} req/s) would not bound this run")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 accounts: check the benchmark runs (~2 minutes)")
    parser.add_argument("--accounts", type=int, default=100, help="connected accounts")
    parser.add_argument("--large", type=int, default=2, help="of which large (scale 5,000)")
    args = parser.parse_args()
    if args.quick:
        args.accounts, args.large = 20, 1
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")

    from stripe_emulator import Emulator, RateLimits
    from stripe_source.partitions import list_accounts
    from tests import postgres

    workdir = Path(tempfile.mkdtemp(prefix="stripe-bench-partitions-"))
    scales = [LARGE] * args.large + [SMALL] * (args.accounts - args.large)
    server = postgres.start()
    results = []
    try:
        started = time.perf_counter()
        with Emulator(seed=3, scale=PLATFORM_SCALE, connected_scales=scales, rate_limits=RateLimits.live(),
                      latency_ms=300, jitter_ms=50) as emu:
            emu.advance(seconds=3600)  # the world's own history ends an hour before the first run
            os.environ.update(STRIPE_API_KEY=emu.api_key, STRIPE_API_BASE=emu.api_base)
            accounts = list_accounts()  # the platform's own, then its connected accounts, newest first
            print(f"  emulator: {len(accounts):,} accounts built in {time.perf_counter() - started:.0f}s", flush=True)
            for processes in PROCESSES:
                results.append(run_variant(emu, server, accounts, processes, workdir))
                print(f"  {processes} process(es): {results[-1]['wall']:.1f}s", flush=True)
    finally:
        postgres.remove(server)
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, len(accounts), os.cpu_count() or 1)


if __name__ == "__main__":
    main()
