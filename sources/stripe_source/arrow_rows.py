"""Stripe pages as Arrow tables: dlt's relational normalization done once per page, in bulk.

dlt's default path normalizes every object value by value (type inference, coercion, row ids,
one dict per row) and that is the CPU bottleneck (~2-5k Stripe objects/s per core). dlt passes
Arrow tables through normalize untouched, so here we do the same work the relational normalizer
would do, but per page and per column:

* dicts flatten into `a__b` columns, lists become nested tables `<table>__<field>` whose rows carry
  `_dlt_parent_id`, `_dlt_list_idx`, `_dlt_id` (dlt's own deterministic nested hash) and, for merge
  tables, `_dlt_root_id`; lists of scalars become a `value` column;
* root rows get a random `_dlt_id` (a key hash for upsert/insert-only, as dlt does) and
  `_dlt_load_id`;
* columns typed `timestamp` by the hints become UTC `timestamp[us]`, `json` columns JSON text;
* the nested tables are declared with `parent_table_name` and dlt's row/parent/root key hints,
  so merge (delete-insert), hard deletes and replace treat them as dlt's own nested tables.

Whenever a page holds something this fast path does not reproduce exactly (a list of lists, a field
with mixed types, an ISO-date string dlt would detect as timestamp, an int too large for int64, a type that
clashes with the schema so far), the page is handed to dlt's normalizer unchanged: always correct,
only slower for that page.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import socket
import stat
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.json.helpers import get_nested_row_hash, get_row_hash
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema import Schema
from dlt.common.schema.detections import is_iso_timestamp
from dlt.extract.state import get_current_pipe_name

__all__ = ["to_arrow_items", "ArrowRowsUnsupported"]

C_DLT_ID = "_dlt_id"
C_DLT_LOAD_ID = "_dlt_load_id"
C_PARENT_ID = "_dlt_parent_id"
C_LIST_IDX = "_dlt_list_idx"
C_ROOT_ID = "_dlt_root_id"
C_VALUE = "value"
_DLT_COLUMNS = (C_DLT_ID, C_DLT_LOAD_ID, C_PARENT_ID, C_LIST_IDX, C_ROOT_ID)

_NAMING = NamingConvention()  # dlt's default naming (snake_case), the one the relational normalizer uses
_TS_US = pa.timestamp("us", tz="UTC")
_ARROW_TO_DLT = {
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.bool_(): "bool",
    pa.string(): "text",
    pa.large_string(): "text",
}
# merge strategies for which dlt propagates the root row id and hashes the key into `_dlt_id`
_ROOT_KEY_STRATEGIES = ("delete-insert", "upsert", "insert-only", "cdc")
_KEY_HASH_STRATEGIES = ("upsert", "insert-only", "cdc")

# the nested-table column hints dlt's relational normalizer attaches (see its `extend_schema`)
_NESTED_COLUMNS: list[dict[str, Any]] = [
    {"name": C_DLT_ID, "data_type": "text", "nullable": False, "unique": True, "row_key": True},
    {"name": C_PARENT_ID, "data_type": "text", "nullable": False, "parent_key": True},
    {"name": C_LIST_IDX, "data_type": "bigint", "nullable": False},
]
_ROOT_ID_COLUMN: dict[str, Any] = {"name": C_ROOT_ID, "data_type": "text", "nullable": False, "root_key": True}
_ROOT_DLT_COLUMNS: dict[str, dict[str, Any]] = {
    C_DLT_ID: {"name": C_DLT_ID, "data_type": "text", "nullable": False, "unique": True, "row_key": True},
    C_DLT_LOAD_ID: {"name": C_DLT_LOAD_ID, "data_type": "text", "nullable": False},
}


class ArrowRowsUnsupported(Exception):
    """This page needs dlt's own normalizer (see the module docstring)."""


