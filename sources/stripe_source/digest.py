"""List pages parsed, shaped and flattened in worker processes, off the extracting process.

The extracting process is what bounds a backfill once requests overlap: one interpreter would
parse every page, shape and flatten its objects and run dlt. A `Digester` hands the raw JSON of a
list or sub-list page to a worker process, which parses it, shapes it (`shaping.py`), flattens
each table (`arrow_rows.build_tables`) and sends back the Arrow tables, the rows as JSON (for
dlt's normalizer, should a batch need it) and the few facts scheduling needs: the page's edges and
the sub-list pages still to read.
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


@dataclass
class FlatRows:
    """One table's rows of one page: flattened, and as JSON for dlt's path."""

    tables: list[tuple[str, str | None, pa.Table]] | None  # None: only dlt's normalizer reproduces them
    rows_json: bytes
    count: int
    first_keys: tuple[str, ...]


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
                return self.pool.submit(digest_page, raw, job, plans).result()
            except (BrokenProcessPool, RuntimeError):  # a worker died, or the pool was shut down
                self.pool = None
        return digest_page(raw, job, plans)


def _tables_of(job: DigestJob) -> tuple[str, ...]:
    if job.sub is not None:
        return (job.table,)
    return (job.table, *(sub.table for sub in BY_TABLE[job.table].sub_lists))


def digest_page(raw: bytes, job: DigestJob, plans: Mapping[str, FlattenPlan]) -> PageDigest:
    """What a worker process does with one page (see the module docstring)."""
    page = orjson.loads(raw)
    if job.sub is None:
        edges = page_edges(page, job.created_field)
        tables, follow_ups = shape_objects(BY_TABLE[job.table], page["data"], job.account_id, job.wanted, job.skip_ids)
    else:
        rows, after = shape_sub_page(job.sub, job.parent_id, page, job.account_id)
        edges = PageEdges(after is not None, len(rows))
        follow_ups = [(job.sub, job.parent_id, after)] if after is not None else []
        tables = {job.table: rows} if rows else {}
    return PageDigest(edges, follow_ups, {table: _flat(rows, plans.get(table)) for table, rows in tables.items()})


def _flat(rows: list[dict], plan: FlattenPlan | None) -> FlatRows:
    tables = None
    if plan is not None:
        try:
            tables = build_tables(plan, rows)
        except ArrowRowsUnsupported:
            pass
    return FlatRows(tables, orjson.dumps(rows), len(rows), tuple(rows[0]))
