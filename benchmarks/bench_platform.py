"""A Connect platform's accounts at Stripe's pace: the first load of all of them, then the hourly run.

    .venv/bin/python benchmarks/bench_platform.py            # 1,000 connected accounts (~15 minutes)
    .venv/bin/python benchmarks/bench_platform.py --quick    # 60 accounts, to check it runs (< 2 minutes)

The world: the platform and its connected accounts, most small (scale 60: ~650 objects with their
lines, ~35 requests for a first load), a few large (scale 5,000), ~300 ms (+0-50 ms) per request and
Stripe's live limits enforced by the emulator for every account (100 req/s, 25 per endpoint). The
source paces every account's requests under one budget, the platform's (its default), at those
numbers; so the ceiling of a run is the least time that budget allows for its requests:
max(requests / 100, max over endpoints of that endpoint's requests / 25), for the first load from the
pages the world needs (every list page at 100 objects, every sub-list page), for the incremental run
from the requests it made (each unchanged account asks once each endpoint whose changes no event
announces, and its events: 1,000 requests on one endpoint are 40 s at 25 per endpoint). "Share of
ceiling" is that least time / the run's extract time.

1. first load, `accounts="all"`: requests, share of ceiling, CPU and wall per account, peak RSS.
2. incremental, an hour later, after a few changes in 5% of the accounts: requests, requests per unchanged account
   (the emulator's per-account counters), share of ceiling, CPU and wall per account.
3. pacing: the same first load without limits or pacing (same latency), for the CPU the pacer costs
   while it holds the run back (waiting must cost ~nothing): paced CPU / unpaced CPU.
Each run is a fresh child process (its CPU and peak memory are its own, its flatten workers included:
RSS summed over the processes, pages they share counted twice; PSS splits shared pages, what the tree
costs the machine); the memory sampler's own CPU is left out. The emulator runs in its own process so
it does not share our interpreter's GIL.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "sources"), str(ROOT)]

from benchmarks.bench_backfill import ENDPOINT_RPS, GLOBAL_RPS, TreeMemory, ceiling_seconds, world_needs  # noqa: E402

SMALL, LARGE = 60, 5_000
PLATFORM_SCALE = 2_000
CHANGED_SHARE = 0.05


# --- the emulator, in a child process
def _serve(conn, options: dict) -> None:
    from stripe_emulator import Emulator, RateLimits

    limits = RateLimits.live() if options.pop("limits") else None
    with Emulator(rate_limits=limits, **options) as emu:
        emu.advance(seconds=3600)  # the world's own history ends an hour before the first run
        conn.send({"api_base": emu.api_base, "api_key": emu.api_key, "platform": emu.account_id,
                   "accounts": emu.connected_account_ids, "pages": platform_needs(emu)})
        while True:
            command = conn.recv()
            if command == "stop":
                return
            if command[0] == "change":
                conn.send(change_some(emu, command[1]))


def platform_needs(emu) -> dict[str, int]:
    """The pages every account's first load needs per endpoint (one endpoint's pages of all accounts
    share its budget): the platform's, its list of accounts included, and each connected account's."""
    pages: Counter[str] = Counter()
    for account in [emu.account_id, *emu.connected_account_ids]:
        pages.update(world_needs(emu, account)["pages"])
    return dict(pages)


def change_some(emu, share: float) -> list[str]:
    """An hour later (the next scheduled run), a few changes (an email, a new charge, a new customer) in
    `share` of the connected accounts."""
    emu.advance(seconds=3600)
    rng = random.Random(7)
    changed = rng.sample(emu.connected_account_ids, max(1, round(len(emu.connected_account_ids) * share)))
    for account in changed:
        customers = emu.objects("customers", account=account)
        emu.update("customers", customers[0]["id"], account=account, email=f"moved-{account}@example.com")
        emu.create("charges", account=account, customer=customers[-1]["id"], amount=4200, currency="usd")
        emu.create("customers", account=account)
    return changed


class Platform:
    def __init__(self, options: dict) -> None:
        parent, child = mp.Pipe()
        self.process = mp.get_context("fork").Process(target=_serve, args=(child, dict(options)), daemon=True)
        self.process.start()
        self.conn = parent
        self.info = parent.recv()

    def stats(self) -> dict:
        return requests.get(self.info["api_base"] + "/_emulator/stats", timeout=30).json()

    def reset_stats(self) -> None:
        requests.post(self.info["api_base"] + "/_emulator/stats/reset", timeout=30)

    def change(self, share: float) -> list[str]:
        self.conn.send(("change", share))
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(30)


# --- one run of ours, in a child process
def run_platform(platform: Platform, workdir: Path, name: str, paced: bool = True) -> dict:
    parent, child = mp.Pipe()
    process = mp.get_context("fork").Process(target=_child, args=(child, platform.info, str(workdir), name, paced))
    process.start()
    while not parent.poll(1.0):
        if not process.is_alive():
            raise SystemExit(f"the {name} run ended with exit code {process.exitcode} and no result")
    result = parent.recv()
    process.join()
    return result


def _child(conn, info: dict, workdir: str, name: str, paced: bool) -> None:
    from stripe_source import AccountsReport, stripe_source
    from stripe_source.cli.commands import build_pipeline, load

    rates = (GLOBAL_RPS, ENDPOINT_RPS) if paced else (1e5, 1e5)  # unpaced: the highest the source accepts
    pipeline = build_pipeline("duckdb", "stripe", f"{workdir}/{name}.duckdb", name, f"{workdir}/dlt")
    report = AccountsReport()
    memory = TreeMemory()
    started = time.perf_counter()
    source = stripe_source(credentials=info["api_key"], api_base=info["api_base"], accounts="all", report=report,
                           max_requests_per_second=rates[0], max_requests_per_endpoint=rates[1])
    loaded = load(pipeline, source)
    report.close()
    wall = time.perf_counter() - started
    memory.stop()
    steps = {s.step: (s.finished_at - s.started_at).total_seconds() for s in pipeline.last_trace.steps}
    peaks = {s.step: memory.peaks_between(s.started_at.timestamp(), s.finished_at.timestamp())
             for s in pipeline.last_trace.steps}
    print(f"  {name}: peak RSS/PSS MB per stage: " + ", ".join(f"{step} {rss:,.0f}/{pss:,.0f}"
                                                              for step, (rss, pss) in peaks.items()), flush=True)
    for worker in mp.active_children():  # the flatten workers, so their CPU is counted too
        worker.join(5)
    cpu = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime")) - memory.cpu
    conn.send({"wall": wall, "steps": steps, "rows": sum(loaded.values()), "rss": memory.peak_mb,
               "pss": memory.peak_pss_mb, "cpu": cpu,
               "statuses": Counter(o.status for o in report.outcomes.values()), "requests": report.requests})


# --- the scenarios
def first_load(platform: Platform, workdir: Path, name: str, rows: list, paced: bool = True) -> dict:
    accounts = len(platform.info["accounts"]) + 1
    platform.reset_stats()
    ours = run_platform(platform, workdir, name, paced)
    stats = platform.stats()
    extract = ours["steps"].get("extract", ours["wall"])
    ceiling = ceiling_seconds(platform.info["pages"])
    label = "first load" if paced else "first load, no limits or pacing"
    share = f"{ceiling / extract:.0%}" if paced else ""
    rows.append([label, f"{accounts:,}", f"{stats['requests_total']:,}", share, "", f"{ours['cpu']:.1f}",
                 f"{1000 * ours['cpu'] / accounts:.0f}", f"{1000 * ours['wall'] / accounts:.0f}",
                 f"{ours['rss']:,.0f} / {ours['pss']:,.0f}", str(stats["rate_limited"]), dict(ours["statuses"])])
    print(f"  {label}: {ours['rows']:,} rows, extract {extract:.1f}s (ceiling {ceiling:.1f}s for "
          f"{sum(platform.info['pages'].values()):,} pages), whole {ours['wall']:.1f}s, CPU {ours['cpu']:.1f}s, "
          f"stages {ours['steps']}", flush=True)
    return ours


def incremental(platform: Platform, workdir: Path, name: str, rows: list) -> dict:
    accounts = [platform.info["platform"], *platform.info["accounts"]]
    changed = set(platform.change(CHANGED_SHARE))
    platform.reset_stats()
    ours = run_platform(platform, workdir, name)
    stats = platform.stats()
    by_account = stats["by_account"]
    platform_only = {"GET /v1/account", "GET /v1/accounts"}
    per_unchanged = [sum(n for endpoint, n in by_account.get(account, {}).items() if endpoint not in platform_only)
                     for account in accounts if account not in changed]
    per_changed = [sum(by_account.get(account, {}).values()) for account in changed]
    extract = ours["steps"].get("extract", ours["wall"])
    ceiling = ceiling_seconds(stats["requests"])  # each unchanged account asks three endpoints once each
    unchanged = f"{max(per_unchanged)} max, {sum(per_unchanged) / len(per_unchanged):.2f} mean"
    rows.append([f"incremental, {len(changed)} accounts changed", f"{len(accounts):,}", f"{stats['requests_total']:,}",
                 f"{ceiling / extract:.0%}", unchanged, f"{ours['cpu']:.1f}",
                 f"{1000 * ours['cpu'] / len(accounts):.0f}", f"{1000 * ours['wall'] / len(accounts):.0f}",
                 f"{ours['rss']:,.0f} / {ours['pss']:,.0f}", str(stats["rate_limited"]), dict(ours["statuses"])])
    print(f"  incremental: changed accounts made {min(per_changed)}-{max(per_changed)} requests; extract "
          f"{extract:.1f}s, whole {ours['wall']:.1f}s, CPU {ours['cpu']:.1f}s, stages {ours['steps']}", flush=True)
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 accounts: check the benchmark runs (< 2 minutes)")
    parser.add_argument("--accounts", type=int, default=1_000, help="connected accounts")
    parser.add_argument("--large", type=int, default=3, help="of which large (scale 5,000)")
    parser.add_argument("--pacing-accounts", type=int, default=200,
                        help="accounts of the world whose first load runs paced and unpaced, for the pacer's CPU")
    args = parser.parse_args()
    if args.quick:
        args.accounts, args.large, args.pacing_accounts = 60, 1, 0
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    workdir = Path(tempfile.mkdtemp(prefix="stripe-bench-platform-"))
    latency = {"latency_ms": 300, "jitter_ms": 50}
    scales = [LARGE] * args.large + [SMALL] * (args.accounts - args.large)
    rows: list[list] = []
    try:
        started = time.perf_counter()
        platform = Platform({"seed": 3, "scale": PLATFORM_SCALE, "connected_scales": scales, "limits": True,
                             **latency})
        print(f"  emulator: {args.accounts:,} connected accounts built in {time.perf_counter() - started:.0f}s",
              flush=True)
        try:
            paced = first_load(platform, workdir, "platform", rows)
            incremental(platform, workdir, "platform", rows)
        finally:
            platform.stop()
        if args.pacing_accounts and args.pacing_accounts < args.accounts:
            # the same CPU comparison on a smaller world: paced, then unpaced
            small = [LARGE] * args.large + [SMALL] * (args.pacing_accounts - args.large)
            platform = Platform({"seed": 3, "scale": PLATFORM_SCALE, "connected_scales": small, "limits": True,
                                 **latency})
            try:
                paced = first_load(platform, workdir, "paced", rows)
            finally:
                platform.stop()
        platform = Platform({"seed": 3, "scale": PLATFORM_SCALE,
                             "connected_scales": small if args.pacing_accounts else scales, "limits": False,
                             **latency})
        try:
            unpaced = first_load(platform, workdir, "unpaced", rows, paced=False)
        finally:
            platform.stop()
        rows.append(["pacing: paced CPU / unpaced CPU, same objects", "", "", "", "",
                     f"{paced['cpu'] / unpaced['cpu']:.2f}x", "", "", "", "", ""])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header = ["scenario", "accounts", "requests", "extract/ceiling", "requests per unchanged account",
              "CPU s", "CPU ms/account", "wall ms/account", "peak RSS / PSS MB", "429s", "accounts by status"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                  strict=True))))


if __name__ == "__main__":
    main()
