"""A dataset in DuckDB or PostgreSQL as comparable data: every row by a stable key, with dlt's
bookkeeping out.

Root rows are keyed by their `id`; a nested row by its path (root id, nested table, list index,
...), so two loads of the same objects compare equal whatever `_dlt_id`s and load ids they got.
Null values are left out of a row (a column that exists in one dataset only because some other,
now deleted object had it, is not a difference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import orjson

from stripe_source.catalog import CATALOG

DLT_BOOKKEEPING = {"_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_root_id", "_dlt_list_idx"}

Database = Path | str  # a DuckDB file, or a PostgreSQL URL (postgresql://...)


@contextmanager
def connect(db: Database) -> Iterator[Any]:
    """A DB-API connection to the database, read-only where the database can make it so."""
    if isinstance(db, str) and db.startswith("postgresql://"):
        import psycopg2

        con = psycopg2.connect(db)
        con.set_session(readonly=True, autocommit=True)
        try:
            yield con
        finally:
            con.close()
        return
    with duckdb.connect(str(db), read_only=True) as con:
        yield con


_held: dict[str, Any] = {}  # database -> the connection `one_connection` keeps open for it


@contextmanager
def one_connection(db: Database) -> Iterator[None]:
    """`query` of `db` reuses one connection inside the block: opening a DuckDB file reads its whole
    catalog (~30 ms), which a check asking a few questions per table would pay hundreds of times.
    Nothing may write to `db` inside the block."""
    if str(db) in _held:
        yield
        return
    with connect(db) as con:
        _held[str(db)] = con
        try:
            yield
        finally:
            del _held[str(db)]


def query(db: Database, sql: str) -> list[tuple]:
    if str(db) in _held:
        return _fetch(_held[str(db)], sql)
    with connect(db) as con:
        return _fetch(con, sql)


def _fetch(con: Any, sql: str) -> list[tuple]:
    cursor = con.cursor()
    cursor.execute(sql)
    return [tuple(row) for row in cursor.fetchall()]


def snapshot(db: Database, dataset: str = "stripe", max_identifier_length: int | None = None
             ) -> dict[str, dict[Any, dict[str, Any]]]:
    """{table: {row key: {column: value}}} for every data table of `dataset`.

    JSON values compare as data (DuckDB returns JSON as text, PostgreSQL as dicts and lists).
    `max_identifier_length`: name tables and columns as a destination with that limit names them
    (PostgreSQL: 63), to compare with a dataset there."""
    name = _namer(max_identifier_length)
    with connect(db) as con:
        cursor = con.cursor()
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                       f"'{dataset}' AND table_name NOT LIKE '_dlt%'")
        names = [r[0] for r in cursor.fetchall()]
        paths: dict[str, Any] = {}  # _dlt_id -> the row's key
        tables: dict[str, dict[Any, dict[str, Any]]] = {}
        for table in sorted(names, key=lambda n: n.count("__")):  # parents before their nested tables
            cursor.execute(f'SELECT * FROM {dataset}."{table}"')
            header = [d[0] for d in cursor.description]
            rows: dict[Any, dict[str, Any]] = {}
            for values in cursor.fetchall():
                row = dict(zip(header, values, strict=True))
                if "_dlt_parent_id" in row:
                    key = (paths[row["_dlt_parent_id"]], name(table), row["_dlt_list_idx"])
                else:
                    key = row["id"]
                paths[row["_dlt_id"]] = key
                assert key not in rows, f"{table}: {key} twice"
                rows[key] = {name(k): _comparable(v) for k, v in row.items()
                             if k not in DLT_BOOKKEEPING and v is not None}
            tables[name(table)] = rows
        return tables


def _namer(max_length: int | None) -> Callable[[str], str]:
    if max_length is None:
        return lambda identifier: identifier
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    return NamingConvention(max_length=max_length).normalize_path


def _comparable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONDecodeError:
            return value
    return value


def differences(got: dict, expected: dict, tables_kept: tuple[str, ...] = ("events",)) -> list[str]:
    """What differs between two snapshots; `tables_kept` may hold rows `expected` lacks (the
    events log keeps what Stripe no longer holds, and their nested rows)."""
    found = []
    for table in sorted(set(got) | set(expected)):
        kept = table.split("__")[0] in tables_kept
        mine, theirs = got.get(table, {}), expected.get(table, {})
        missing = set(theirs) - set(mine)
        extra = set() if kept else set(mine) - set(theirs)
        if missing:
            found.append(f"{table}: {len(missing)} rows missing, e.g. {sorted(map(str, missing))[:3]}")
        if extra:
            found.append(f"{table}: {len(extra)} rows too many, e.g. {sorted(map(str, extra))[:3]}")
        for key in set(mine) & set(theirs):
            if mine[key] != theirs[key]:
                changed = {c for c in set(mine[key]) | set(theirs[key]) if mine[key].get(c) != theirs[key].get(c)}
                found.append(f"{table} {key}: " + ", ".join(
                    f"{c}={mine[key].get(c)!r} (fresh load: {theirs[key].get(c)!r})" for c in sorted(changed)))
    return found


def without_history(tables: dict) -> dict:
    """A snapshot without the tables that keep a row per run (the balance): no fresh load can equal them."""
    history = {entry.table for entry in CATALOG if entry.history}
    return {name: rows for name, rows in tables.items() if name.split("__")[0] not in history}