# key -> normalized identifier, (prefix, key) -> joined column path; shared, append-only caches
_ident_cache: dict[str, str] = {}
_path_cache: dict[tuple[str, str], str] = {}
_names_under: dict[str, dict[str, str]] = {}  # prefix -> {key: column name}
_child_cache: dict[tuple[str, str], str] = {}  # (table, list column) -> nested table name
_hint_cache: dict[tuple[bool, str, str, str], Any] = {}
_hint_lock = threading.Lock()
_root_hint_cache: dict[int, tuple[Any, Any]] = {}  # id(caller hints) -> (caller hints, extended)
_left_to_dlt: dict[int, tuple[Any, set[str]]] = {}  # id(live schema) -> (schema, tables on dlt's path)


def _ident(key: str) -> str:
    name = _ident_cache.get(key)
    if name is None:
        name = _NAMING.normalize_identifier(key) if key and not key.isspace() else "_empty"
        _ident_cache[key] = name
    return name


def _path(prefix: str, key: str) -> str:
    name = _path_cache.get((prefix, key))
    if name is None:
        name = _NAMING.shorten_fragments(prefix, _ident(key)) if prefix else _ident(key)
        _path_cache[(prefix, key)] = name
    return name


def _child_table(table: str, column: str) -> str:
    name = _child_cache.get((table, column))
    if name is None:
        name = _child_cache[(table, column)] = _NAMING.shorten_fragments(table, column)
    return name


class _Tables:
    """The rows of one page per (nested) table, flattened the way dlt's relational normalizer does."""

    __slots__ = ("rows", "links", "parents", "json_columns")

    def __init__(self, json_columns: Mapping[str, frozenset[str]]) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        # per nested table: (parent row index in its table, list index, root row index)
        self.links: dict[str, list[tuple[str, int, int, int]]] = {}
        self.parents: dict[str, str] = {}
        self.json_columns = json_columns

    def add(self, table: str, obj: dict[str, Any], parent: str | None, parent_idx: int, list_idx: int,
            root_idx: int) -> None:
        rows = self.rows.setdefault(table, [])
        row_idx = len(rows)
        if parent is None:
            root_idx = row_idx
        else:
            self.links.setdefault(table, []).append((parent, parent_idx, list_idx, root_idx))
        flat: dict[str, Any] = {}
        rows.append(flat)
        json_cols = self.json_columns.get(table, frozenset())
        lists: list[tuple[str, list]] = []
        self._flatten(obj, "", flat, lists, json_cols)
        for name, items in lists:
            child = _child_table(table, name)
            self.parents[child] = table
            for i, item in enumerate(items):
                kind = type(item)
                if kind is dict:
                    self.add(child, item, table, row_idx, i, root_idx)
                elif kind is list:  # dlt's {"list": [...]} wrapper rows: rare, left to dlt
                    raise ArrowRowsUnsupported("list of lists")
                else:
                    self.add(child, {C_VALUE: item}, table, row_idx, i, root_idx)

    @staticmethod
    def _flatten(obj: dict[str, Any], prefix: str, flat: dict[str, Any], lists: list, json_cols: frozenset) -> None:
        # the hot loop: one cached dict lookup per key for its column name (no call per key)
        names = _names_under.get(prefix)
        if names is None:
            names = _names_under.setdefault(prefix, {})
        for key, value in obj.items():
            name = names.get(key)
            if name is None:
                name = names[key] = _path(prefix, key)
            kind = type(value)
            if kind is dict and name not in json_cols:
                _Tables._flatten(value, name, flat, lists, json_cols)
            elif kind is list and name not in json_cols:
                lists.append((name, value))
            else:
                flat[name] = value


