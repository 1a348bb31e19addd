"""The engine that reads one catalog object completely, fast, with bounded memory.

A list is read newest first in `created` windows. After each page, the part of the window not yet
read is split among idle slots, so a large list is fetched by several cursors at once while a
small one costs one request. Truncated sub-lists (invoice lines, ...) are paged in parallel too.
Every task is one HTTP request run on a shared thread pool; scheduling happens only in the
consuming generator, so there is no shared mutable state beyond the pool and the pacer.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import Any

import orjson
import stripe

from .catalog import StripeObject, SubList
from .client import PAGE_SIZE, StripeApi
from .digest import Digester, DigestJob, FlatRows, PageDigest
from .shaping import PageEdges, page_edges, shape_objects, shape_sub_page


@dataclass(frozen=True)
class Window:
    """`created` in [start, end): start inclusive, end exclusive; None means unbounded."""

    start: int | None = None
    end: int | None = None

    def params(self) -> dict[str, int]:
        params = {}
        if self.start is not None:
            params["created[gte]"] = self.start
        if self.end is not None:
            params["created[lt]"] = self.end
        return params


@dataclass
class _ListTask:
    path: str
    params: dict[str, Any]
    window: Window | None  # None: the endpoint takes no `created` filter
    starting_after: str | None = None
    created_field: str = "created"


@dataclass
class _SubListTask:
    sub: SubList
    parent_id: str
    starting_after: str | None


HANDOFF_PAGES = 4  # batches fetched ahead of the consumer, per reader (memory: ~21 readers)
# Split a list only into windows expected to hold at least this many pages: a window's last page
# is partly empty, so small windows spend requests of the rate limit on little (charges world:
# 5.6% more requests than pages with 3, 4.2% with 6).
MIN_PAGES_PER_WINDOW = 6
_DONE = object()


@dataclass
class _Failed:
    error: BaseException


@dataclass
class Batch:
    """Rows for one table, as read from one page: parsed rows, or (from a worker process) the
    page's Arrow tables (`flat`, which can still give the rows for dlt's path)."""

    table: str
    rows: list[dict]
    flat: FlatRows | None = None


@dataclass
class ObjectReader:
    """Reads every object of one catalog entry in a window, with all of its sub-list items."""

    api: StripeApi
    executor: Executor
    account_id: str
    max_in_flight: int = 12  # ~25 req/s per endpoint at ~300 ms needs ~8; each holds a page in memory
    # Sub-list pages all share the one endpoint that bounds a backfill: room for the time a page
    # waits for its turn at the pacer and for a worker process, on top of its ~300 ms.
    max_sub_lists_in_flight: int = 32
    wanted_tables: frozenset[str] | None = None  # None: all of the object's tables
    skip_ids: frozenset[str] = frozenset()  # objects the change feed already delivers
    oldest_created: int = 1293840000  # nothing in the account is older (its creation; else 2011)
    # Sub-list pages get threads of their own: queued behind every list page of the account they
    # would starve the one endpoint that bounds a backfill (invoice lines).
    sub_list_executor: Executor | None = None
    # With a digester, list and sub-list pages are parsed, shaped and flattened in worker processes
    # (the page's Arrow tables come back with just the facts scheduling needs); else here.
    digester: Digester | None = None
    clear_emptied: bool = False  # merging: a sub-list read empty deletes the rows its parent had

    def read(self, entry: StripeObject, window: Window | None) -> Iterator[Batch]:
        if entry.path is None:
            raise ValueError(f"{entry.table} is read through its parent {entry.parent}")
        window = window if entry.created_filter else None
        params = dict(entry.list_params)
        yield from self._run([_ListTask(entry.path, params, window, created_field=entry.created_field)], entry)

    def complete(self, entry: StripeObject, objects: list[dict]) -> Iterator[Batch]:
        """Emit given objects (e.g. event snapshots or re-fetches) with their sub-lists made whole."""
        follow_ups: list[Any] = []
        yield from self._emit_objects(entry, objects, follow_ups)
        yield from self._run(follow_ups, entry)

    # --- scheduling
    def _run(self, tasks: list[Any], entry: StripeObject) -> Iterator[Batch]:
        """Fetch on a driver thread, hand batches over through a bounded queue.

        The generator is suspended whenever dlt is busy with what it yielded; scheduling from it
        directly would leave the request slots idle all that time. The queue's bound keeps memory
        flat: a slow consumer makes the driver wait, not pile up pages.
        """
        handoff: queue.Queue = queue.Queue(maxsize=HANDOFF_PAGES)
        stop = threading.Event()

        def drive() -> None:
            try:
                for batch in self._schedule(tasks, entry):
                    while not stop.is_set():
                        try:
                            handoff.put(batch, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                handoff.put(_DONE)
            except BaseException as exc:  # re-raised in the consumer, where dlt sees it
                handoff.put(_Failed(exc))

        driver = threading.Thread(target=drive, name=f"stripe-{entry.table}", daemon=True)
        driver.start()
        try:
            while True:
                item = handoff.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()

    def _schedule(self, tasks: list[Any], entry: StripeObject) -> Iterator[Batch]:
        sub_tasks: deque[_SubListTask] = deque(t for t in tasks if isinstance(t, _SubListTask))
        list_tasks: deque[_ListTask] = deque(t for t in tasks if isinstance(t, _ListTask))
        pending: dict[Future, Any] = {}
        in_flight = {_ListTask: 0, _SubListTask: 0}
        try:
            while sub_tasks or list_tasks or pending:
                # Separate budgets: a backlog of sub-list pages must not keep the list pages, which
                # feed it, from being fetched (and vice versa).
                while sub_tasks and in_flight[_SubListTask] < self.max_sub_lists_in_flight:
                    task = sub_tasks.popleft()
                    pending[(self.sub_list_executor or self.executor).submit(self._fetch, task, entry)] = task
                    in_flight[_SubListTask] += 1
                while list_tasks and in_flight[_ListTask] < self.max_in_flight:
                    task = list_tasks.popleft()
                    pending[self.executor.submit(self._fetch, task, entry)] = task
                    in_flight[_ListTask] += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    in_flight[type(task)] -= 1
                    page = future.result()
                    follow_ups: list[Any] = []
                    digested = isinstance(page, PageDigest)
                    if isinstance(task, _ListTask):
                        edges = page.edges if digested else page_edges(page, task.created_field)
                        idle = self.max_in_flight - in_flight[_ListTask] - len(list_tasks)
                        follow_ups.extend(self._continue_list(task, edges, idle))
                    if digested:
                        follow_ups.extend(_SubListTask(*sub_page) for sub_page in page.follow_ups)
                        yield from (Batch(table, [], flat) for table, flat in page.tables.items())
                    elif isinstance(task, _ListTask):
                        yield from self._emit_objects(entry, page["data"], follow_ups)
                    else:
                        yield from self._emit_sub_items(task, page, follow_ups)
                    for follow_up in follow_ups:
                        (sub_tasks if isinstance(follow_up, _SubListTask) else list_tasks).append(follow_up)
        finally:
            for future in pending:
                future.cancel()

    def _fetch(self, task: Any, entry: StripeObject) -> dict | PageDigest:
        """One page: parsed here, or digested by a worker process (with a digester)."""
        raw = self._request(task, entry)
        if raw is None:  # a sub-list whose parent was deleted while we read it
            return {"data": [], "has_more": False}
        if self.digester is None:
            return orjson.loads(raw)
        if isinstance(task, _ListTask):
            job = DigestJob(entry.table, self.account_id, self.wanted_tables, self.skip_ids, task.created_field,
                            clear_emptied=self.clear_emptied)
        else:
            job = DigestJob(task.sub.table, self.account_id, sub=task.sub, parent_id=task.parent_id,
                            clear_emptied=self.clear_emptied and task.starting_after is None)
        return self.digester.digest(raw, job)

    def _request(self, task: Any, entry: StripeObject) -> bytes | None:
        if isinstance(task, _ListTask):
            params = {"limit": PAGE_SIZE, **task.params}
            if task.window:
                params.update(task.window.params())
            if task.starting_after:
                params["starting_after"] = task.starting_after
            # a list whose objects carry sub-lists feeds the endpoint that bounds a backfill: first in line too
            return self.api.get_raw(task.path, params, priority=1 if entry.sub_lists else 0)
        sub = task.sub
        params = {"limit": PAGE_SIZE, **{k: v.format(id=task.parent_id) for k, v in sub.params}}
        if task.starting_after:
            params["starting_after"] = task.starting_after
        try:
            # priority: every sub-list page shares one endpoint, the one that bounds a backfill
            return self.api.get_raw(sub.path.format(id=task.parent_id), params, endpoint=sub.path, priority=1)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise

    def _continue_list(self, task: _ListTask, edges: PageEdges, idle: int) -> list[_ListTask]:
        if not edges.has_more or not edges.count:
            return []
        window = task.window
        if window is None:
            return [_ListTask(task.path, task.params, None, edges.last_id, task.created_field)]
        # Unread: created in [window.start, last.created], after `last` in list order.
        # Keep the cursor for the top slice and read the rest as fresh windows in parallel, but
        # only as many as the page's density says will fill pages: a window that comes back
        # half empty (or empty) spends a request of the rate limit for little.
        low = window.start if window.start is not None else self.oldest_created
        high = edges.last_created
        span = max(1, edges.first_created - high)
        expected_pages = edges.count / span * (high - low) / PAGE_SIZE
        parts = max(1, min(idle + 1, high - low, 8, int(expected_pages / MIN_PAGES_PER_WINDOW)))
        if parts == 1:
            return [_ListTask(task.path, task.params, window, edges.last_id, task.created_field)]
        bounds = [low + (high - low) * i // parts for i in range(parts)] + [high]
        tasks = [_ListTask(task.path, task.params, Window(bounds[-2], window.end), edges.last_id, task.created_field)]
        for lo, hi in zip(bounds[:-2], bounds[1:-1], strict=True):
            tasks.append(_ListTask(task.path, task.params, Window(lo, hi), created_field=task.created_field))
        return tasks

    def _emit_objects(self, entry: StripeObject, objects: list[dict], follow_ups: list) -> Iterator[Batch]:
        tables, sub_pages = shape_objects(entry, objects, self.account_id, self.wanted_tables, self.skip_ids,
                                          self.clear_emptied)
        follow_ups.extend(_SubListTask(sub, parent_id, after) for sub, parent_id, after in sub_pages)
        for table, rows in tables.items():
            yield Batch(table, rows)

    def _emit_sub_items(self, task: _SubListTask, page: dict, follow_ups: list) -> Iterator[Batch]:
        rows, after = shape_sub_page(task.sub, task.parent_id, page, self.account_id,
                                     self.clear_emptied and task.starting_after is None)
        if after is not None:
            follow_ups.append(_SubListTask(task.sub, task.parent_id, after))
        if rows:
            yield Batch(task.sub.table, rows)


def read_singleton(api: StripeApi, entry: StripeObject, account_id: str) -> Batch:
    obj = api.get(entry.path or "")
    obj["stripe_account_id"] = account_id
    return Batch(entry.table, [obj])
