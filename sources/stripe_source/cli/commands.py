"""`stripe-pipeline`: connect a Stripe account, then load it into DuckDB or any dlt destination.

    stripe-pipeline connect                 # once: store and validate credentials
    stripe-pipeline run                     # every time: load what changed
    stripe-pipeline demo                    # try it on the local emulator, no Stripe account needed

Exit codes (for orchestrators): 0 loaded, 1 a load job failed, 2 bad input, 3 re-authenticate
(credentials revoked, expired or invalid), 4 a permission is missing, 5 Stripe unavailable, 6 another
run of the pipeline is in progress, 7 some of a platform's accounts failed (the others loaded),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.common.pipeline import get_dlt_pipelines_dir

from stripe_source import API_VERSION, AccountsReport, __version__, stripe_source
from stripe_source.catalog import BY_TABLE
from stripe_source.client import check_request_timeout, check_user_agent_suffix
from stripe_source.errors import EXIT_OK, InvalidInput, ReauthenticationRequired
from stripe_source.listing import render_text, why_off
from stripe_source.loading import is_duckdb, load
from stripe_source.options import select_tables
from stripe_source.selection import left_out

from .accounts import (
    ProgressLines,
    accounts_options,
    add_arguments,
    check_summary_path,
    failed_accounts_line,
    print_accounts_summary,
    write_summary,
)
from .connect import add_commands
from .failures import SIGNAL_CODES, interrupted, signals_interrupt, user_error
from .pipeline import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_DUCKDB_PATH,
    PIPELINE_NAME,
    build_pipeline,
    check_destination_merges,
    check_duckdb_path,
    check_pipeline_name,
    forget_state_of_a_lost_destination,
    last_account,
    table_totals,
)
from .redaction import redact, redact_record
from .run_lock import run_lock

MAX_WAIT_SECONDS = 24 * 3600  # --wait: at most a day


def print_summary(loaded: dict[str, int], totals: dict[str, int], seconds: float) -> None:
    width = max([len(t) for t in totals] + [5])
    print(f"\n{'table'.ljust(width)}  {'loaded':>9}  {'in warehouse':>12}")
    for table in sorted(totals):
        print(f"{table.ljust(width)}  {loaded.get(table, 0):>9,}  {totals[table]:>12,}")
    print(f"\n{sum(loaded.values()):,} rows loaded in {seconds:.1f}s")


# --- commands
def cmd_run(args: argparse.Namespace) -> int:
    check_pipeline_name(args.pipeline_name)
    if not 0 <= args.wait <= MAX_WAIT_SECONDS:
        raise InvalidInput(f"--wait must be from 0 to {MAX_WAIT_SECONDS} seconds, got {args.wait:g}")
    # Held for the whole run: a second run of this pipeline (cron overlap) waits or refuses, never
    # shares the working dir, whatever DuckDB file it writes to.
    with run_lock(get_dlt_pipelines_dir(), args.pipeline_name, args.wait), \
            _source_config("REQUEST_TIMEOUT", args.request_timeout, check_request_timeout), \
            _source_config("USER_AGENT_SUFFIX", args.user_agent_suffix, check_user_agent_suffix):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    platform = accounts_options(args)
    summary_path = check_summary_path(args.summary_json)
    # `accounts` may also come from dlt config ([sources.stripe] accounts): the report knows
    report = AccountsReport()
    report.on_account = ProgressLines(report)  # a line per account as it ends, when it reads a platform's
    options = {"resources": args.resources, "start_date": args.start_date, "end_date": args.end_date,
               "api_base": args.api_base, "full_refresh": args.full_refresh or None,
               "lookback_seconds": args.lookback_seconds, "max_requests_per_second": args.max_rps,
               "max_requests_per_endpoint": args.max_rps_per_endpoint, "workers": args.workers,
               "flatten_processes": args.flatten_processes, **platform, "report": report}
    # The destination first: a wrong name or missing credentials fail before any request to Stripe.
    pipeline = build_pipeline(args.destination, args.dataset, args.duckdb_path, args.pipeline_name,
                              duckdb_memory_limit=args.duckdb_memory_limit)
    if is_duckdb(pipeline):
        check_duckdb_path(Path(args.duckdb_path).resolve())
    else:
        pipeline.destination_client()  # resolves its configuration (credentials) without connecting
        check_destination_merges(pipeline)
    try:
        loaded = _load(args, pipeline, options, report)
    except BaseException as exc:
        if summary_path is not None:
            write_summary(summary_path, report.summary(error=redact(user_error(exc)[0])))
        raise
    code = report.exit_code  # 0 for one account: its failures raise
    if summary_path is not None:
        write_summary(summary_path, report.summary(loaded))
    if code != EXIT_OK:
        print(f"Error: {redact(failed_accounts_line(report))}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace, pipeline: dlt.Pipeline, options: dict[str, Any],
          report: AccountsReport) -> dict[str, int]:
    # Before the source reads the state (the accounts earlier runs loaded), not after.
    pipeline = forget_state_of_a_lost_destination(pipeline)
    # Only what was given on the command line: the rest comes from dlt config (e.g. the api_base
    # `connect` stored in .dlt/config.toml), which an explicit None would override.
    try:
        source = stripe_source(**{name: value for name, value in options.items() if value is not None})
    except ReauthenticationRequired as exc:
        if exc.account:
            raise
        # A rejected key cannot tell whose it was; the last successful run can.
        raise ReauthenticationRequired(exc.reason, last_account(args.pipeline_name)) from None
    started = time.perf_counter()
    loaded = load(pipeline, source)
    report.close()
    print_summary(loaded, table_totals(pipeline), time.perf_counter() - started)
    if report.platform:
        print_accounts_summary(report)
    print_left_out(args.resources)
    return loaded


def print_left_out(resources: str | None) -> None:
    """Name the tables off by default this run could have loaded, why they are off, and how to load them."""
    skipped = left_out(select_tables(resources), given=bool(resources))
    if skipped:
        print("Off by default: " + "; ".join(f"{t} ({why_off(BY_TABLE[t])})" for t in skipped)
              + f". Load them with --resources default,{','.join(skipped)} (or a group, or all)")


def cmd_tables(args: argparse.Namespace) -> int:
    print(render_text())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    with run_lock(get_dlt_pipelines_dir(), "stripe_demo"):
        return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    try:
        from stripe_emulator import Emulator  # the demo's stand-in for Stripe; the source never imports it
    except ImportError:
        raise InvalidInput("the demo needs the local Stripe emulator, a distribution of its own: from the "
                           "repository, pip install -e sources/stripe_emulator") from None

    print(f"Starting the local Stripe emulator (seed {args.seed}, ~{args.scale:,} objects)...")
    with Emulator(seed=args.seed, scale=args.scale) as emu:
        print(f"Emulator ready at {emu.api_base} (account {emu.account_id})")
        source = stripe_source(credentials=emu.api_key, api_base=emu.api_base, full_refresh=True)
        pipeline = build_pipeline("duckdb", args.dataset, args.duckdb_path, "stripe_demo")
        started = time.perf_counter()
        loaded = load(pipeline, source)
        print_summary(loaded, table_totals(pipeline), time.perf_counter() - started)
    path = Path(args.duckdb_path).resolve()
    query = (
        "SELECT date_trunc('month', created) AS month, status, count(*) AS invoices, sum(amount_paid) / 100 AS paid "
        f"FROM {pipeline.dataset_name}.invoices GROUP BY ALL ORDER BY month DESC, status LIMIT 8"
    )
    print(f"\nLoaded into {path}. Try:\n  duckdb {path} \"{query}\"\n")
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        print(con.sql(query))
    return EXIT_OK


@contextlib.contextmanager
def _source_config(name: str, value: Any, check: Callable[[Any], object]) -> Iterator[None]:
    """A command-line value as `[sources.stripe] <name>` for this run (SOURCES__STRIPE__<NAME>), so every
    client of the run sees it; restored after."""
    if value is None:
        yield
        return
    variable = f"SOURCES__STRIPE__{name}"
    before = os.environ.get(variable)
    os.environ[variable] = str(check(value))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


# --- the command line
def parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: `--start` must be an error, not quietly `--start-date`
    root = argparse.ArgumentParser(prog="stripe-pipeline", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    root.add_argument("--version", action="version",
                      version=f"%(prog)s {__version__} (Stripe API {API_VERSION}, dlt {dlt.__version__})")
    sub = root.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="load Stripe into DuckDB (or any dlt destination)", allow_abbrev=False)
    run.add_argument("--resources", help="comma-separated tables or groups to load: payments, billing, connect, "
                     "issuing, documents, core, default, all (default: every table on by default; see `tables`)")
    run.add_argument("--start-date", help="only objects created on/after this date (ISO 8601)")
    run.add_argument("--end-date", help="only objects created before this date (a stateless backfill window)")
    run.add_argument("--destination", default="duckdb", help="any dlt destination (default: duckdb)")
    run.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset/schema name (default: stripe)")
    run.add_argument("--duckdb-path", default=DEFAULT_DUCKDB_PATH, help="DuckDB file (default: ./stripe_data.duckdb)")
    run.add_argument("--duckdb-memory-limit", default=DEFAULT_DUCKDB_MEMORY_LIMIT,
                     help="memory DuckDB may use while loading; beyond it, it spills to disk (default: 256MB)")
    run.add_argument("--api-base", help="Stripe API base URL, e.g. the emulator's (default: api.stripe.com)")
    run.add_argument("--pipeline-name", default=PIPELINE_NAME, help="dlt pipeline name (state and working dir)")
    run.add_argument("--full-refresh", action="store_true", help="ignore cursors and read everything again")
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="when another run of this pipeline is in progress, wait this long for it (default: "
                          "refuse at once with exit code 6)")
    run.add_argument("--request-timeout", type=float, metavar="SECONDS",
                     help="wait this long for one answer from Stripe (default 30); a request is retried for at "
                          "most 4 times that")
    run.add_argument("--user-agent-suffix", metavar="TEXT",
                     help="appended to the User-Agent of every request to Stripe, e.g. acme-analytics/2.1 "
                          "(or [sources.stripe] user_agent_suffix)")
    run.add_argument("--lookback-seconds", type=int, help="re-read this far behind the last cursor (default 300)")
    run.add_argument("--max-rps", type=float, help="requests per second overall (default: 100 live, 25 test)")
    run.add_argument("--max-rps-per-endpoint", type=float, help="requests per second per endpoint (default 25)")
    run.add_argument("--workers", type=int,
                     help="concurrent list requests at most (default 64); sub-list pages as many again, at most 40")
    run.add_argument("--flatten-processes", type=int,
                     help="worker processes that parse and flatten pages (default: cores - 1, at most 4; 0: none)")
    add_arguments(run)
    run.set_defaults(handler=cmd_run)

    tables = sub.add_parser("tables", help="list every table: endpoint, how it syncs, default, permission, cost",
                            allow_abbrev=False)
    tables.set_defaults(handler=cmd_tables)

    demo = sub.add_parser("demo", help="load a seeded local Stripe emulator into DuckDB", allow_abbrev=False)
    demo.add_argument("--scale", type=int, default=5000, help="objects in the emulated account")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--duckdb-path", default="stripe_demo.duckdb")
    demo.add_argument("--dataset", default=DEFAULT_DATASET)
    demo.set_defaults(handler=cmd_demo)

    add_commands(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # dlt warns about every all-null Stripe column at WARNING; keep the output to what matters
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact_record)  # added once: addFilter skips a filter it holds
    with signals_interrupt() as received:
        try:
            code = args.handler(args)
        except SystemExit:
            raise
        except BaseException as exc:  # one line for the user, the traceback only with DEBUG
            message, code = user_error(exc)
            if received:  # whatever the interrupted step made of it
                message, code = interrupted(received[0])
            if os.environ.get("STRIPE_PIPELINE_DEBUG"):
                # the same exit code with or without it: orchestrators read it
                print(redact("".join(traceback.format_exception(exc))), file=sys.stderr)
            print(f"Error: {redact(message)}" if code not in SIGNAL_CODES else redact(message), file=sys.stderr)
            return code
        if received:  # a signal some library swallowed: never report an interrupted run as loaded
            message, code = interrupted(received[0])
            print(message, file=sys.stderr)
        return code


def cli() -> None:
    """The console script: `main`, then out, even if a thread stuck in a request would keep an
    interrupted process alive (the run is over; its outcome is printed and its code is set)."""
    code = main()
    if code in SIGNAL_CODES:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