def _column(values: list[Any], target: str | None, detect: bool) -> tuple[pa.Array | None, str | None]:
    """One Arrow column for `values`, typed as dlt would type them; None if all values are null."""
    if target == "json":
        values = [v if v is None or type(v) is str else orjson.dumps(v).decode() for v in values]
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:  # mixed types, huge ints
        raise ArrowRowsUnsupported(str(exc)) from exc
    if arr.null_count == len(arr):
        return None, None
    inferred = _ARROW_TO_DLT.get(arr.type)
    if inferred is None:
        raise ArrowRowsUnsupported(f"arrow type {arr.type}")
    if inferred == "double" or (inferred == "bigint" and target == "double"):
        # dlt types a column by its first value: an int first and a float later is not a double
        first = next(v for v in values if v is not None)
        if type(first) is int and target != "double" and any(type(v) is float for v in values):
            raise ArrowRowsUnsupported("int then float")
        if inferred == "bigint":
            arr = arr.cast(pa.float64())
            inferred = "double"
    if target == "timestamp" and inferred in ("bigint", "double"):
        micros = pc.multiply(arr, 1_000_000) if inferred == "bigint" else pc.round(pc.multiply(arr, 1e6))
        return micros.cast(pa.int64()).cast(_TS_US), "timestamp"
    if target == "json" and inferred == "text":
        return arr, "json"
    if target is not None and target != inferred:
        raise ArrowRowsUnsupported(f"{inferred} values for a {target} column")
    if detect and inferred == "text":
        first = next(v for v in values if v is not None)
        if is_iso_timestamp(str, first):  # dlt's default detection would make it a timestamp
            raise ArrowRowsUnsupported("iso timestamp string")
    return arr, inferred


def _load_id() -> str | None:
    try:
        return dlt.current.load_package_state()["load_id"]
    except Exception:
        return None


def _strategy(hints: Mapping[str, Any]) -> str | None:
    disposition = hints.get("write_disposition")
    if isinstance(disposition, dict) and disposition.get("disposition") == "merge":
        return disposition.get("strategy", "delete-insert")
    return "delete-insert" if disposition == "merge" else None


def _needs_root_id(hints: Mapping[str, Any]) -> bool:
    """Whether nested rows carry `_dlt_root_id`: merge tables, or every table when the source
    propagates the root key (our source does, so a table can alternate replace and merge runs)."""
    if _strategy(hints) in _ROOT_KEY_STRATEGIES:
        return True
    schema = _source_schema()
    config = (schema._normalizers_config.get("json") or {}).get("config") or {} if schema else {}
    return bool(config.get("root_key_propagation"))


def _source_schema() -> Schema | None:
    try:
        return dlt.current.source_schema()
    except Exception:  # outside an extract (e.g. called directly)
        return None


def _nested_hints(table: str, parent: str, with_root_id: bool, disposition: Any) -> Any:
    """Hints that make `table` a dlt nested table of `parent` (dlt's documented `parent_table_name`).

    The root's write disposition is repeated: a table variant starts from the resource's own hints
    (default "append"), and a nested table's own disposition would win over its root's at load.
    """
    key = (with_root_id, table, parent, repr(disposition))
    hints = _hint_cache.get(key)
    if hints is None:
        columns = [dict(c) for c in _NESTED_COLUMNS] + ([dict(_ROOT_ID_COLUMN)] if with_root_id else [])
        hints = dlt.mark.make_hints(
            table_name=table, parent_table_name=parent, columns=columns, write_disposition=disposition
        )
        with _hint_lock:
            _hint_cache[key] = hints
    return hints


def realign_tables(roots: Iterable[str], hints: Mapping[str, Any]) -> list[Any]:
    """Empty items for `roots` and their nested tables whose disposition in the schema is not this
    run's.

    A table keeps the disposition of the last run that gave it rows. A merge run whose pages hold
    none for a nested table (no fee details in any new balance transaction) would leave it
    "replace" or "append": dlt then creates no staging table for it and the root's merge fails on
    the missing table; a root left "replace" would even be truncated with it. An empty item
    re-declares the table with this run's disposition.
    """
    schema = _source_schema()
    if schema is None:
        return []
    items = []
    for root in roots:
        disposition = hints[root].get("write_disposition")
        wanted = disposition.get("disposition") if isinstance(disposition, dict) else disposition
        with_root_id = _needs_root_id(hints[root])
        for name, table in schema.tables.items():
            if (name != root and not name.startswith(root + "__")) or table.get("write_disposition") == wanted:
                continue
            if name == root:
                marked = _root_hints(hints[root])
            elif table.get("parent"):
                marked = _nested_hints(name, table["parent"], with_root_id, disposition)
            else:
                continue
            empty = pa.table({C_DLT_ID: pa.array([], pa.string())})
            items.append(dlt.mark.with_hints(empty, marked, create_table_variant=True))
    return items


