"""`stripe-pipeline`: connect a Stripe account, then load it into DuckDB or any dlt destination.

    stripe-pipeline connect                 # once: store and validate credentials
    stripe-pipeline run                     # every time: load what changed
    stripe-pipeline demo                    # try it on the local emulator, no Stripe account needed

Exit codes (for orchestrators): 0 loaded, 1 a load job failed, 2 bad input, 3 re-authenticate
(credentials revoked, expired or invalid), 4 a permission is missing, 5 Stripe unavailable.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dlt
import stripe
from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigurationException
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from stripe_source import stripe_source
from stripe_source.errors import (
    EXIT_LOAD_FAILED,
    EXIT_OK,
    EXIT_PERMISSION,
    InvalidInput,
    ReauthenticationRequired,
    StripeSourceError,
)

PIPELINE_NAME = "stripe"
DEFAULT_DATASET = "stripe"
DEFAULT_DUCKDB_PATH = "stripe_data.duckdb"
# DuckDB's own default is 80% of the machine's RAM, and a load holds what it inserts in memory up
# to that: a 1M-object load peaked at 1.2 GB. With 256 MB it spills to disk instead (1M objects:
# 584 MB peak for the load step alone, in about the same time).
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"
_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def check_memory_limit(value: str) -> None:
    if not _MEMORY_SIZE.match(value.strip()):
        raise InvalidInput(f"--duckdb-memory-limit {value!r} is not a size: give it like 256MB or 2GB")


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
    options = {"resources": args.resources, "start_date": args.start_date, "end_date": args.end_date,
               "api_base": args.api_base, "full_refresh": args.full_refresh or None, **_tuning(args)}
    # The destination first: a wrong name or missing credentials fail before any request to Stripe.
    pipeline = build_pipeline(args.destination, args.dataset, args.duckdb_path, args.pipeline_name,
                              duckdb_memory_limit=args.duckdb_memory_limit)
    if not _is_duckdb(pipeline):
        pipeline.destination_client()  # resolves its configuration (credentials) without connecting
    # Only what was given on the command line: the rest comes from dlt config (e.g. the api_base
    # `connect` stored in .dlt/config.toml), which an explicit None would override.
    try:
        source = stripe_source(**{name: value for name, value in options.items() if value is not None})
    except ReauthenticationRequired as exc:
        if exc.account:
            raise
        # A rejected key cannot tell whose it was; the last successful run can.
        raise ReauthenticationRequired(exc.reason, last_account(args.pipeline_name)) from None
    pipeline = forget_state_of_a_lost_destination(pipeline)
    started = time.perf_counter()
    loaded = load(pipeline, source)
    print_summary(loaded, table_totals(pipeline), time.perf_counter() - started)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from stripe_emulator import Emulator  # the demo's stand-in for Stripe; the source never imports it

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


# --- the command line
def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="stripe-pipeline", description=__doc__.split("\n\n")[0])
    sub = root.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="load Stripe into DuckDB (or any dlt destination)")
    run.add_argument("--resources", help="comma-separated tables to load (default: all)")
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
    run.add_argument("--lookback-seconds", type=int, help="re-read this far behind the last cursor (default 300)")
    run.add_argument("--max-rps", type=float, help="requests per second overall (default: 100 live, 25 test)")
    run.add_argument("--max-rps-per-endpoint", type=float, help="requests per second per endpoint (default 25)")
    run.add_argument("--workers", type=int,
                     help="concurrent list requests at most (default 64); sub-list pages as many again, at most 40")
    run.add_argument("--flatten-processes", type=int,
                     help="worker processes that parse and flatten pages (default: cores - 1, at most 4; 0: none)")
    run.set_defaults(handler=cmd_run)

    demo = sub.add_parser("demo", help="load a seeded local Stripe emulator into DuckDB")
    demo.add_argument("--scale", type=int, default=5000, help="objects in the emulated account")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--duckdb-path", default="stripe_demo.duckdb")
    demo.add_argument("--dataset", default=DEFAULT_DATASET)
    demo.set_defaults(handler=cmd_demo)

    try:
        from pipelines.connect_cli import add_commands
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
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("Interrupted: nothing from this run was loaded past the last completed step.", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user, the traceback only with DEBUG
        error = user_error(exc)
        if error is None:
            raise
        message, code = error
        if os.environ.get("STRIPE_PIPELINE_DEBUG"):
            traceback.print_exc()  # the same exit code with or without it: orchestrators read it
        print(f"Error: {message}", file=sys.stderr)
        return code


def user_error(exc: BaseException) -> tuple[str, int] | None:
    """Our error inside dlt's wrappers (a source or step failure), as (message, exit code)."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StripeSourceError):
            return str(current), current.exit_code
        if isinstance(current, stripe.PermissionError):  # a permission taken away during the run
            # Stripe's message echoes part of the key: only the permission it names is shown
            named = re.search(r"'(rak_\w+)'", str(current))
            needs = f" (needs '{named.group(1)}')" if named else ""
            return (f"the Stripe key was refused a read during the run{needs}: grant the permission in the "
                    "Stripe Dashboard and run `stripe-pipeline connect --check`"), EXIT_PERMISSION
        current = current.__cause__ or current.__context__
    from dlt.common.destination.exceptions import UnknownDestinationModule

    if isinstance(exc, UnknownDestinationModule):
        return (f"unknown destination '{exc.ref}': use duckdb (the default) or a dlt "
                "destination name such as postgres, bigquery, snowflake or filesystem"), 2
    if isinstance(exc, ConfigFieldMissingException):
        return (f"{str(exc).splitlines()[0]}: set it in .dlt/secrets.toml or as an environment variable "
                "(see dlt's docs for the destination)"), 2
    if isinstance(exc, ConfigurationException):
        return str(exc).splitlines()[0], 2
    from dlt.pipeline.exceptions import PipelineStepFailed

    if isinstance(exc, PipelineStepFailed):
        return f"the {exc.step} step failed: {str(exc.exception).splitlines()[0]}", EXIT_LOAD_FAILED
    return None


if __name__ == "__main__":
    sys.exit(main())
