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
import re
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dlt
import stripe
from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigurationException
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from stripe_source import API_VERSION, AccountsReport, __version__, stripe_source
from stripe_source.client import check_request_timeout, check_user_agent_suffix
from stripe_source.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_LOAD_FAILED,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_STRIPE_UNAVAILABLE,
    InvalidInput,
    ReauthenticationRequired,
    StripeSourceError,
)

from .accounts import (
    ProgressLines,
    accounts_options,
    add_arguments,
    check_summary_path,
    failed_accounts_line,
    print_accounts_summary,
    write_summary,
)
from .redaction import redact, redact_record
from .run_lock import RunInProgress, run_lock

PIPELINE_NAME = "stripe"
DEFAULT_DATASET = "stripe"
DEFAULT_DUCKDB_PATH = "stripe_data.duckdb"
# DuckDB's own default is 80% of the machine's RAM, and a load holds what it inserts in memory up
# to that: a 1M-object load peaked at 1.2 GB. With 256 MB it spills to disk instead (1M objects:
# 584 MB peak for the load step alone, in about the same time).
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"
_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
# It names a directory (dlt's working dir) and a lock file: nothing that could leave the pipelines dir.
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
MAX_WAIT_SECONDS = 24 * 3600


def check_pipeline_name(name: str) -> None:
    if not _PIPELINE_NAME.fullmatch(name):
        raise InvalidInput(
            f"--pipeline-name {name!r} is not a pipeline name: use 1 to 64 letters, digits, _ or - "
            "(it names the pipeline's working directory)"
        )


def check_duckdb_path(path: Path) -> None:
    """Fail before any request when the DuckDB file cannot be written, without creating it."""
    import duckdb

    if path.is_dir():
        raise InvalidInput(f"--duckdb-path {path} is a directory: give a file name, e.g. {path / 'stripe.duckdb'}")
    if not path.exists():
        if not path.parent.is_dir():
            raise InvalidInput(f"--duckdb-path {path}: the directory {path.parent} does not exist: create it first")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise InvalidInput(f"--duckdb-path {path}: the directory {path.parent} is not writable: give another path")
        return
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error as exc:
        reason = _first_line(exc)
        holder = re.search(r"\(PID (\d+)\)", reason)
        if "lock" in reason.lower():
            raise RunInProgress(
                f"--duckdb-path {path} is in use by another process{f' (PID {holder.group(1)})' if holder else ''}: "
                "let it finish, or load into another file"
            ) from None
        raise InvalidInput(f"--duckdb-path {path} cannot be opened as a DuckDB database ({reason}): "
                           "give another path, or move the file away") from None


def check_destination_merges(pipeline: dlt.Pipeline) -> None:
    """Every run after the first merges updates and deletes (and `events` always does): a
    destination that would append instead silently duplicates updated rows and keeps deleted ones."""
    caps = pipeline.destination.capabilities()
    strategies = list(caps.supported_merge_strategies or [])
    if caps.merge_strategies_selector is not None:
        strategies = list(caps.merge_strategies_selector(strategies, table_schema={"name": "customers"}))
    if "delete-insert" not in strategies:
        name = pipeline.destination.destination_name
        plain = " writes plain files, which" if name == "filesystem" else ""
        raise InvalidInput(
            f"the {name} destination{plain} cannot merge updates and deletes (rows would be duplicated and "
            "deleted objects kept): load into duckdb (the default) or a warehouse such as postgres, bigquery "
            "or snowflake"
        )


def check_memory_limit(value: str) -> None:
    if not _MEMORY_SIZE.match(value.strip()):
        raise InvalidInput(f"--duckdb-memory-limit {value!r} is not a size: give it like 256MB or 2GB")


def postgres_destination(pipeline_name: str) -> Any:
    try:
        from stripe_source.postgres import postgres_destination
    except ImportError:
        raise InvalidInput("--destination postgres needs psycopg2: pip install 'dlt-source-stripe[postgres]'") from None
    return postgres_destination(pipeline_name)