def _patch_extract_metrics() -> None:
    """Work around a dlt 1.31 bug: items yielded to a nested table (`parent_table_name`) fail extract.

    `Extract._compute_metrics` groups extracted files by `schema.get_table(name)["resource"]`, which
    only root tables have (dlt refuses it on nested ones), so it raises KeyError. We let the lookup
    fall back to the nearest ancestor table (nested names extend their parent's with `__`).
    Nothing changes for tables that have the property.
    """
    from dlt.extract import extract as extract_module

    original = extract_module.aggregate_job_metrics
    if getattr(original, "_stripe_nested_fallback", False):
        return

    def aggregate_job_metrics(metrics: Any, key_f: Any) -> Any:
        def key(name: Any) -> Any:
            try:
                return key_f(name)
            except KeyError:
                if not isinstance(name, str):
                    raise
                parts = name.split("__")
                for cut in range(len(parts) - 1, 0, -1):
                    try:
                        return key_f("__".join(parts[:cut]))
                    except KeyError:
                        continue
                raise

        return original(metrics, key)

    aggregate_job_metrics._stripe_nested_fallback = True  # type: ignore[attr-defined]
    extract_module.aggregate_job_metrics = aggregate_job_metrics  # type: ignore[assignment]


_patch_extract_metrics()


class _JsonTextIsByDesign(logging.Filter):
    """Drops dlt's warning, once per Arrow item, that the item's column hints differ from the table's.

    For our tables the only difference left is by design: JSON columns travel as JSON text (Arrow
    has no JSON type that dlt reads), and dlt keeps the hinted `json` type, as its warning says.
    The details stay at INFO. Other resources keep the warning, and ours get it back when their run
    ends (`release_json_as_text`).
    """

    PREFIX = "In resource: "
    SUFFIX = ", when merging arrow schema with dlt schema, several column hints were different."

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str) or not message.startswith(self.PREFIX) or self.SUFFIX not in message:
            return True
        return message[len(self.PREFIX):message.index(self.SUFFIX)] not in _json_as_text


_json_as_text: set[str] = set()  # resources whose Arrow items carry JSON columns as text
logging.getLogger("dlt").addFilter(_JsonTextIsByDesign())


def release_json_as_text(resources: Iterable[str]) -> None:
    """The run of these resources ended: dlt's warning about resources of these names is heard again
    (another source in a long-lived process may use the same names)."""
    _json_as_text.difference_update(resources)


def _resource_name() -> str | None:
    try:
        return get_current_pipe_name()
    except Exception:  # outside a resource (e.g. called directly)
        return None


def _root_hints(hints: Any) -> Any:
    """The caller's hints plus dlt's row-key columns (merge SQL finds `_dlt_id` by `row_key`)."""
    columns = hints.get("original_columns") or hints.get("columns") or {}
    if isinstance(columns, Mapping):
        columns = list(columns.values())
    if any(col.get("name") == C_DLT_ID for col in columns):
        return hints
    key = id(hints)
    cached = _root_hint_cache.get(key)
    if cached is not None and cached[0] is hints:
        return cached[1]
    extended = dict(hints)
    # dlt applies variant hints from `original_columns` (see DltResourceHints.merge_hints)
    extended.pop("columns", None)
    extended["original_columns"] = [*columns, *(dict(c) for c in _ROOT_DLT_COLUMNS.values())]
    _root_hint_cache[key] = (hints, extended)
    return extended


@dataclass(frozen=True)
class FlattenPlan:
    """What flattening a batch of `table` needs from the extracting process (its hints and the
    live schema), so the flattening itself can run anywhere, another process included."""

    table: str
    hinted: Mapping[str, str | None]  # column -> data type given by the hints
    known: Mapping[str, Mapping[str, str]]  # root and nested table -> column types the schema holds
    strategy: str | None
    primary_key: tuple[str, ...]
    with_root_id: bool
    load_id: str | None


