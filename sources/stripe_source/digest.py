"""List pages parsed, shaped and flattened in worker processes, off the extracting process.

The extracting process is what bounds a backfill once requests overlap: one interpreter would
parse every page, shape and flatten its objects and run dlt. A `Digester` hands the raw JSON of a
list or sub-list page to a worker process, which parses it, shapes it (`shaping.py`), flattens
each table (`arrow_rows.build_tables`) and sends back the Arrow tables (as Arrow IPC streams: a
fifth of pickle's cost both ways) and the few facts scheduling needs: the page's edges and the
sub-list pages still to read. The extracting process keeps the raw page: should a batch need dlt's
normalizer after all, it shapes the rows from it (rare, so the rows never cross a pipe).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from .arrow_rows import ArrowRowsUnsupported, FlattenPlan, build_tables
from .catalog import BY_TABLE, SubList
from .shaping import PageEdges, page_edges, shape_objects, shape_sub_page


@dataclass(frozen=True)
class DigestJob:
    """How to shape one page: a list page of `table`, or (with `sub`) a page of `sub` of `parent_id`."""

    table: str
    account_id: str
    wanted: frozenset[str] | None = None
    skip_ids: frozenset[str] = frozenset()
    created_field: str = "created"
    sub: SubList | None = None
    parent_id: str = ""
    clear_emptied: bool = False  # merging: an empty sub-list removes its parent's rows (a sub job: its first page)


@dataclass
class FlatRows:
    """One table's rows of one page, flattened; `rows()` gives them as dicts for dlt's path."""

    table: str
    tables: list[tuple[str, str | None, pa.Table]] | None  # None: only dlt's normalizer reproduces them
    count: int
    first_keys: tuple[str, ...]
    # set in the extracting process, never pickled; customer data, so kept out of repr
    page: tuple[bytes, DigestJob] | None = field(default=None, repr=False, compare=False)

    def rows(self) -> list[dict]:
        if self.page is None:
            raise RuntimeError("FlatRows.rows() needs the raw page, which only the extracting process keeps")
        return shaped_page(*self.page)[1][self.table]

    def __getstate__(self) -> dict:
        tables = None if self.tables is None else [(n, p, _to_ipc(t)) for n, p, t in self.tables]
        return {"table": self.table, "tables": tables, "count": self.count, "first_keys": self.first_keys}

    def __setstate__(self, state: dict) -> None:
        tables = state["tables"]
        if tables is not None:
            tables = [(n, p, pa.ipc.open_stream(pa.py_buffer(b)).read_all()) for n, p, b in tables]
        self.__dict__.update(state, tables=tables, page=None)


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@dataclass
class PageDigest:
    edges: PageEdges
    follow_ups: list[tuple[SubList, str, str | None]] = field(default_factory=list)  # as `shape_objects`
    tables: dict[str, FlatRows] = field(default_factory=dict)


class Digester:
    """Digests pages in `pool`; `plans` (table -> FlattenPlan) is kept current by the extractor."""

    def __init__(self, pool: Executor, plans: Mapping[str, FlattenPlan]) -> None:
        self.pool: Executor | None = pool
        self.plans = plans

    def digest(self, raw: bytes, job: DigestJob) -> PageDigest:
        plans = {t: self.plans[t] for t in _tables_of(job) if t in self.plans}
        if self.pool is not None:
            try:
                digest = self.pool.submit(digest_page, raw, job, plans).result()
            except (BrokenProcessPool, RuntimeError):  # a worker died, or the pool was shut down
                self.pool = None
        if self.pool is None:
            digest = digest_page(raw, job, plans)
        for flat in digest.tables.values():
            flat.page = (raw, job)
        return digest


def _tables_of(job: DigestJob) -> tuple[str, ...]:
    if job.sub is not None:
        return (job.table,)
    return BY_TABLE[job.table].tables


def digest_page(raw: bytes, job: DigestJob, plans: Mapping[str, FlattenPlan]) -> PageDigest:
    """What a worker process does with one page (see the module docstring)."""
    edges, tables, follow_ups = shaped_page(raw, job)
    return PageDigest(edges, follow_ups, {t: _flat(t, rows, plans.get(t)) for t, rows in tables.items()})


def shaped_page(raw: bytes, job: DigestJob) -> tuple[PageEdges, dict[str, list[dict]], list]:
    """The page's edges, its rows per table as the source emits them, and its sub-list pages to read."""
    page = orjson.loads(raw)
    if job.sub is None:
        edges = page_edges(page, job.created_field)
        tables, follow_ups = shape_objects(BY_TABLE[job.table], page["data"], job.account_id, job.wanted, job.skip_ids,
                                           job.clear_emptied)
        return edges, tables, follow_ups
    rows, after = shape_sub_page(job.sub, job.parent_id, page, job.account_id, job.clear_emptied)
    follow_ups = [(job.sub, job.parent_id, after)] if after is not None else []
    return PageEdges(after is not None, len(rows)), {job.table: rows} if rows else {}, follow_ups


def _flat(table: str, rows: list[dict], plan: FlattenPlan | None) -> FlatRows:
    tables = None
    if plan is not None:
        try:
            tables = build_tables(plan, rows)
        except ArrowRowsUnsupported:
            pass
    return FlatRows(table, tables, len(rows), tuple(rows[0]))
