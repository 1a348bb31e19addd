"""Rows flattened into Arrow tables exactly as dlt's relational normalizer would flatten them.

dlt's default path normalizes every value of every object one by one (type inference, coercion,
row ids, a dict per row): ~2-5k Stripe objects/s per core, the bottleneck of a backfill. dlt passes
Arrow tables through normalize untouched, so this module does the normalizer's work per page and
per column:

* dicts flatten into `a__b` columns; lists become nested tables `<table>__<field>` whose rows carry
  `_dlt_parent_id`, `_dlt_list_idx`, `_dlt_id` (dlt's own deterministic nested hash) and
  `_dlt_root_id`; lists of scalars become a `value` column;
* root rows get a random `_dlt_id` (a hash of the key for key-hashing strategies, as dlt does);
* columns typed `timestamp` by the plan become UTC `timestamp[us]`, `json` columns JSON text.

Pure: it needs no dlt context, so it runs in worker processes too. A page holding what only dlt's
normalizer reproduces exactly (a list of lists, a field with mixed types, an int column that turns
float, an ISO-date string dlt would detect as a timestamp, an int beyond int64) raises
`FlattenUnsupported`; the caller hands that page to dlt's normalizer. Whether a page's types agree
with the schema and the pages before it is decided where pages meet (`items.py`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.json.helpers import get_nested_row_hash, get_row_hash
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema.detections import is_iso_timestamp

C_DLT_ID = "_dlt_id"
C_DLT_LOAD_ID = "_dlt_load_id"
C_PARENT_ID = "_dlt_parent_id"
C_LIST_IDX = "_dlt_list_idx"
C_ROOT_ID = "_dlt_root_id"
C_VALUE = "value"
DLT_COLUMNS = (C_DLT_ID, C_DLT_LOAD_ID, C_PARENT_ID, C_LIST_IDX, C_ROOT_ID)
KEY_HASH_STRATEGIES = ("upsert", "insert-only", "cdc")  # dlt hashes the key into the root `_dlt_id`

ARROW_TO_DLT = {pa.int64(): "bigint", pa.float64(): "double", pa.bool_(): "bool", pa.string(): "text",
                pa.large_string(): "text"}
_TS_US = pa.timestamp("us", tz="UTC")
_NAMING = NamingConvention()  # dlt's default naming (snake_case), the one its normalizer uses

# key -> identifier, (prefix, key) -> column path, (table, column) -> nested table: append-only
_ident_cache: dict[str, str] = {}
_names_under: dict[str, dict[str, str]] = {}  # prefix -> {key: column name}
_child_cache: dict[tuple[str, str], str] = {}


class FlattenUnsupported(Exception):
    """This page needs dlt's own normalizer (see the module docstring)."""


FlatTables = list[tuple[str, "str | None", pa.Table]]  # (table, parent table, rows): root first


@dataclass(frozen=True)
class FlattenPlan:
    """What flattening rows of `table` needs to know: small, picklable, taken from the run."""

    table: str
    hinted: Mapping[str, str | None]  # column -> data type from the hints (root table)
    known: Mapping[str, Mapping[str, str]]  # root and nested table -> column types the schema holds
    strategy: str | None  # the merge strategy, if any
    primary_key: tuple[str, ...]
    with_root_id: bool


def _ident(key: str) -> str:
    name = _ident_cache.get(key)
    if name is None:
        name = _ident_cache[key] = _NAMING.normalize_identifier(key) if key and not key.isspace() else "_empty"
    return name


def _child_table(table: str, column: str) -> str:
    name = _child_cache.get((table, column))
    if name is None:
        name = _child_cache[(table, column)] = _NAMING.shorten_fragments(table, column)
    return name


class _Tables:
    """The rows of one batch per (nested) table, flattened the way dlt's normalizer does."""

    __slots__ = ("rows", "links", "parents", "json_columns")

    def __init__(self, json_columns: Mapping[str, frozenset[str]]) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.links: dict[str, list[tuple[str, int, int, int]]] = {}  # (parent, parent row, list idx, root row)
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
        lists: list[tuple[str, list]] = []
        _flatten(obj, "", flat, lists, self.json_columns.get(table, frozenset()))
        for name, items in lists:
            child = _child_table(table, name)
            self.parents[child] = table
            for i, item in enumerate(items):
                kind = type(item)
                if kind is dict:
                    self.add(child, item, table, row_idx, i, root_idx)
                elif kind is list:  # dlt's {"list": [...]} wrapper rows: rare, left to dlt
                    raise FlattenUnsupported("list of lists")
                else:
                    self.add(child, {C_VALUE: item}, table, row_idx, i, root_idx)