def plan_for(table: str, hints: Mapping[str, Any], load_id: str | None = None) -> FlattenPlan:
    """The plan for flattening rows of `table` now (reads the current pipeline schema)."""
    known: dict[str, dict[str, str]] = {}
    schema = _source_schema()
    if schema is not None:
        prefix = table + "__"
        for name, schema_table in schema.tables.items():
            if name == table or name.startswith(prefix):
                columns = schema_table.get("columns", {})
                known[name] = {c: col["data_type"] for c, col in columns.items() if col.get("data_type")}
    pk = hints.get("primary_key")
    return FlattenPlan(
        table=table,
        hinted={name: col.get("data_type") for name, col in (hints.get("columns") or {}).items()},
        known=known,
        strategy=_strategy(hints),
        primary_key=(pk,) if isinstance(pk, str) else tuple(pk or ()),
        with_root_id=_needs_root_id(hints),
        load_id=load_id,
    )


def build_arrow_tables(table: str, rows: list[dict[str, Any]], hints: Mapping[str, Any],
                       load_id: str | None = None) -> list[tuple[str, str | None, pa.Table]]:
    """Flatten rows of `table` into (table, parent table, Arrow table): root first, then nested.

    Raises ArrowRowsUnsupported if the rows need dlt's normalizer.
    """
    return build_tables(plan_for(table, hints, load_id), rows)


def build_tables(plan: FlattenPlan, rows: list[dict[str, Any]]) -> list[tuple[str, str | None, pa.Table]]:
    """`build_arrow_tables` with the plan made already: needs no dlt context."""
    table, hinted = plan.table, plan.hinted
    known: dict[str, Mapping[str, str]] = {table: plan.known.get(table, {})}
    json_columns = {table: frozenset(n for n, t in hinted.items() if t == "json")}
    json_columns[table] |= {name for name, data_type in known[table].items() if data_type == "json"}
    tables = _Tables(json_columns)
    for obj in rows:
        tables.add(table, obj, None, 0, 0, 0)

    root_ids: list[str]
    n_root = len(tables.rows.get(table, ()))
    if plan.strategy in _KEY_HASH_STRATEGIES:
        keys = list(plan.primary_key)
        root_ids = [get_row_hash({k: row.get(k) for k in keys}, subset=keys) for row in tables.rows[table]]
    else:
        root_ids = generate_dlt_ids(n_root)
    ids: dict[str, list[str]] = {table: root_ids}

    out: list[tuple[str, str | None, pa.Table]] = []
    for name, flat_rows in tables.rows.items():
        if name != table:
            known[name] = plan.known.get(name, {})
        targets = {**known[name], **hinted} if name == table else known[name]
        columns: dict[str, None] = {}
        for row in flat_rows:
            columns.update(dict.fromkeys(row))
        arrays: dict[str, pa.Array] = {}
        for col in columns:
            arr, _ = _column([row.get(col) for row in flat_rows], targets.get(col), col not in targets)
            if arr is not None:
                arrays[col] = arr
        if name == table:
            arrays[C_DLT_ID] = pa.array(root_ids, pa.string())
            if plan.load_id is not None:
                arrays[C_DLT_LOAD_ID] = pa.array([plan.load_id] * n_root, pa.string())
        else:
            links = tables.links[name]
            row_ids = [
                get_nested_row_hash(ids[parent][parent_idx], name, list_idx)
                for parent, parent_idx, list_idx, _ in links
            ]
            ids[name] = row_ids
            arrays[C_DLT_ID] = pa.array(row_ids, pa.string())
            arrays[C_PARENT_ID] = pa.array([ids[p][i] for p, i, _, _ in links], pa.string())
            arrays[C_LIST_IDX] = pa.array([idx for _, _, idx, _ in links], pa.int64())
            if plan.with_root_id:
                arrays[C_ROOT_ID] = pa.array([root_ids[r] for _, _, _, r in links], pa.string())
        out.append((name, tables.parents.get(name), pa.table(arrays)))
    return out


