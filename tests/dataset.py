"""A dataset in DuckDB as comparable data: every row by a stable key, with dlt's bookkeeping out.

Root rows are keyed by their `id`; a nested row by its path (root id, nested table, list index,
...), so two loads of the same objects compare equal whatever `_dlt_id`s and load ids they got.
Null values are left out of a row (a column that exists in one dataset only because some other,
now deleted object had it, is not a difference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

DLT_BOOKKEEPING = {"_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_root_id", "_dlt_list_idx"}


def snapshot(db: Path, dataset: str = "stripe") -> dict[str, dict[Any, dict[str, Any]]]:
    """{table: {row key: {column: value}}} for every data table of `dataset`."""
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name NOT LIKE '_dlt%'",
            [dataset]).fetchall()]
        paths: dict[str, Any] = {}  # _dlt_id -> the row's key
        tables: dict[str, dict[Any, dict[str, Any]]] = {}
        for table in sorted(names, key=lambda n: n.count("__")):  # parents before their nested tables
            cursor = con.execute(f'SELECT * FROM {dataset}."{table}"')
            header = [d[0] for d in cursor.description]
            rows: dict[Any, dict[str, Any]] = {}
            for values in cursor.fetchall():
                row = dict(zip(header, values, strict=True))
                if "_dlt_parent_id" in row:
                    key = (paths[row["_dlt_parent_id"]], table, row["_dlt_list_idx"])
                else:
                    key = row["id"]
                paths[row["_dlt_id"]] = key
                assert key not in rows, f"{table}: {key} twice"
                rows[key] = {k: v for k, v in row.items() if k not in DLT_BOOKKEEPING and v is not None}
            tables[table] = rows
        return tables


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