def build_pipeline(
    destination: str = "duckdb",
    dataset: str = DEFAULT_DATASET,
    duckdb_path: str | None = None,
    pipeline_name: str = PIPELINE_NAME,
    pipelines_dir: str | None = None,
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
) -> dlt.Pipeline:
    """A pipeline writing parquet load files when the destination takes them (DuckDB loads them far faster)."""
    if destination == "duckdb":
        check_memory_limit(duckdb_memory_limit)
        if Path(duckdb_path or DEFAULT_DUCKDB_PATH).stem == dataset:
            # DuckDB names the catalog after the file; a dataset of the same name makes queries ambiguous
            raise InvalidInput(
                f"The DuckDB file name and the dataset are both '{dataset}': pick another --dataset or --duckdb-path"
            )
        # Absolute: dlt would otherwise resolve a relative file against its own dirs, and a pipeline
        # that ran before from another directory kept loading into that directory's file.
        path = str(Path(duckdb_path or DEFAULT_DUCKDB_PATH).resolve())
        credentials = DuckDbCredentials(path, global_config={"memory_limit": duckdb_memory_limit.strip()})
        target: Any = dlt.destinations.duckdb(credentials, preferred_loader_file_format="parquet")
    elif destination == "postgres":
        # runs of several accounts may write one dataset at once (stripe_source/postgres.py)
        target = postgres_destination(pipeline_name)
    else:
        target = destination
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target,
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
        progress="log",
    )


def forget_state_of_a_lost_destination(pipeline: dlt.Pipeline) -> dlt.Pipeline:
    """Start from scratch when the destination no longer holds our dataset.

    Cursors live in the local working dir as well as in the destination. If the DuckDB file was
    deleted (or --duckdb-path points somewhere new), trusting the local cursors would load only
    recent changes into an empty warehouse; a full load is what anyone would expect.
    """
    if pipeline.first_run:
        return pipeline
    with pipeline.sql_client() as client:
        if client.has_dataset():
            return pipeline
    return pipeline.drop()


def last_account(pipeline_name: str) -> str | None:
    """The Stripe account the last successful run of this pipeline loaded, from its state."""
    try:
        return dlt.attach(pipeline_name).state["sources"]["stripe"].get("account_id")
    except Exception:  # no working dir yet, or a state without it
        return None


# DuckDB runs each COPY on every core already: dlt's default of 20 parallel load jobs only adds
# memory (a 300k-object load peaked at 593 MB with 20, 376 MB with 2, 317 MB with 1, in about the
# same time with 2 as with 20). Remote warehouses keep dlt's default.
DUCKDB_LOAD_WORKERS = 2


def _is_duckdb(pipeline: dlt.Pipeline) -> bool:
    return pipeline.destination is not None and pipeline.destination.destination_type.endswith(".duckdb")


def load(pipeline: dlt.Pipeline, source: Any, workers: int | None = None) -> dict[str, int]:
    """Extract, normalize and load; returns the rows loaded per table. Raises if any job failed."""
    load_workers = {"workers": DUCKDB_LOAD_WORKERS} if _is_duckdb(pipeline) else {}
    if pipeline.has_pending_data:
        # A run that was killed or failed left packages: load them first, as `pipeline.run` does, so
        # this run plans from what the destination holds (and checks it for rows loaded twice).
        pipeline.normalize()
        pipeline.load(**load_workers).raise_on_failed_jobs()
    # One extract thread per resource: each waits on its own pages while the others fetch.
    extract_workers = workers or max(5, len(source.selected_resources) + 1)
    pipeline.extract(source, workers=extract_workers)
    normalize_info = pipeline.normalize()
    load_info = pipeline.load(**load_workers)
    load_info.raise_on_failed_jobs()
    counts = normalize_info.row_counts if normalize_info else {}
    return {table: n for table, n in counts.items() if not table.startswith("_dlt")}


