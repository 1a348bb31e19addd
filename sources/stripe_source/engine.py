"""Reading one catalog object completely, fast, with bounded memory.

A list is read newest first in `created` windows. After each page, the part of the window not yet
read is split among idle slots, so a large list is fetched by several cursors at once while a small
one costs one request. Truncated sub-lists (invoice lines, ...) are paged in parallel too. Every
task is one HTTP request run on a shared thread pool, and its page is digested (`pages.py`) on that
thread; scheduling happens on one driver thread per read, so nothing is shared beyond the pools and
the pacer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, replace
from typing import Any

import stripe

from .catalog import FAN_OUT_PATHS, StripeObject, SubList, list_params
from .client import PAGE_SIZE, StripeApi
from .handoff import Handoff, ReadAhead
from .pages import Digest, Digester, PageJob
from .plan import Window
from .shaping import PageEdges

HANDOFF_PAGES = 4  # digests fetched ahead of the consumer, per read
# Split a list only into windows expected to hold at least this many pages: a window's last page
# is partly empty, so small windows spend requests of the rate limit on little.
MIN_PAGES_PER_WINDOW = 6
OLDEST = 1293840000  # 2011: nothing at Stripe is older


@dataclass
class _ListTask:
    path: str
    params: dict[str, Any]
    window: Window | None  # None: the endpoint takes no `created` filter
    starting_after: str | None = None

    def request(self, api: StripeApi, entry: StripeObject) -> bytes:
        params = {"limit": PAGE_SIZE, **self.params}
        if self.window:
            params.update(self.window.params())
        if self.starting_after:
            params["starting_after"] = self.starting_after
        return api.get_raw(self.path, params, priority=1 if first_in_line(entry) else 0)


@dataclass
class _SubListTask:
    sub: SubList
    parent_id: str
    starting_after: str | None

    def request(self, api: StripeApi, entry: StripeObject) -> bytes | None:
        sub = self.sub
        params = {"limit": PAGE_SIZE, **{k: v.format(id=self.parent_id) for k, v in sub.params}}
        if self.starting_after:
            params["starting_after"] = self.starting_after
        try:
            # priority: every sub-list page shares one endpoint, the one that bounds a backfill
            return api.get_raw(sub.path.format(id=self.parent_id), params, endpoint=sub.path, priority=1)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:  # the parent was deleted while we read it
                return None
            raise


@dataclass
class Reader:
    """Reads objects of one catalog entry, with all of their sub-list items, as page digests."""

    api: StripeApi
    executor: Executor
    digester: Digester
    job: PageJob  # how this read's pages are shaped (table, account, wanted tables, skipped ids...)
    max_in_flight: int = 12  # ~25 req/s per endpoint at ~300 ms needs ~8; each holds a page in memory
    # Sub-list pages all share the one endpoint that bounds a backfill: room for the time a page
    # waits for its turn at the pacer, on top of its ~300 ms.
    max_sub_lists_in_flight: int = 32
    oldest_created: int = OLDEST  # nothing in the account is older (its creation, when known)
    # Sub-list pages get threads of their own: queued behind every list page of the account they
    # would starve the one endpoint that bounds a backfill (invoice lines).
    sub_list_executor: Executor | None = None
    # Schedule on the calling thread instead of a driver thread: the caller is already one of many
    # threads reading accounts at once, each handing its digests on (a second thread apiece buys nothing).
    inline: bool = False
    # The run's budget for reads that feed the endpoint bounding a backfill to run ahead of dlt (`handoff.py`).
    ahead: ReadAhead | None = None

    def read(self, entry: StripeObject, window: Window | None) -> Iterator[Digest]:
        if entry.path is None:
            raise ValueError(f"{entry.table} is read through its parent {entry.parent}")
        task = _ListTask(entry.path, list_params(entry, self.job.wanted), window if entry.created_filter else None)
        yield from self._run([task], entry)

    def read_selections(self, entry: StripeObject, selections: list[dict[str, str]]) -> Iterator[Digest]:
        """Every object of each selection (list params, no `created` window), all read at once."""
        if entry.path is None:
            raise ValueError(f"{entry.table} is read through its parent {entry.parent}")
        yield from self._run([_ListTask(entry.path, {**list_params(entry, self.job.wanted), **params}, None)
                              for params in selections], entry)

    def read_sub_lists(self, entry: StripeObject, parents: list[tuple[SubList, str]]) -> Iterator[Digest]:
        """Each parent's sub-list read whole (its items changed; the parent itself did not)."""
        yield from self._run([_SubListTask(sub, parent_id, None) for sub, parent_id in parents], entry)

    def complete(self, entry: StripeObject, objects: list[dict]) -> Iterator[Digest]:
        """Given objects (event snapshots, re-fetches) with their sub-lists made whole."""
        if not objects:
            return
        digest = self.digester.digest_objects(objects, self.job)
        yield digest
        yield from self._run([_SubListTask(*sub_page) for sub_page in digest.follow_ups], entry)

    # --- scheduling
    def _run(self, tasks: list[Any], entry: StripeObject) -> Iterator[Digest]:
        """Fetch on a driver thread, hand digests over (`handoff.py`): the generator is suspended
        whenever dlt is busy with what it yielded, and the requests must not wait for it."""
        if not tasks:
            return
        if self.inline:
            yield from self._schedule(tasks, entry)
            return
        handoff = Handoff(HANDOFF_PAGES, ahead=self.ahead if first_in_line(entry) else None)

        def drive() -> None:
            try:
                for digest in self._schedule(tasks, entry):
                    if not handoff.put(digest, weight=max(1, digest.size)):
                        return
            except BaseException as exc:  # re-raised in the consumer, where dlt sees it
                handoff.fail(exc)
            finally:
                handoff.done()

        threading.Thread(target=drive, name=f"stripe-{entry.table}", daemon=True).start()
        yield from handoff.items()

    def _schedule(self, tasks: list[Any], entry: StripeObject) -> Iterator[Digest]:
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
                    digest: Digest = future.result()
                    if isinstance(task, _ListTask):
                        idle = self.max_in_flight - in_flight[_ListTask] - len(list_tasks)
                        list_tasks.extend(self._continue_list(task, digest.edges, idle))
                    sub_tasks.extend(_SubListTask(*sub_page) for sub_page in digest.follow_ups)
                    yield digest
        finally:
            for future in pending:
                future.cancel()

    def _fetch(self, task: Any, entry: StripeObject) -> Digest:
        raw = task.request(self.api, entry) or b'{"data":[],"has_more":false}'
        if isinstance(task, _ListTask):
            return self.digester.digest(raw, self.job)
        job = replace(self.job, table=task.sub.table, sub=task.sub, parent_id=task.parent_id, skip_ids=frozenset(),
                      merging=self.job.merging and task.starting_after is None)
        return self.digester.digest(raw, job)

    def _continue_list(self, task: _ListTask, edges: PageEdges, idle: int) -> list[_ListTask]:
        if not edges.has_more or not edges.count:
            return []
        window = task.window
        if window is None:
            return [_ListTask(task.path, task.params, None, edges.last_id)]
        return [_ListTask(task.path, task.params, part, after) for part, after in split_rest(
            window, edges, idle, self.oldest_created)]


