"""The dlt pipeline a command runs: built for its destination (DuckDB by default, PostgreSQL for
concurrent runs, any dlt destination), its inputs checked, and a source loaded into it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from stripe_source.errors import InvalidInput

from .failures import first_line
from .run_lock import RunInProgress

PIPELINE_NAME = "stripe"
DEFAULT_DATASET = "stripe"
DEFAULT_DUCKDB_PATH = "stripe_data.duckdb"
# DuckDB's own default is 80% of the machine's RAM, and a load holds what it inserts in memory up
# to that; with a limit it spills to disk instead, in about the same time.
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"
_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
# It names a directory (dlt's working dir) and a lock file: nothing that could leave the pipelines dir.
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


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
        reason = first_line(exc)
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
        limit = duckdb_memory_limit.strip()
        if not _MEMORY_SIZE.match(limit):
            raise InvalidInput(
                f"--duckdb-memory-limit {duckdb_memory_limit!r} is not a size: give it like 256MB or 2GB"
            )
        path = Path(duckdb_path or DEFAULT_DUCKDB_PATH)
        if path.stem == dataset:
            # DuckDB names the catalog after the file; a dataset of the same name makes queries ambiguous
            raise InvalidInput(
                f"The DuckDB file name and the dataset are both '{dataset}': pick another --dataset or --duckdb-path"
            )
        # Absolute: dlt would otherwise resolve a relative file against its own dirs, and a pipeline
        # that ran before from another directory kept loading into that directory's file.
        credentials = DuckDbCredentials(str(path.resolve()), global_config={"memory_limit": limit})
        target: Any = dlt.destinations.duckdb(credentials, preferred_loader_file_format="parquet")
    elif destination == "postgres":
        try:
            from stripe_source.postgres import postgres_destination
        except ImportError:
            raise InvalidInput(
                "--destination postgres needs psycopg2: pip install 'dlt-source-stripe[postgres]'"
            ) from None
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


def table_totals(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows per data table now in the destination."""
    totals: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in sorted(pipeline.default_schema.data_table_names()):  # without dlt's own tables
            try:
                rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(table)}")
            except Exception:  # a table declared in the schema but not created (no rows yet)
                continue
            totals[table] = rows[0][0]
    return totals