def _flatten(obj: dict[str, Any], prefix: str, flat: dict[str, Any], lists: list, json_cols: frozenset) -> None:
    # the hot loop: one cached dict lookup per key for its column name
    names = _names_under.get(prefix)
    if names is None:
        names = _names_under.setdefault(prefix, {})
    for key, value in obj.items():
        name = names.get(key)
        if name is None:
            name = names[key] = _NAMING.shorten_fragments(prefix, _ident(key)) if prefix else _ident(key)
        kind = type(value)
        if kind is dict and name not in json_cols:
            _flatten(value, name, flat, lists, json_cols)
        elif kind is list and name not in json_cols:
            lists.append((name, value))
        else:
            flat[name] = value


def column(values: list[Any], target: str | None, detect: bool) -> tuple[pa.Array | None, str | None]:
    """One Arrow column for `values` and its dlt type, converted to `target` where dlt would convert
    (timestamp, json, double); (None, None) if every value is null."""
    if target == "json":
        values = [v if v is None or type(v) is str else orjson.dumps(v).decode() for v in values]
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:  # mixed types, huge ints
        raise FlattenUnsupported(str(exc)) from exc
    if arr.null_count == len(arr):
        return None, None
    inferred = ARROW_TO_DLT.get(arr.type)
    if inferred is None:
        raise FlattenUnsupported(f"arrow type {arr.type}")
    if inferred == "double" or (inferred == "bigint" and target == "double"):
        # dlt types a column by its first value: an int first and a float later is not a double
        first = next(v for v in values if v is not None)
        if type(first) is int and target != "double" and any(type(v) is float for v in values):
            raise FlattenUnsupported("int then float")
        if inferred == "bigint":
            arr, inferred = arr.cast(pa.float64()), "double"
    if target == "timestamp" and inferred in ("bigint", "double"):
        micros = pc.multiply(arr, 1_000_000) if inferred == "bigint" else pc.round(pc.multiply(arr, 1e6))
        return micros.cast(pa.int64()).cast(_TS_US), "timestamp"
    if target == "json" and inferred == "text":
        return arr, "json"
    if detect and target is None and inferred == "text":
        first = next(v for v in values if v is not None)
        if is_iso_timestamp(str, first):  # dlt's default detection would make it a timestamp
            raise FlattenUnsupported("iso timestamp string")
    return arr, inferred


def flatten(plan: FlattenPlan, rows: list[dict[str, Any]]) -> FlatTables:
    """Rows of `plan.table` as (table, parent, Arrow table), root first, then nested tables."""
    table, hinted = plan.table, plan.hinted
    known_root = plan.known.get(table, {})
    json_columns = {table: frozenset(n for n, t in {**known_root, **hinted}.items() if t == "json")}
    tables = _Tables(json_columns)
    for obj in rows:
        tables.add(table, obj, None, 0, 0, 0)

    root_rows = tables.rows.get(table, [])
    if plan.strategy in KEY_HASH_STRATEGIES:
        keys = list(plan.primary_key)
        root_ids = [get_row_hash({k: row.get(k) for k in keys}, subset=keys) for row in root_rows]
    else:
        root_ids = generate_dlt_ids(len(root_rows))
    ids: dict[str, list[str]] = {table: root_ids}

    out: FlatTables = []
    for name, flat_rows in tables.rows.items():
        targets = {**known_root, **hinted} if name == table else plan.known.get(name, {})
        columns: dict[str, None] = {}
        for row in flat_rows:
            columns.update(dict.fromkeys(row))
        arrays: dict[str, pa.Array] = {}
        for col in columns:
            arr, _ = column([row.get(col) for row in flat_rows], targets.get(col), col not in targets)
            if arr is not None:
                arrays[col] = arr
        if name == table:
            arrays[C_DLT_ID] = pa.array(root_ids, pa.string())
        else:
            links = tables.links[name]
            ids[name] = [get_nested_row_hash(ids[parent][row], name, idx) for parent, row, idx, _ in links]
            arrays[C_DLT_ID] = pa.array(ids[name], pa.string())
            arrays[C_PARENT_ID] = pa.array([ids[parent][row] for parent, row, _, _ in links], pa.string())
            arrays[C_LIST_IDX] = pa.array([idx for _, _, idx, _ in links], pa.int64())
            if plan.with_root_id:
                arrays[C_ROOT_ID] = pa.array([root_ids[root] for _, _, _, root in links], pa.string())
        out.append((name, tables.parents.get(name), pa.table(arrays)))
    return out
