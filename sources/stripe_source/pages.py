"""One page of Stripe JSON into rows per table: parsed, shaped and flattened, here or in a worker.

Every page takes this one route. `digest_page` parses a list or sub-list page, shapes its objects
into rows per table (`shaping.py`), flattens each table into Arrow tables (`flatten.py`) and keeps
the few facts scheduling needs: the page's edges and the sub-list pages still to read. A `Digester`
runs it in a worker process when it has a pool (the extracting process, which fetches and runs dlt,
is what bounds a backfill) and here otherwise; objects already parsed (event snapshots, re-fetched
objects) take the same steps here. Without flattening (`arrow=False`) the rows go to dlt's
normalizer as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from .catalog import BY_TABLE, SubList
from .flatten import FlatTables, FlattenPlan, FlattenUnsupported, flatten
from .shaping import PageEdges, page_edges, shape_objects, shape_sub_page
from .workers import WorkerPool


@dataclass(frozen=True)
class PageJob:
    """How to shape one page: a list page of `table`, or (with `sub`) a page of `sub` of `parent_id`."""

    table: str
    account_id: str
    wanted: frozenset[str] | None = None  # tables to fill (None: all of the object's)
    skip_ids: frozenset[str] = frozenset()  # objects the change feed delivers instead
    created_field: str = "created"
    sub: SubList | None = None
    parent_id: str = ""
    merging: bool = False  # an empty sub-list removes its parent's rows (a sub-list job: its first page)
    keep_objects: bool = False  # the caller wants the parsed objects too (the events feed)


@dataclass
class TableRows:
    """One table's rows of one page: flattened (`flat`), or for dlt's normalizer (`flat` is None)."""

    table: str
    flat: FlatTables | None
    count: int
    first_keys: tuple[str, ...]  # the first row's fields (what a complete snapshot has)
    # Parsed rows, when this process has them; else the raw page they come from. Customer data:
    # never pickled (a worker's result carries only `flat`), kept out of repr.
    parsed: list[dict] | None = field(default=None, repr=False, compare=False)
    page: tuple[bytes, PageJob] | None = field(default=None, repr=False, compare=False)

    def ids(self) -> list[str]:
        """The `id` of every row (of the table itself, not of its nested tables)."""
        if self.flat is not None:
            return self.flat[0][2].column("id").to_pylist()
        return [row["id"] for row in self.rows()]

    def rows(self) -> list[dict]:
        if self.parsed is None:
            if self.page is None:
                raise RuntimeError("TableRows.rows() needs the parsed rows or the raw page")
            self.parsed = _shaped(*self.page)[1][self.table]
        return self.parsed

    def __getstate__(self) -> dict:
        flat = None if self.flat is None else [(n, p, _to_ipc(t)) for n, p, t in self.flat]
        return {"table": self.table, "flat": flat, "count": self.count, "first_keys": self.first_keys}

    def __setstate__(self, state: dict) -> None:
        flat = state["flat"]
        if flat is not None:  # Arrow IPC: a fifth of pickle's cost both ways
            flat = [(n, p, pa.ipc.open_stream(pa.py_buffer(b)).read_all()) for n, p, b in flat]
        self.__dict__.update(state, flat=flat, parsed=None, page=None)


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@dataclass
class Digest:
    """What one page gave: how to continue its list, its sub-list pages to read, its rows per table."""

    edges: PageEdges
    follow_ups: list[tuple[SubList, str, str | None]] = field(default_factory=list)
    tables: dict[str, TableRows] = field(default_factory=dict)
    objects: list[dict] | None = None  # the page's objects, with `keep_objects`
    size: int = 0  # bytes of the page Stripe sent (its rows, here, take about as much again or more)


class Digester:
    """Digests pages in worker processes when given a pool, else here.

    `plans` (table -> FlattenPlan) is kept current by the run; a table without a plan is not
    flattened (its rows go to dlt's normalizer), which is also what `arrow=False` means.
    """

    def __init__(self, plans: Mapping[str, FlattenPlan], pool: WorkerPool | None = None) -> None:
        self.plans = plans
        self.pool = pool

    def digest(self, raw: bytes, job: PageJob) -> Digest:
        plans = {t: self.plans[t] for t in _tables_of(job) if t in self.plans}
        digest = None
        if self.pool is not None and plans and not job.keep_objects:
            future = self.pool.submit(digest_page, raw, job, plans)
            if future is not None:
                try:
                    digest = future.result()
                except (BrokenProcessPool, RuntimeError):  # a worker died, or the pool was shut down
                    self.pool.close()
        if digest is None:
            digest = digest_page(raw, job, plans)
        for rows in digest.tables.values():
            rows.page = (raw, job)
        digest.size = len(raw)
        return digest

    def digest_objects(self, objects: list[dict], job: PageJob) -> Digest:
        """Objects parsed already (event snapshots, re-fetches): shaped and flattened here."""
        tables, follow_ups = shape_objects(BY_TABLE[job.table], objects, job.account_id, job.wanted, job.skip_ids,
                                           job.merging)
        plans = {t: self.plans[t] for t in tables if t in self.plans}
        return Digest(PageEdges(False, len(objects)), follow_ups,
                      {t: _table_rows(t, rows, plans.get(t), keep=True) for t, rows in tables.items()})


    def table_rows(self, table: str, rows: list[dict]) -> TableRows:
        """Rows made here (tombstones, the account): flattened like a page's."""
        return _table_rows(table, rows, self.plans.get(table), keep=True)

    def made_rows(self, tables: Mapping[str, list[dict]]) -> Iterator[TableRows]:
        """`table_rows` of each table that has some (tombstones of several tables)."""
        for table, rows in tables.items():
            if rows:
                yield self.table_rows(table, rows)


def _tables_of(job: PageJob) -> tuple[str, ...]:
    return (job.table,) if job.sub is not None else BY_TABLE[job.table].tables


def digest_page(raw: bytes, job: PageJob, plans: Mapping[str, FlattenPlan]) -> Digest:
    """What a worker process does with one page (see the module docstring)."""
    edges, tables, follow_ups, objects = _shaped(raw, job)
    digested = {t: _table_rows(t, rows, plans.get(t)) for t, rows in tables.items()}
    return Digest(edges, follow_ups, digested, objects if job.keep_objects else None)


def _shaped(raw: bytes, job: PageJob) -> tuple[PageEdges, dict[str, list[dict]], list, list[dict] | None]:
    """The page's edges, its rows per table as the source emits them, its sub-list pages to read and
    (with `keep_objects`) its objects as Stripe sent them."""
    page = orjson.loads(raw)
    if job.sub is None:
        objects = orjson.loads(raw)["data"] if job.keep_objects else None  # shaping writes into rows
        tables, follow_ups = shape_objects(BY_TABLE[job.table], page["data"], job.account_id, job.wanted,
                                           job.skip_ids, job.merging)
        return page_edges(page, job.created_field), tables, follow_ups, objects
    rows, after = shape_sub_page(job.sub, job.parent_id, page, job.account_id, job.merging)
    follow_ups = [(job.sub, job.parent_id, after)] if after is not None else []
    return PageEdges(after is not None, len(rows)), {job.table: rows} if rows else {}, follow_ups, None


def _table_rows(table: str, rows: list[dict], plan: FlattenPlan | None, keep: bool = False) -> TableRows:
    """`keep`: hold on to the parsed rows even when flattened (there is no raw page to shape again);
    otherwise only rows for dlt's normalizer are kept (and never leave a worker process)."""
    flat = None
    if plan is not None:
        try:
            flat = flatten(plan, rows)
        except FlattenUnsupported:
            pass
    return TableRows(table, flat, len(rows), tuple(rows[0]), parsed=rows if keep or flat is None else None)
