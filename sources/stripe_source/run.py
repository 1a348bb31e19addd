"""One extraction: what the resources of a run share, what each account of it has, and the process
settings held while they run."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.common.configuration.container import Container

from .catalog import BY_TABLE
from .changes import ChangeFeed
from .client import StripeApi
from .cursors import cursors_of, note_account
from .destination import DestinationView, DuplicateRepair
from .dlt_fixes import JsonAsTextIsByDesign, install_nested_metrics_fallback
from .engine import OLDEST, Reader
from .flatten import FlattenPlan
from .handoff import ReadAhead
from .items import RunTables
from .pages import Digester, PageJob
from .plan import RunBounds, Window, is_gap
from .workers import WorkerPool

# What the reads feeding a backfill's bounding endpoint may hold beyond their hand-over's bound, all
# reads together, in bytes of the pages Stripe sent (their Arrow rows take about as much again): enough
# that the endpoint never idles while dlt serves other resources (sized in benchmarks/bench_backfill.py).
READ_AHEAD_BYTES = 48 * 2**20
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
    """What every account of one run shares: thread pools, worker processes, bounds, tables, the
    destination view, and the lock over dlt's state that accounts read at once write under."""

    def __init__(self, bounds: RunBounds, selection: dict[str, frozenset[str]], *, arrow: bool, processes: int,
                 workers: int, owner: str = "") -> None:
        self.bounds = bounds
        self.selection = selection
        self.arrow = arrow
        self.owner = owner  # the account the credentials belong to (the platform, when it reads others)
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stripe")
        self.sub_list_executor = ThreadPoolExecutor(max_workers=min(SUB_LIST_WORKERS, workers),
                                                    thread_name_prefix="stripe-sub-lists")
        # Threads named like dlt's own pools share the creating thread's dlt context (state, pipeline):
        # threads that read accounts for a resource use it.
        self.thread_prefix = Container.thread_pool_prefix()
        pool = WorkerPool(processes) if arrow and processes > 0 else None
        self.plans: dict[str, FlattenPlan] = {}  # table -> how its pages are flattened (none: dlt's path)
        self.digester = Digester(self.plans, pool)
        # Rows as dicts (`arrow=False`) take several times their page: their reads keep to their bounds.
        self.read_ahead = ReadAhead(READ_AHEAD_BYTES) if arrow else None
        self.tables = RunTables()
        self.lifecycle = Lifecycle(pool, self.tables.json_as_text)
        self.state_lock = threading.RLock()  # dlt's source and resource state, written by many accounts
        self._lock = threading.Lock()
        self._legacy_account: str | None = None
        self._noted: set[str] = set()
        self._destination: DestinationView | None = None
        self._many_accounts = False
        # A platform's run of its connected accounts: the list it made to find them (the `accounts` table
        # reuses it), the connected accounts it reads along with the platform, and per account the tables
        # its own events announce changes of (see connect.py).
        self.listed_accounts: list[dict] | None = None
        self.connected: frozenset[str] = frozenset()
        self._announced: dict[str, frozenset[str]] = {}

    def reader(self, api: StripeApi, job: PageJob, oldest_created: int, *, inline: bool = False) -> Reader:
        return Reader(api, self.executor, self.digester, job, oldest_created=oldest_created,
                      sub_list_executor=self.sub_list_executor, inline=inline, ahead=self.read_ahead)

    def note_account(self, account: str) -> str | None:
        """Records `account` in the source state (once per run); returns the account whose cursors the
        state's older, one-pair form holds. See `cursors.note_account`."""
        with self.state_lock:
            if account not in self._noted:
                self._legacy_account = note_account(dlt.current.source_state(), account, self.owner or account)
                self._noted.add(account)
            return self._legacy_account

    def expect_many_accounts(self) -> None:
        """The destination is asked about every account at once (one question per table, not per account)."""
        self._many_accounts = True

    def announce(self, account: str, tables: frozenset[str]) -> None:
        """The tables of the platform's Connect lists whose changes `account`'s events announce this run."""
        with self._lock:
            self._announced[account] = tables

    def announced(self, account: str) -> frozenset[str] | None:
        """What `announce` recorded for `account`; None when this run did not read its events."""
        with self._lock:
            return self._announced.get(account)

    def destination(self) -> DestinationView:
        """What the destination holds; the first call also repairs rows a resumed load wrote twice."""
        with self._lock:
            if self._destination is None:
                self._destination = DestinationView.current((t for tables in self.selection.values() for t in tables),
                                                            many_accounts=self._many_accounts)
                state = dlt.current.source_state()
                state["checked_loads_through"] = DuplicateRepair(self._destination).repair(
                    state.get("checked_loads_through"))
            return self._destination


class AccountScope:
    """One account's part of a run: its client (the platform's key sends `Stripe-Account` for a
    connected account), its creation time, its account object when known, its events feed."""

    def __init__(self, run: Extraction, api: StripeApi, account: str, created: int | None,
                 account_object: Mapping[str, Any] | None = None, *, inline: bool = False) -> None:
        self.run = run
        self.api = api
        self.account = account
        self.account_object = account_object if account_object and account_object.get("id") else None
        self.oldest_created = created - 86400 if created else OLDEST  # a day for clock skew
        self.inline = inline  # read on the calling thread: it is one of many reading accounts at once
        self._lock = threading.Lock()
        self._feed: ChangeFeed | None = None

    def reader(self, job: PageJob) -> Reader:
        return self.run.reader(self.api, job, self.oldest_created, inline=self.inline)

    def legacy_account(self) -> str | None:
        return self.run.note_account(self.account)

    def feed(self, since: int) -> ChangeFeed:
        """The account's events feed for this run, from the oldest cursor any selected resource needs."""
        with self._lock:
            if self._feed is None:
                start = min(since, self._oldest_events_cursor())
                self._feed = ChangeFeed(self._read_events, start)
            return self._feed

    def release(self) -> None:
        """Every resource is done with this account: its events need not be kept."""
        with self._lock:
            self._feed = None

    def _read_events(self, since: int) -> Iterator[dict]:
        job = PageJob("events", self.account, keep_objects=True)
        for digest in self.reader(job).read(BY_TABLE["events"], Window(since, self.run.bounds.now + 1)):
            yield from digest.objects or ()

    def _oldest_events_cursor(self) -> int:
        bounds = self.run.bounds
        with self.run.state_lock:
            resources = dlt.current.source_state().get("resources", {})
            found = []
            for root, tables in self.run.selection.items():
                # the platform's Connect lists follow the connected accounts' events from the platform's cursor
                whose = self.run.owner if BY_TABLE[root].connected_events and self.account in self.run.connected \
                    else self.account
                cursors = cursors_of(resources.get(root, {}), whose, tables, self.legacy_account())
                if root == "events" and cursors.created is not None:
                    found.append(max(cursors.created - bounds.lookback, bounds.events_horizon))
                elif root != "events" and cursors.events is not None and not is_gap(cursors.events, bounds):
                    found.append(cursors.events - bounds.lookback)
        return min(found, default=bounds.now)
