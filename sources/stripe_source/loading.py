"""Running a load the way `stripe-pipeline run` does, for the CLI and the orchestrators' partitions:
a package a killed or failed run left is loaded first, one extract thread per resource, and DuckDB
with few load jobs."""

from __future__ import annotations

from typing import Any

import dlt

# DuckDB runs each COPY on every core already: dlt's default of 20 parallel load jobs only adds
# memory, not speed. Remote warehouses keep dlt's default.
DUCKDB_LOAD_WORKERS = 2


def is_duckdb(pipeline: dlt.Pipeline) -> bool:
    return pipeline.destination is not None and pipeline.destination.destination_type.endswith(".duckdb")


def load(pipeline: dlt.Pipeline, source: Any, workers: int | None = None) -> dict[str, int]:
    """Extract, normalize and load; returns the rows loaded per table. Raises if any job failed."""
    load_workers = {"workers": DUCKDB_LOAD_WORKERS} if is_duckdb(pipeline) else {}
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