def to_arrow_items(table: str, rows: list[dict[str, Any]], hints: Any) -> list[Any]:
    """Items for a resource to yield for one page of `table`, in place of `with_hints(rows, hints)`.

    `hints` are the table's dlt hints (`dlt.mark.make_hints(...)`). Returns Arrow tables marked with
    hints (root table first, then its nested tables), or, for a page the fast path cannot
    reproduce exactly, the rows themselves for dlt's normalizer. Call it inside the resource (it
    reads the current load id and the pipeline schema) and yield every returned item.
    """
    if not rows:
        return []
    if _on_dlt_path(table):
        return _for_dlt(table, rows, hints)
    plan = plan_for(table, hints, _load_id())
    try:
        return _marked(build_tables(plan, rows), hints, plan)
    except ArrowRowsUnsupported:
        return _for_dlt(table, rows, hints)


def _on_dlt_path(table: str) -> bool:
    schema = _source_schema()
    return schema is not None and table in _left_to_dlt.get(id(schema), (None, set()))[1]


def _for_dlt(table: str, rows: list[dict[str, Any]], hints: Any) -> list[Any]:
    """Hand rows to dlt's normalizer, and keep `table` there until the next run: dlt infers the
    types of this page only at normalize, so the schema cannot tell later pages what it chose."""
    schema = _source_schema()
    if schema is not None:
        _left_to_dlt.setdefault(id(schema), (schema, set()))[1].add(table)
    return [dlt.mark.with_hints(rows, hints, create_table_variant=True)]


def _marked(arrow_tables: list[tuple[str, str | None, pa.Table]], hints: Any, plan: FlattenPlan) -> list[Any]:
    items = []
    for name, parent, arrow_table in arrow_tables:
        if parent is None:
            if "json" in plan.hinted.values():
                _json_as_text.add(_resource_name() or name)
            arrow_table = _not_null(arrow_table, (C_DLT_ID, C_DLT_LOAD_ID, *plan.primary_key))
            items.append(dlt.mark.with_hints(arrow_table, _root_hints(hints), create_table_variant=True))
        else:
            arrow_table = _not_null(arrow_table, _DLT_COLUMNS)
            nested = _nested_hints(name, parent, plan.with_root_id, hints.get("write_disposition"))
            items.append(dlt.mark.with_hints(arrow_table, nested, create_table_variant=True))
    return items


def _not_null(arrow_table: pa.Table, names: tuple[str, ...]) -> pa.Table:
    """The Arrow schema says NOT NULL where the hints do (ids, keys), without copying any data.

    dlt compares each Arrow item's schema with the table hints and warns about every item where
    they differ, so a nullable `_dlt_id` meant one warning per item.
    """
    schema = arrow_table.schema
    required = {
        name for name in names
        if name in schema.names and schema.field(name).nullable and arrow_table.column(name).null_count == 0
    }
    if not required:
        return arrow_table
    fields = [field.with_nullable(False) if field.name in required else field for field in schema]
    return pa.Table.from_arrays(arrow_table.columns, schema=pa.schema(fields, metadata=schema.metadata))


