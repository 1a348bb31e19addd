"""What the destination already holds of an account, read while a run plans and sweeps.

A run appends when the destination holds none of an account's rows in a table (a first load, the
fast path) and merges otherwise. A run that reads a whole list again (`full_refresh`, after the
30-day gap, a backfill window) removes the account's rows that the read no longer found: Stripe
deleted those objects, or they were deleted during the gap. Rows of other accounts are never
touched, so any number of accounts share a dataset.

Only SQL destinations can be asked; elsewhere a run merges and cannot sweep (and says so).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import dlt

logger = logging.getLogger(__name__)


class DestinationSql:
    """SQL to the pipeline's destination, one statement's client at a time: opening dlt's SQL client
    injects configuration sections into dlt's process-wide context, which two resource threads doing
    it at once would mangle."""

    _lock = threading.Lock()

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self.queryable = _queryable(pipeline)

    @contextmanager
    def client(self) -> Iterator[Any]:
        with self._lock, self._pipeline.sql_client() as client:
            yield client

    @staticmethod
    def query(client: Any, table: str, sql: str, *args: Any) -> list[tuple] | None:
        """Rows of `sql` about `table`; [] when the table or dataset does not exist yet, None when the
        question cannot be answered (a table of an older layout)."""
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        try:
            return client.execute_sql(sql.replace("{table}", client.make_qualified_table_name(table)), *args) or []
        except DatabaseUndefinedRelation:
            return []
        except Exception as exc:  # e.g. no stripe_account_id column: assume the worst, merge
            logger.info("Could not ask the destination about %s: %s", table, exc)
            return None


class DestinationView:
    """Read-only questions to the pipeline's destination about one account's rows."""

    def __init__(self, pipeline: Any, tables: Iterable[str], many_accounts: bool = False) -> None:
        self.sql = DestinationSql(pipeline)
        self.tables = tuple(tables)  # the tables a run may ask about
        # A run over many accounts asks each table once which accounts it holds, not once per account.
        self.many_accounts = many_accounts
        self._cache_lock = threading.Lock()
        self._with_rows: dict[str, set[str] | None] = {}  # account -> its tables with rows
        self._pending: dict[str, dict[str, int]] = {}  # table -> account -> its oldest row due to settle

    @property
    def queryable(self) -> bool:
        return self.sql.queryable

    @classmethod
    def current(cls, tables: Iterable[str], many_accounts: bool = False) -> DestinationView:
        try:
            pipeline = dlt.current.pipeline()
        except Exception:  # outside a pipeline run (e.g. the source iterated directly)
            pipeline = None
        return cls(pipeline, tables, many_accounts)

    def holds_rows(self, tables: Iterable[str], account: str) -> bool:
        """Whether any of `tables` holds a row of `account`; True when it cannot be known."""
        if not self.queryable:
            return True
        with self._cache_lock:
            if self.many_accounts:
                by_table = self._accounts_by_table
                return by_table is None or any(account in by_table.get(table, ()) for table in tables)
            if account not in self._with_rows:
                found = self._each_table("SELECT 1 FROM {table} WHERE stripe_account_id = %s LIMIT 1", account)
                self._with_rows[account] = None if found is None else {table for table, rows in found.items() if rows}
            with_rows = self._with_rows[account]
        return with_rows is None or not with_rows.isdisjoint(tables)

    @cached_property
    def _accounts_by_table(self) -> dict[str, set[str]] | None:
        """Per table of `self.tables`, the accounts it holds rows of (None: unknown)."""
        found = self._each_table("SELECT DISTINCT stripe_account_id FROM {table}")
        return None if found is None else {table: {row[0] for row in rows} for table, rows in found.items()}

    def _each_table(self, sql: str, *args: Any) -> dict[str, list[tuple]] | None:
        """The rows of `sql` about each table of `self.tables`, asked in one client ({} before the dataset
        exists; None when some table cannot be asked)."""
        found: dict[str, list[tuple]] = {}
        with self.sql.client() as client:
            if not client.has_dataset():
                return found
            for table in self.tables:
                rows = self.sql.query(client, table, sql, *args)
                if rows is None:
                    return None
                found[table] = rows
        return found

    def ids(self, table: str, account: str, column: str = "id", created_column: str | None = None,
            start: int | None = None, end: int | None = None,
            where_in: tuple[str, Sequence[str]] | None = None) -> set[str] | None:
        """The distinct values of `column` (ids, or a sub-list's parent ids) in `account`'s rows of
        `table` created in [start, end), and whose `where_in[0]` is one of `where_in[1]`; None when it
        cannot be known."""
        if not self.queryable:
            return None
        values = list(where_in[1]) if where_in is not None else []
        if where_in is not None and not values:
            return set()
        with self.sql.client() as client:
            where, args = ["stripe_account_id = %s"], [account]
            if where_in is not None:
                where.append(f"{client.escape_column_name(where_in[0])} IN ({', '.join(['%s'] * len(values))})")
                args.extend(values)
            if created_column and start is not None:
                where.append(f"{client.escape_column_name(created_column)} >= to_timestamp(%s)")
                args.append(start)
            if created_column and end is not None:
                where.append(f"{client.escape_column_name(created_column)} < to_timestamp(%s)")
                args.append(end)
            sql = f"SELECT DISTINCT {client.escape_column_name(column)} FROM {{table}} WHERE {' AND '.join(where)}"
            found = self.sql.query(client, table, sql, *args)
        return None if found is None else {row[0] for row in found}

    def oldest_pending(self, table: str, account: str, created_column: str, settles_column: str,
                       now: int) -> int | None:
        """The creation (Unix seconds) of `account`'s oldest row of `table` whose `status` is still
        pending though its `settles_column` time has passed; None when there is none or it cannot be known.
        Asked once a run for every account (a platform's run reads hundreds)."""
        if not self.queryable:
            return None
        with self._cache_lock:
            if table not in self._pending:
                with self.sql.client() as client:
                    created = client.escape_column_name(created_column)
                    sql = (f"SELECT stripe_account_id, min({created}) FROM {{table}} "
                           f"WHERE {client.escape_column_name('status')} = 'pending' "
                           f"AND {client.escape_column_name(settles_column)} <= to_timestamp(%s) "
                           "GROUP BY stripe_account_id")
                    found = self.sql.query(client, table, sql, now)
                self._pending[table] = {row[0]: int(row[1].timestamp()) for row in found or [] if row[1] is not None}
            return self._pending[table].get(account)

    def column_of(self, table: str, account: str, ids: Iterable[str], column: str) -> dict[str, str]:
        """`column` (a sub-list item's parent) of the rows of `account` in `table` with these ids; {}
        when it cannot be known."""
        wanted = sorted(ids)
        if not self.queryable or not wanted:
            return {}
        with self.sql.client() as client:
            sql = (f"SELECT id, {client.escape_column_name(column)} FROM {{table}} WHERE stripe_account_id = %s "
                   f"AND id IN ({', '.join(['%s'] * len(wanted))})")
            found = self.sql.query(client, table, sql, account, *wanted)
        return {row[0]: row[1] for row in found or [] if row[1] is not None}


def _queryable(pipeline: Any) -> bool:
    if pipeline is None or pipeline.destination is None:
        return False
    try:
        from dlt.destinations.sql_client import WithSqlClient

        with pipeline.destination_client() as client:
            return isinstance(client, WithSqlClient) and not pipeline.destination.destination_type.endswith(
                "filesystem")
    except Exception:
        return False


class DuplicateRepair:
    """Removes rows a resumed load wrote twice.

    dlt records a load job as done only after the destination committed its rows; a run killed in
    between leaves the job to be run again by the next load, which inserts the same rows (same
    `_dlt_id`) a second time. The run after it checks the rows of the loads since the last check
    and keeps one copy of each (the copies are identical: the same file loaded twice).
    """

    def __init__(self, view: DestinationView) -> None:
        self.view = view

    def repair(self, checked_through: str | None) -> str | None:
        """Repairs the loads after `checked_through`; returns the newest load now checked."""
        try:
            schema = dlt.current.source_schema()
        except Exception:  # outside an extract
            return checked_through
        if not self.view.queryable:
            return checked_through
        with self.view.sql.client() as client:
            if not client.has_dataset():
                return checked_through
            newest = self.view.sql.query(client, "_dlt_loads", "SELECT max(load_id) FROM {table} WHERE status = 0")
            newest = newest[0][0] if newest else None
            if newest is None or newest == checked_through:
                return checked_through
            since = "" if checked_through is None else checked_through
            for name, table in schema.tables.items():
                if table.get("parent") or name.startswith("_dlt") or "_dlt_load_id" not in table.get("columns", {}):
                    continue
                root = client.make_qualified_table_name(name)
                recent = f"SELECT _dlt_id FROM {root} WHERE _dlt_load_id > %s"
                self._dedupe(client, name, recent, since)
                for nested, nested_table in schema.tables.items():
                    if nested.startswith(name + "__") and "_dlt_root_id" in nested_table.get("columns", {}):
                        self._dedupe(client, nested, f"SELECT _dlt_id FROM {{table}} WHERE _dlt_root_id IN ({recent})",
                                     since)
        return newest

    @staticmethod
    def _dedupe(client: Any, table: str, rows_of_recent_loads: str, since: str) -> None:
        qualified = client.make_qualified_table_name(table)
        recent = rows_of_recent_loads.replace("{table}", qualified)
        twice = f"SELECT _dlt_id FROM {qualified} WHERE _dlt_id IN ({recent}) GROUP BY _dlt_id HAVING count(*) > 1"
        try:
            found = client.execute_sql(f"SELECT count(*) FROM ({twice}) AS d", since)[0][0]
        except Exception as exc:  # a table not created yet, an older layout: nothing of ours to repair
            logger.info("Could not check %s for rows loaded twice: %s", table, exc)
            return
        if not found:
            return
        logger.warning("%s: %d rows were loaded twice by a load that was interrupted and resumed; keeping one copy",
                       table, found)
        # named for this process: runs of other accounts may repair the same dataset at the same time
        copies = client.make_qualified_table_name(f"_stripe_loaded_twice_{os.getpid()}")
        with client.begin_transaction():
            client.execute_sql(f"CREATE TABLE {copies} AS SELECT DISTINCT * FROM {qualified} WHERE _dlt_id IN "
                               f"({twice})", since)
            client.execute_sql(f"DELETE FROM {qualified} WHERE _dlt_id IN (SELECT _dlt_id FROM {copies})")
            client.execute_sql(f"INSERT INTO {qualified} SELECT * FROM {copies}")
            client.execute_sql(f"DROP TABLE {copies}")