def first_in_line(entry: StripeObject) -> bool:
    """Whether a read feeds the endpoints that bound a backfill: a list whose objects carry sub-lists
    (their pages all share one endpoint), or whose endpoint a fan-out shares (`balance_transactions?payout=`).
    Its requests go first at the pacer, and it may run ahead of dlt."""
    return bool(entry.sub_lists) or entry.path in FAN_OUT_PATHS


def split_rest(window: Window, edges: PageEdges, idle: int, oldest: int) -> list[tuple[Window, str | None]]:
    """The part of `window` a page left unread, as (window, starting_after) tasks.

    Unread: created in [window.start, last.created], after `last` in list order. The top slice keeps
    the cursor; the rest is read as fresh windows in parallel, but only as many as the page's
    density says will fill pages: a window that comes back half empty spends a request of the rate
    limit for little. Every second stays whole in one slice, so a second's objects keep their order.
    """
    low = window.start if window.start is not None else oldest
    high = edges.last_created
    span = max(1, edges.first_created - high)
    expected_pages = edges.count / span * (high - low) / PAGE_SIZE
    parts = max(1, min(idle + 1, high - low, 8, int(expected_pages / MIN_PAGES_PER_WINDOW)))
    if parts == 1:
        return [(window, edges.last_id)]
    bounds: list[int | None] = [low + (high - low) * i // parts for i in range(parts)] + [high]
    tasks: list[tuple[Window, str | None]] = [(Window(bounds[-2], window.end), edges.last_id)]
    # The bottom slice keeps the window's own start. `oldest` only guides the split: an account's
    # `created` is when it was connected (Stripe's API reference), and a Standard account connected
    # later holds older objects, which a slice starting there would never read.
    bounds[0] = window.start
    for lo, hi in zip(bounds[:-2], bounds[1:-1], strict=True):
        tasks.append((Window(lo, hi), None))
    return tasks