def table_totals(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows per data table now in the destination."""
    schema = pipeline.default_schema
    tables = [t for t in schema.data_table_names() if not t.startswith("_dlt")]
    totals: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in sorted(tables):
            try:
                rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}")
            except Exception:  # a table declared in the schema but not created (no rows yet)
                continue
            totals[table] = rows[0][0]
    return totals


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
    from dlt.common.pipeline import get_dlt_pipelines_dir

    # Held for the whole run: a second run of this pipeline (cron overlap) waits or refuses, never
    # shares the working dir, whatever DuckDB file it writes to.
    with run_lock(get_dlt_pipelines_dir(), args.pipeline_name, args.wait), _request_timeout(args.request_timeout), \
            _source_config("USER_AGENT_SUFFIX", args.user_agent_suffix, check_user_agent_suffix):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    platform = accounts_options(args)
    summary_path = check_summary_path(args.summary_json)
    # `accounts` may also come from dlt config ([sources.stripe] accounts): the report knows
    report = AccountsReport()
    report.on_account = ProgressLines(report)  # a line per account as it ends, when it reads a platform's
    options = {"resources": args.resources, "start_date": args.start_date, "end_date": args.end_date,
               "api_base": args.api_base, "full_refresh": args.full_refresh or None, **_tuning(args), **platform,
               "report": report}
    # The destination first: a wrong name or missing credentials fail before any request to Stripe.
    pipeline = build_pipeline(args.destination, args.dataset, args.duckdb_path, args.pipeline_name,
                              duckdb_memory_limit=args.duckdb_memory_limit)
    if _is_duckdb(pipeline):
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
    from stripe_source.catalog import BY_TABLE
    from stripe_source.listing import why_off
    from stripe_source.options import select_tables
    from stripe_source.selection import left_out

    skipped = left_out(select_tables(resources), given=bool(resources))
    if skipped:
        print("Off by default: " + "; ".join(f"{t} ({why_off(BY_TABLE[t])})" for t in skipped)
              + f". Load them with --resources default,{','.join(skipped)} (or a group, or all)")


def cmd_tables(args: argparse.Namespace) -> int:
    from stripe_source.listing import render_text

    print(render_text())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from dlt.common.pipeline import get_dlt_pipelines_dir

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


def _tuning(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "lookback_seconds": args.lookback_seconds,
        "max_requests_per_second": args.max_rps,
        "max_requests_per_endpoint": args.max_rps_per_endpoint,
        "workers": args.workers,
        "flatten_processes": args.flatten_processes,
    }


@contextlib.contextmanager
def _request_timeout(seconds: float | None) -> Iterator[None]:
    """--request-timeout for every client of this run, through dlt config (as `request_timeout`
    under `[sources.stripe]` would give it), restored after the run."""
    with _source_config("REQUEST_TIMEOUT", seconds, lambda value: repr(check_request_timeout(value))):
        yield


@contextlib.contextmanager
def _source_config(name: str, value: Any, check: Any) -> Iterator[None]:
    """A command-line value as `[sources.stripe] <name>` for this run (SOURCES__STRIPE__<NAME>), restored after."""
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

    try:
        from .connect import add_commands
    except ImportError:  # the connection step is optional for embedding the loader alone
        pass
    else:
        add_commands(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # dlt warns about every all-null Stripe column at WARNING; keep the output to what matters
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        if redact_record not in handler.filters:
            handler.addFilter(redact_record)
    with _signals_interrupt() as received:
        try:
            code = args.handler(args)
        except BaseException as exc:  # one line for the user, the traceback only with DEBUG
            if isinstance(exc, SystemExit):
                raise
            message, code = user_error(exc)
            if received:  # whatever the interrupted step made of it
                message, code = _interrupted(received[0])
            if os.environ.get("STRIPE_PIPELINE_DEBUG"):
                # the same exit code with or without it: orchestrators read it
                print(redact("".join(traceback.format_exception(exc))), file=sys.stderr)
            print(f"Error: {redact(message)}" if code not in _SIGNAL_CODES else redact(message), file=sys.stderr)
            return code
        if received:  # a signal some library swallowed: never report an interrupted run as loaded
            message, code = _interrupted(received[0])
            print(message, file=sys.stderr)
        return code


_SIGNAL_CODES = {EXIT_INTERRUPTED, 128 + signal.SIGTERM}


def _interrupted(signum: int) -> tuple[str, int]:
    what = "Interrupted" if signum == signal.SIGINT else f"Terminated ({signal.Signals(signum).name})"
    return (f"{what}: the run stopped before it finished; run `stripe-pipeline run` again to finish "
            "(it completes what this run left pending)"), 128 + signum


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """SIGINT and SIGTERM stop the run: raised as KeyboardInterrupt where the main thread is, and
    flagged for dlt, whose steps check the flag between items (a KeyboardInterrupt can land in a
    finalizer, where Python ignores it). A second signal ends the process at once."""
    import threading

    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield received
        return
    from dlt.common.runtime import signals as dlt_signals

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) > 1:
            os.write(2, (_interrupted(received[0])[0] + "\n").encode())
            os._exit(128 + received[0])
        dlt_signals.set_received_signal(signum)
        dlt_signals.wake_all()
        raise KeyboardInterrupt

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        signal.signal(sig, on_signal)
    try:
        yield received
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        if received:
            dlt_signals.set_received_signal(0)


def cli() -> None:
    """The console script: `main`, then out, even if a thread stuck in a request would keep an
    interrupted process alive (the run is over; its outcome is printed and its code is set)."""
    code = main()
    if code in _SIGNAL_CODES:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        step_exception = getattr(current, "exception", None)  # dlt's PipelineStepFailed
        nested = step_exception if isinstance(step_exception, BaseException) else None
        current = current.__cause__ or nested or current.__context__


def user_error(exc: BaseException) -> tuple[str, int]:
    """Any failure as (one-line message, exit code): ours inside dlt's wrappers first."""
    chain = list(_chain(exc))
    for current in chain:
        if isinstance(current, KeyboardInterrupt):
            signum = getattr(current, "signal_code", signal.SIGINT)  # dlt's SignalReceivedException
            return _interrupted(signum if signum in (signal.SIGINT, signal.SIGTERM) else signal.SIGINT)
        if isinstance(current, StripeSourceError):
            return str(current), current.exit_code
        if isinstance(current, stripe.PermissionError):  # a permission taken away during the run
            # Stripe's message echoes part of the key: only the permission it names is shown
            named = re.search(r"'(rak_\w+)'", str(current))
            needs = f" (needs '{named.group(1)}')" if named else ""
            return (f"the Stripe key was refused a read during the run{needs}: grant the permission in the "
                    "Stripe Dashboard and run `stripe-pipeline connect --check`"), EXIT_PERMISSION
    from dlt.common.destination.exceptions import UnknownDestinationModule
    from dlt.load.exceptions import LoadClientJobFailed, LoadClientJobTerminalRetry
    from dlt.pipeline.exceptions import PipelineStepFailed

    if isinstance(exc, UnknownDestinationModule):
        return (f"unknown destination '{exc.ref}': use duckdb (the default) or a dlt "
                "destination name such as postgres, bigquery, snowflake or filesystem"), EXIT_BAD_INPUT
    if isinstance(exc, ConfigFieldMissingException):
        return (f"{_first_line(exc)}: set it in .dlt/secrets.toml or as an environment variable "
                "(see dlt's docs for the destination)"), EXIT_BAD_INPUT
    if isinstance(exc, ConfigurationException):
        return _first_line(exc), EXIT_BAD_INPUT
    for current in chain:
        if isinstance(current, LoadClientJobFailed | LoadClientJobTerminalRetry):
            return _failed_load(current), EXIT_LOAD_FAILED
        if type(current).__name__ == "JSONDecodeError":  # a page that is not JSON, parsed after the client
            return (f"Stripe's answer was not valid JSON ({_first_line(current)}): check --api-base and any "
                    "proxy in between, then run again"), EXIT_STRIPE_UNAVAILABLE
    root = chain[-1]
    if isinstance(exc, PipelineStepFailed) and exc.step == "load":
        return (f"loading into the destination failed: {_EXCEPTION_LINE.sub('', _first_line(root))}: fix what it "
                "names in the destination, then run `stripe-pipeline run` again (it retries this load first)"
                ), EXIT_LOAD_FAILED
    step = f"the {exc.step} step failed: " if isinstance(exc, PipelineStepFailed) else ""
    return (f"{step}{type(root).__name__}: {_first_line(root)} (run with STRIPE_PIPELINE_DEBUG=1 for the "
            "traceback)"), EXIT_LOAD_FAILED


def _failed_load(failed: Any) -> str:
    """The database's own error from the job's traceback, and what to do about it."""
    from dlt.load.exceptions import LoadClientJobFailed

    lines = [line.strip() for line in str(failed.failed_message).splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION_LINE.match(line)]
    reason = _EXCEPTION_LINE.sub("", errors[-1] if errors else (lines[-1] if lines else "no message"))
    table = failed.job_id.split(".")[0]
    if isinstance(failed, LoadClientJobFailed):  # dlt aborted the package: only a full re-read brings it back
        then = "`stripe-pipeline run --full-refresh`"
    else:
        then = f"`stripe-pipeline run` again (it retries load package {failed.load_id} first)"
    return f"loading table {table} failed: {reason}: fix or drop that table in the destination, then run {then}"


_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception): ")