# --- flattening in worker processes
def flatten_processes_default() -> int:
    """One worker process per core beyond the one extracting (which fetches, parses and runs dlt)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def start_flatten_pool(processes: int) -> Executor | None:
    """Worker processes that flatten batches, started now (before the source starts threads: they
    are forked, so they begin with every module already imported). None if `processes` < 1."""
    if processes < 1:
        return None
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_init_worker)
    for ready in [pool.submit(_ready) for _ in range(processes)]:
        ready.result()
    return pool


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the extracting process's to handle
    _drop_inherited_sockets()
    gc.freeze()  # what was inherited stays shared with the parent instead of being copied
    gc.set_threshold(50_000, 50, 100)  # batches are short-lived: far fewer full collections


def _drop_inherited_sockets() -> None:
    """A worker never talks to the network, but fork gave it a copy of every socket the parent had
    open (pooled connections to Stripe, an in-process server's). While a copy is open, closing a
    socket in the parent closes no connection (no FIN, no reset): the peer waits. Point them at
    /dev/null instead of closing them, so a stale socket object can never close a reused number."""
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):  # not Linux: nothing to look through
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir(fd_dir):
            fd = int(name)
            # only network sockets: stdio (maybe a journald socket), log handlers' Unix sockets
            # and multiprocessing's own channels stay as they are
            if fd <= 2 or fd == devnull or not _is_network_socket(fd):
                continue
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _is_network_socket(fd: int) -> bool:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return False
        probe = socket.socket(fileno=fd)
    except OSError:  # closed meanwhile (e.g. the listing's own descriptor)
        return False
    try:
        return probe.family in (socket.AF_INET, socket.AF_INET6)
    finally:
        probe.detach()  # the descriptor is not ours to close


def _ready() -> bool:
    return True


def _flatten_remote(plan: FlattenPlan, payload: bytes) -> list[tuple[str, str | None, pa.Table]] | None:
    try:
        return build_tables(plan, orjson.loads(payload))
    except ArrowRowsUnsupported:
        return None


@dataclass
class _Pending:
    table: str
    rows: list[dict[str, Any]]
    hints: Any
    plan: FlattenPlan
    result: Future


class ArrowBuffer:
    """Collects pages per table and yields them as one Arrow table per batch of objects.

    dlt's per-item cost for Arrow tables (schema computation and validation, parquet writer calls)
    is several ms per yielded table, more than flattening 100 objects. Parsed rows (`add`) are
    converted 1,000 at a time: as dicts they are the bulky part of memory. Pages flattened by
    worker processes (`add_flat`) are compact Arrow already and are yielded 5,000 objects at a
    time (dlt's per-item share of the extracting process fell from ~10% to ~3%). With a `pool`,
    `add` converts in worker processes too (the rows travel as JSON: serializing is ~20x cheaper
    than the flattening it moves away), at most `max_pending` batches in flight. One buffer per
    resource generator (not thread-safe).
    """

    def __init__(self, max_objects: int = 1000, pool: Executor | None = None, max_pending: int = 3,
                 max_flat_objects: int = 5000) -> None:
        self.max_objects = max_objects
        self.max_flat_objects = max_flat_objects
        self.pool = pool
        self.max_pending = max_pending
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._hints: dict[str, Any] = {}
        self._pending: deque[_Pending] = deque()
        self._flat: dict[str, list[Any]] = {}  # pages flattened by worker processes (`digest.FlatRows`)
        self._flat_count: dict[str, int] = {}

    def add(self, table: str, rows: list[dict[str, Any]], hints: Any) -> list[Any]:
        """Items to yield now (possibly none): earlier pages of `table` once enough are collected."""
        items: list[Any] = []
        if table in self._hints and self._hints[table] is not hints:
            items.extend(self._flush_table(table))  # hints changed: never mix them in one table
        self._hints[table] = hints
        buffered = self._rows.setdefault(table, [])
        buffered.extend(rows)
        if len(buffered) >= self.max_objects:
            items.extend(self._flush_table(table))
        return items + self._finished(wait=False)

    def add_flat(self, table: str, flat: Any, hints: Any) -> list[Any]:
        """Like `add`, for one page's rows a worker process flattened already (`digest.FlatRows`)."""
        items: list[Any] = []
        if table in self._hints and self._hints[table] is not hints:
            items.extend(self._flush_table(table))
        if flat.tables is None or _on_dlt_path(table):
            items.extend(self._flush_table(table))  # earlier pages first
            return items + _for_dlt(table, flat.rows(), hints)
        self._hints[table] = hints
        self._flat.setdefault(table, []).append(flat)
        self._flat_count[table] = self._flat_count.get(table, 0) + flat.count
        if self._flat_count[table] >= self.max_flat_objects:
            items.extend(self._flush_table(table))
        return items + self._finished(wait=False)

    def flush(self) -> list[Any]:
        """Items for everything still buffered; call when the resource's pages end."""
        items: list[Any] = []
        for table in {*self._rows, *self._flat}:
            items.extend(self._flush_table(table))
        return items + self._finished(wait=True)

    def _flush_table(self, table: str) -> list[Any]:
        rows = self._rows.pop(table, [])
        hints = self._hints.pop(table, None)
        flat_pages = self._flat.pop(table, [])
        self._flat_count.pop(table, None)
        items = _concatenated(table, flat_pages, hints) if flat_pages else []
        if not rows:
            return items
        if self.pool is None or _on_dlt_path(table):
            return items + to_arrow_items(table, rows, hints)
        plan = plan_for(table, hints, _load_id())
        try:
            result = self.pool.submit(_flatten_remote, plan, orjson.dumps(rows))
        except (BrokenProcessPool, RuntimeError):  # the pool is gone (shut down or crashed)
            self.pool = None
            return items + to_arrow_items(table, rows, hints)
        self._pending.append(_Pending(table, rows, hints, plan, result))
        return items

    def _finished(self, wait: bool) -> list[Any]:
        """Items of the converted batches, oldest first; with `wait`, of all batches in flight.
        Beyond `max_pending` batches in flight, waits for the oldest: that bounds memory."""
        items: list[Any] = []
        pending = self._pending
        while pending and (wait or len(pending) > self.max_pending or pending[0].result.done()):
            batch = pending.popleft()
            try:
                arrow_tables = batch.result.result()
            except BrokenProcessPool:  # a worker died (e.g. out of memory): finish here
                self.pool = None
                arrow_tables = None if _on_dlt_path(batch.table) else _build_local(batch)
            if arrow_tables is None or _on_dlt_path(batch.table):
                items.extend(_for_dlt(batch.table, batch.rows, batch.hints))
            else:
                items.extend(_marked(arrow_tables, batch.hints, batch.plan))
        return items


def _concatenated(table: str, pages: list[Any], hints: Any) -> list[Any]:
    """Items for pages flattened one by one elsewhere: one Arrow table per table name.

    A worker typed each page on its own; a page whose types disagree with the schema or with the
    pages before it (where the in-process path would have raised ArrowRowsUnsupported) goes, with
    every page after it, to dlt's normalizer, as `to_arrow_items` does.
    """
    plan = plan_for(table, hints, _load_id())
    types: dict[str, dict[str, str]] = {}
    pieces: dict[str, list[pa.Table]] = {}
    parents: dict[str, str | None] = {}
    items: list[Any] = []
    for n, page in enumerate(pages):
        if _on_dlt_path(table) or not _agrees(page.tables, plan, types):
            for rest in pages[n:]:
                items.extend(_for_dlt(table, rest.rows(), hints))
            break
        for name, parent, arrow_table in page.tables:
            pieces.setdefault(name, []).append(arrow_table)
            parents[name] = parent
    merged = []
    for name, tables in pieces.items():
        doubles = [col for col, data_type in types.get(name, {}).items() if data_type == "double"]
        tables = [_as_doubles(t, doubles) for t in tables]
        merged_table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        if parents[name] is None and plan.load_id is not None:
            merged_table = merged_table.append_column(
                C_DLT_LOAD_ID, pa.array([plan.load_id] * merged_table.num_rows, pa.string())
            )
        merged.append((name, parents[name], merged_table))
    return _marked(merged, hints, plan) + items


def _agrees(tables: list[tuple[str, str | None, pa.Table]], plan: FlattenPlan,
            types: dict[str, dict[str, str]]) -> bool:
    """Whether a page's column types fit the schema and earlier pages; records the new ones."""
    found: dict[str, dict[str, str]] = {}
    for name, parent, arrow_table in tables:
        known = plan.known.get(name, {})
        hinted = plan.hinted if parent is None else {}
        seen = types.get(name, {})
        for column in arrow_table.schema:
            if column.name in _DLT_COLUMNS:
                continue
            data_type = "timestamp" if pa.types.is_timestamp(column.type) else _ARROW_TO_DLT.get(column.type)
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


def _build_local(batch: _Pending) -> list[tuple[str, str | None, pa.Table]] | None:
    try:
        return build_tables(batch.plan, batch.rows)
    except ArrowRowsUnsupported:
        return None
