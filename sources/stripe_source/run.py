"""One extraction: what the resources of a run share, and the process settings held while they run."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import dlt

from .catalog import BY_TABLE
from .changes import ChangeFeed
from .client import StripeApi
from .cursors import cursors_of, note_account
from .destination import DestinationView, DuplicateRepair
from .dlt_fixes import JsonAsTextIsByDesign, install_nested_metrics_fallback
from .engine import OLDEST, Reader
from .flatten import FlattenPlan
from .items import RunTables
from .pages import Digester, PageJob
from .plan import RunBounds, Window, is_gap
from .workers import WorkerPool

SUB_LIST_WORKERS = 40  # one endpoint's worth at ~25 req/s and ~300 ms, with room for waits


class Lifecycle:
    """Process settings held while any resource of the run is running, counted over the resources
    that actually run (a source narrowed with `with_resources` runs fewer than it built)."""

    def __init__(self, pool: WorkerPool | None, json_as_text: set[str]) -> None:
        self.pool = pool
        self._log_filter = JsonAsTextIsByDesign(json_as_text)
        self._running = 0
        self._lock = threading.Lock()
        self._gc_threshold: tuple[int, ...] | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
            if self._running == 1:
                install_nested_metrics_fallback()
                # Every page parses into thousands of containers; with the default threshold
                # (700) the collector runs so often it costs ~15% of the extract CPU.
                self._gc_threshold = gc.get_threshold()
                gc.set_threshold(50_000, 50, 100)
                logging.getLogger("dlt").addFilter(self._log_filter)
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    if self._gc_threshold is not None:
                        gc.set_threshold(*self._gc_threshold)
                    if self.pool is not None:
                        self.pool.close()
                    logging.getLogger("dlt").removeFilter(self._log_filter)


class Extraction:
    """The client, thread pools, worker processes, bounds and events feed of one run."""

    def __init__(self, api: StripeApi, account: str, account_created: int | None, bounds: RunBounds,
                 selection: dict[str, frozenset[str]], *, arrow: bool, processes: int, workers: int) -> None:
        self.api = api
        self.account = account
        self.bounds = bounds
        self.selection = selection
        self.arrow = arrow
        self.oldest_created = account_created - 86400 if account_created else OLDEST  # a day for clock skew
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stripe")
        self.sub_list_executor = ThreadPoolExecutor(max_workers=min(SUB_LIST_WORKERS, workers),
                                                    thread_name_prefix="stripe-sub-lists")
        pool = WorkerPool(processes) if arrow and processes > 0 else None
        self.plans: dict[str, FlattenPlan] = {}  # table -> how its pages are flattened (none: dlt's path)
        self.digester = Digester(self.plans, pool)
        self.tables = RunTables()
        self.lifecycle = Lifecycle(pool, self.tables.json_as_text)
        self._lock = threading.Lock()
        self._feed: ChangeFeed | None = None
        self._legacy_account: str | None = None
        self._noted = False
        self._destination: DestinationView | None = None

    def reader(self, job: PageJob) -> Reader:
        return Reader(self.api, self.executor, self.digester, job, oldest_created=self.oldest_created,
                      sub_list_executor=self.sub_list_executor)

    def legacy_account(self) -> str | None:
        """Notes this run's account in the source state, once; see `cursors.note_account`."""
        with self._lock:
            if not self._noted:
                self._legacy_account = note_account(dlt.current.source_state(), self.account)
                self._noted = True
            return self._legacy_account

    def destination(self) -> DestinationView:
        """What the destination holds; the first call also repairs rows a resumed load wrote twice."""
        with self._lock:
            if self._destination is None:
                self._destination = DestinationView.current(t for tables in self.selection.values() for t in tables)
                state = dlt.current.source_state()
                state["checked_loads_through"] = DuplicateRepair(self._destination).repair(
                    state.get("checked_loads_through"))
            return self._destination

    def feed(self, since: int) -> ChangeFeed:
        """The run's shared events feed, from the oldest cursor any selected resource needs."""
        with self._lock:
            if self._feed is None:
                start = min(since, self._oldest_events_cursor())
                self._feed = ChangeFeed(self._read_events, start)
            return self._feed

    def _read_events(self, since: int) -> Iterator[dict]:
        job = PageJob("events", self.account, keep_objects=True)
        for digest in self.reader(job).read(BY_TABLE["events"], Window(since, self.bounds.now + 1)):
            yield from digest.objects or ()

    def _oldest_events_cursor(self) -> int:
        resources = dlt.current.source_state().get("resources", {})
        found = []
        for root, tables in self.selection.items():
            cursors = cursors_of(resources.get(root, {}), self.account, tables, self._legacy_account)
            if root == "events" and cursors.created is not None:
                found.append(max(cursors.created - self.bounds.lookback, self.bounds.events_horizon))
            elif root != "events" and cursors.events is not None and not is_gap(cursors.events, self.bounds):
                found.append(cursors.events - self.bounds.lookback)
        return min(found, default=self.bounds.now)

    def job(self, **fields: object) -> PageJob:
        return replace(PageJob("", self.account), **fields)  # type: ignore[arg-type]
