"""PostgreSQL as a destination that many runs write at once: dlt's postgres destination, changed
where concurrent runs (one per connected account, a Dagster partition each) would collide.

- Schema migrations are serialised. dlt creates a dataset and its tables, or adds columns, when a
  load starts, after reading what exists: two runs loading into a new dataset at the same moment
  both try to create it, and one fails ("duplicate key value violates unique constraint
  pg_type_typname_nsp_index", or "deadlock detected").
  Here a run holds a PostgreSQL advisory lock from reading what exists to committing its DDL, so
  the next run finds the tables created and adds only what is still missing. Migrations are short
  and rare (a first load, a new column); loads themselves run in parallel.
- A staging dataset per pipeline. Merges go through staging tables that a load truncates first,
  fills, then merges from: runs sharing `<dataset>_staging` would empty or merge each other's rows.
- COPY keeps empty strings. Loads go as CSV through COPY (the fastest of dlt's formats here, see
  benchmarks/bench_postgres.py), but dlt's COPY names every nullable column in FORCE_NULL, which
  turns a quoted "" into NULL too: Stripe's "" would become null. The CSV files are written by
  Arrow, which quotes every string and leaves nulls unquoted, so without FORCE_NULL the two stay
  apart.

    pipeline = dlt.pipeline("stripe_acct_1", destination=postgres_destination("stripe_acct_1"), ...)

Credentials come from dlt's usual places (`[destination.postgres.credentials]`,
DESTINATION__POSTGRES__CREDENTIALS) unless given. Needs psycopg2 (the `postgres` extra).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.destination.client import LoadJob, PreparedTableSchema
from dlt.common.schema.typing import TSchemaTables
from dlt.destinations import postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient, PostgresCsvCopyJob

__all__ = ["postgres_destination", "staging_layout", "MIGRATION_LOCK"]

# One advisory lock key for schema migrations of this source's datasets in a database (a 64-bit
# number of our own, so it cannot collide with another application's lock by accident).
MIGRATION_LOCK = int.from_bytes(hashlib.sha256(b"dlt-source-stripe schema migration").digest()[:8], "big",
                                signed=True)
_FORCE_NULL = re.compile(r"FORCE_NULL\([^)]*\),\s*")


def staging_layout(pipeline_name: str) -> str:
    """dlt's `staging_dataset_name_layout` for this pipeline: `<dataset>_staging_<pipeline>`, with a
    digest for a long pipeline name (PostgreSQL cuts names at 63 bytes, which could make two one)."""
    name = re.sub(r"[^a-z0-9_]", "_", pipeline_name.lower())
    if len(name) > 24:
        name = hashlib.sha256(pipeline_name.encode()).hexdigest()[:12]
    return f"%s_staging_{name}"


def postgres_destination(pipeline_name: str, credentials: Any = None, **kwargs: Any) -> ConcurrentPostgres:
    """dlt's postgres destination for one pipeline of many writing the same dataset at once."""
    return ConcurrentPostgres(credentials, staging_dataset_name_layout=staging_layout(pipeline_name),
                              destination_name="postgres", **kwargs)


class ConcurrentPostgres(postgres):
    def _raw_capabilities(self) -> DestinationCapabilitiesContext:
        caps = super()._raw_capabilities()
        caps.preferred_loader_file_format = "csv"
        return caps

    @property
    def client_class(self) -> type[PostgresClient]:
        return ConcurrentPostgresClient


class ConcurrentPostgresClient(PostgresClient):
    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        """Held on a session of its own: dlt resets its session after any failed query (a probe for
        a table that does not exist yet is one), and psycopg2's reset (DISCARD ALL) would release
        a lock held there, in the middle of the migration."""
        holder = psycopg2.connect(self.config.credentials.to_native_representation())
        try:
            holder.autocommit = True
            with holder.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            yield
        finally:
            holder.close()  # ends the session, and the lock with it

    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        with self.migration_lock():
            super().initialize_storage(truncate_tables)

    def update_stored_schema(self, only_tables: Iterable[str] | None = None,
                             expected_update: TSchemaTables | None = None, force: bool = False
                             ) -> TSchemaTables | None:
        with self.migration_lock():
            return super().update_stored_schema(only_tables, expected_update, force)

    def create_load_job(self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
                        ) -> LoadJob:
        job = super().create_load_job(table, file_path, load_id, restore)
        return CsvCopyKeepingEmptyStrings(file_path) if isinstance(job, PostgresCsvCopyJob) else job


class _CopyWithoutForceNull(psycopg2.extensions.cursor):
    def copy_expert(self, sql: str, file: Any, size: int = 8192) -> Any:
        return super().copy_expert(_FORCE_NULL.sub("", sql), file, size)


class CsvCopyKeepingEmptyStrings(PostgresCsvCopyJob):
    """dlt's COPY of a CSV file, without FORCE_NULL: only unquoted empty values are NULL."""

    def run(self) -> None:
        connection = self._job_client.sql_client.native_connection
        before, connection.cursor_factory = connection.cursor_factory, _CopyWithoutForceNull
        try:
            super().run()
        finally:
            connection.cursor_factory = before
