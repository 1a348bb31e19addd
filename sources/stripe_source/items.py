"""What a resource yields to dlt: Arrow tables marked with their hints, batched per table.

Pages arrive digested one by one (`pages.py`); `TableBatches` gathers them per table and yields
one Arrow table per batch (dlt's cost per item, schema checks and writer calls, is several ms: more
than flattening a page). This is where pages meet the schema: a page whose types disagree with the
schema or with the pages before it goes, with every page of its table after it, to dlt's own
normalizer, as rows. dlt infers those rows' types only at normalize, so the schema cannot tell later
pages what it chose: the table stays on dlt's path for the rest of the run (`RunTables`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.schema import Schema

from .flatten import (
    ARROW_TO_DLT,
    C_DLT_ID,
    C_DLT_LOAD_ID,
    C_LIST_IDX,
    C_PARENT_ID,
    C_ROOT_ID,
    DLT_COLUMNS,
    FlatTables,
    FlattenPlan,
)
from .pages import TableRows

ROOT_KEY_STRATEGIES = ("delete-insert", "upsert", "insert-only", "cdc")  # dlt gives nested rows `_dlt_root_id`

# the column hints dlt's relational normalizer attaches (see its `extend_schema`)
ROOT_DLT_COLUMNS: dict[str, dict[str, Any]] = {
    C_DLT_ID: {"data_type": "text", "nullable": False, "unique": True, "row_key": True},
    C_DLT_LOAD_ID: {"data_type": "text", "nullable": False},
}
_NESTED_COLUMNS: list[dict[str, Any]] = [
    {"name": C_DLT_ID, "data_type": "text", "nullable": False, "unique": True, "row_key": True},
    {"name": C_PARENT_ID, "data_type": "text", "nullable": False, "parent_key": True},
    {"name": C_LIST_IDX, "data_type": "bigint", "nullable": False},
]
_ROOT_ID_COLUMN: dict[str, Any] = {"name": C_ROOT_ID, "data_type": "text", "nullable": False, "root_key": True}


@dataclass
class RunTables:
    """What the resources of one run share about tables: which are on dlt's path, which carry JSON
    as text (dlt's warning about it is by design for them), nested tables' hints."""

    on_dlt_path: set[str] = field(default_factory=set)
    json_as_text: set[str] = field(default_factory=set)
    nested_hints: dict[tuple, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def nested(self, table: str, parent: str, with_root_id: bool, disposition: Any) -> Any:
        """Hints that make `table` a dlt nested table of `parent` (dlt's `parent_table_name`).

        The root's disposition is repeated: a variant starts from the resource's hints, and a
        nested table's own disposition would win over its root's at load.
        """
        key = (table, parent, with_root_id, repr(disposition))
        hints = self.nested_hints.get(key)
        if hints is None:
            columns = [dict(c) for c in _NESTED_COLUMNS] + ([dict(_ROOT_ID_COLUMN)] if with_root_id else [])
            hints = dlt.mark.make_hints(table_name=table, parent_table_name=parent, columns=columns,
                                        write_disposition=disposition)
            with self.lock:
                self.nested_hints[key] = hints
        return hints


def source_schema() -> Schema | None:
    try:
        return dlt.current.source_schema()
    except Exception:  # outside an extract (e.g. called directly)
        return None


def merge_strategy(hints: Mapping[str, Any]) -> str | None:
    disposition = hints.get("write_disposition")
    if isinstance(disposition, dict) and disposition.get("disposition") == "merge":
        return disposition.get("strategy", "delete-insert")
    return "delete-insert" if disposition == "merge" else None


def needs_root_id(hints: Mapping[str, Any]) -> bool:
    """Whether nested rows carry `_dlt_root_id`: merge tables, or all when the source propagates
    the root key (ours does, so a table can switch between append and merge runs)."""
    if merge_strategy(hints) in ROOT_KEY_STRATEGIES:
        return True
    schema = source_schema()
    config = (schema._normalizers_config.get("json") or {}).get("config") or {} if schema else {}
    return bool(config.get("root_key_propagation"))


def plan_for(table: str, hints: Mapping[str, Any]) -> FlattenPlan:
    """The plan for flattening rows of `table` now: its hints and what the live schema holds."""
    known: dict[str, dict[str, str]] = {}
    schema = source_schema()
    if schema is not None:
        for name, schema_table in schema.tables.items():
            if name == table or name.startswith(table + "__"):
                columns = schema_table.get("columns", {})
                known[name] = {c: col["data_type"] for c, col in columns.items() if col.get("data_type")}
    pk = hints.get("primary_key")
    return FlattenPlan(
        table=table,
        hinted={name: col.get("data_type") for name, col in (hints.get("columns") or {}).items()},
        known=known,
        strategy=merge_strategy(hints),
        primary_key=(pk,) if isinstance(pk, str) else tuple(pk or ()),
        with_root_id=needs_root_id(hints),
    )


class TableBatches:
    """One resource's pages gathered per table and yielded as dlt items (not thread-safe)."""

    def __init__(self, run: RunTables, resource: str, max_objects: int = 5000) -> None:
        self.run = run
        self.resource = resource
        self.max_objects = max_objects
        self._pages: dict[str, list[TableRows]] = {}
        self._count: dict[str, int] = {}
        self._given: dict[str, Any] = {}  # per table: the hints the caller gave
        self._hints: dict[str, Any] = {}  # and with dlt's own columns
        self.filled: set[str] = set()  # tables given rows (tombstones included) by this resource's run

    def add(self, rows: TableRows, hints: Any) -> list[Any]:
        """Items to yield now (possibly none): the table's earlier pages once enough are gathered."""
        table = rows.table
        self.filled.add(table)
        items = self._flush_table(table) if self._given.get(table, hints) is not hints else []
        if self._given.get(table) is not hints:
            self._given[table], self._hints[table] = hints, with_dlt_columns(hints)
        if rows.flat is None or table in self.run.on_dlt_path:
            return items + self._flush_table(table) + self._for_dlt(table, rows.rows(), self._hints[table])
        self._pages.setdefault(table, []).append(rows)
        self._count[table] = self._count.get(table, 0) + rows.count
        if self._count[table] >= self.max_objects:
            items.extend(self._flush_table(table))
        return items

    def flush(self) -> list[Any]:
        """Items for everything still gathered; call when the resource's pages end."""
        return [item for table in list(self._pages) for item in self._flush_table(table)]

    def _flush_table(self, table: str) -> list[Any]:
        pages = self._pages.pop(table, [])
        self._count.pop(table, None)
        if not pages:
            return []
        hints = self._hints[table]
        plan = plan_for(table, self._given[table])
        types: dict[str, dict[str, str]] = {}
        pieces: dict[str, list[pa.Table]] = {}
        parents: dict[str, str | None] = {}
        rest: list[Any] = []
        for n, page in enumerate(pages):
            if table in self.run.on_dlt_path or not _agrees(page.flat, plan, types):
                rest = [item for later in pages[n:] for item in self._for_dlt(table, later.rows(), hints)]
                break
            for name, parent, arrow_table in page.flat:
                pieces.setdefault(name, []).append(arrow_table)
                parents[name] = parent
        merged: FlatTables = []
        for name, tables in pieces.items():
            doubles = [col for col, data_type in types.get(name, {}).items() if data_type == "double"]
            tables = [_as_doubles(t, doubles) for t in tables]
            merged.append((name, parents[name], pa.concat_tables(tables, promote_options="default")
                           if len(tables) > 1 else tables[0]))
        return self._marked(merged, hints, plan) + rest

    def _for_dlt(self, table: str, rows: list[dict], hints: Any) -> list[Any]:
        with self.run.lock:
            self.run.on_dlt_path.add(table)
        return [dlt.mark.with_hints(rows, hints, create_table_variant=True)]

    def _marked(self, flat: FlatTables, hints: Any, plan: FlattenPlan) -> list[Any]:
        items = []
        load_id = dlt.current.load_package_state()["load_id"]
        for name, parent, arrow_table in flat:
            if parent is None:
                if "json" in plan.hinted.values():
                    with self.run.lock:
                        self.run.json_as_text.add(self.resource)
                arrow_table = arrow_table.append_column(
                    C_DLT_LOAD_ID, pa.array([load_id] * arrow_table.num_rows, pa.string()))
                arrow_table = _not_null(arrow_table, (C_DLT_ID, C_DLT_LOAD_ID, *plan.primary_key))
                items.append(dlt.mark.with_hints(arrow_table, hints, create_table_variant=True))
            else:
                arrow_table = _not_null(arrow_table, DLT_COLUMNS)
                nested = self.run.nested(name, parent, plan.with_root_id, hints.get("write_disposition"))
                items.append(dlt.mark.with_hints(arrow_table, nested, create_table_variant=True))
        return items


def with_dlt_columns(hints: Any) -> Any:
    """Root table hints with dlt's own `_dlt_id` and `_dlt_load_id` columns, as its normalizer
    declares them (merge SQL finds the row key by the `row_key` hint)."""
    columns = hints.get("original_columns") or hints.get("columns") or {}
    if isinstance(columns, Mapping):
        columns = list(columns.values())
    if any(column.get("name") == C_DLT_ID for column in columns):
        return hints
    extended = dict(hints)
    # dlt applies variant hints from `original_columns` (see DltResourceHints.merge_hints)
    extended.pop("columns", None)
    extended["original_columns"] = [*columns, *({"name": name, **hint} for name, hint in ROOT_DLT_COLUMNS.items())]
    return extended


def realign_tables(run: RunTables, roots: Iterable[str], hints: Mapping[str, Any]) -> list[Any]:
    """Empty items for `roots` and their nested tables whose disposition in the schema is not this
    run's.

    A table keeps the disposition of the last run that gave it rows. A merge run whose pages hold
    none for a nested table (no fee details in any new balance transaction) would leave it with its
    first run's disposition: dlt then creates no staging table for it and the root's merge fails
    on the missing table. An empty item re-declares the table with this run's disposition. Only
    roots given rows this run need it (no merge runs for the others, whose turn comes with their
    rows): each realigned table costs a load job.
    """
    schema = source_schema()
    if schema is None:
        return []
    items = []
    for root in roots:
        disposition = hints[root].get("write_disposition")
        wanted = disposition.get("disposition") if isinstance(disposition, dict) else disposition
        with_root_id = needs_root_id(hints[root])
        for name, table in list(schema.tables.items()):
            if (name != root and not name.startswith(root + "__")) or table.get("write_disposition") == wanted:
                continue
            if name == root:
                marked = with_dlt_columns(hints[root])
            elif table.get("parent"):
                marked = run.nested(name, table["parent"], with_root_id, disposition)
            else:
                continue
            empty = pa.table({C_DLT_ID: pa.array([], pa.string())})
            items.append(dlt.mark.with_hints(empty, marked, create_table_variant=True))
    return items


def _agrees(flat: FlatTables, plan: FlattenPlan, types: dict[str, dict[str, str]]) -> bool:
    """Whether a page's column types fit the schema and the pages before it; records new ones."""
    found: dict[str, dict[str, str]] = {}
    for name, parent, arrow_table in flat:
        known = plan.known.get(name, {})
        hinted = plan.hinted if parent is None else {}
        seen = types.get(name, {})
        for column in arrow_table.schema:
            if column.name in DLT_COLUMNS:
                continue
            data_type = "timestamp" if pa.types.is_timestamp(column.type) else ARROW_TO_DLT.get(column.type)
            expected = seen.get(column.name) or known.get(column.name) or hinted.get(column.name)
            if expected is None or expected == data_type:
                found.setdefault(name, {})[column.name] = data_type or ""
            elif (data_type, expected) in (("text", "json"), ("bigint", "double")):
                found.setdefault(name, {})[column.name] = expected
            else:
                return False
    for name, columns in found.items():
        types.setdefault(name, {}).update(columns)
    return True


def _as_doubles(table: pa.Table, doubles: list[str]) -> pa.Table:
    for column in doubles:
        index = table.schema.get_field_index(column)
        if index >= 0 and table.schema.field(index).type == pa.int64():
            table = table.set_column(index, column, table.column(index).cast(pa.float64()))
    return table


def _not_null(arrow_table: pa.Table, names: tuple[str, ...]) -> pa.Table:
    """The Arrow schema says NOT NULL where the hints do (ids, keys), without copying any data:
    dlt compares each Arrow item's schema with the table's and warns about every difference."""
    schema = arrow_table.schema
    required = {name for name in names if name in schema.names and schema.field(name).nullable
                and arrow_table.column(name).null_count == 0}
    if not required:
        return arrow_table
    fields = [f.with_nullable(False) if f.name in required else f for f in schema]
    return pa.Table.from_arrays(arrow_table.columns, schema=pa.schema(fields, metadata=schema.metadata))
