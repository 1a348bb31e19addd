"""A dlt source for Stripe: payments, invoices, billing and everything they reference.

    pipeline = dlt.pipeline("stripe", destination="duckdb", dataset_name="stripe")
    pipeline.run(stripe_source(start_date="2024-01-01"))

Resources are built from the catalog (`catalog.py`); the engine is `sync.py`, the sync model
`incremental.py`.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import dlt
import orjson
import stripe
from dlt.extract.resource import DltResource

from .arrow_rows import (
    ArrowBuffer,
    FlattenPlan,
    flatten_processes_default,
    plan_for,
    realign_tables,
    release_json_as_text,
    start_flatten_pool,
)
from .catalog import BY_TABLE, CATALOG, StripeObject
from .client import (
    API_BASE_ENV,
    API_VERSION,
    CONNECT_BASE_ENV,
    DEFAULT_API_BASE,
    DEFAULT_CONNECT_BASE,
    RateLimits,
    StripeApi,
)
from .credentials import StripeCredentials, resolve_credentials
from .digest import Digester
from .errors import PermissionMissing
from .incremental import (
    EVENTS_RETENTION_SECONDS,
    ChangeFeed,
    ObjectChanges,
    RunBounds,
    cursors_of,
    is_complete,
    is_gap,
    save_cursors,
    tombstones,
)
from .options import DateLike, check_start_is_past, check_tuning, check_window, parse_date, select_tables
from .sync import Batch, ObjectReader, Window, read_singleton

__all__ = ["stripe_source", "StripeCredentials", "CATALOG", "API_VERSION"]

logger = logging.getLogger(__name__)

SUB_LIST_WORKERS = 40  # one endpoint's worth at ~25 req/s and ~300 ms, with room for waits (sync.py)


# root_key: nested tables always carry _dlt_root_id, so a table can switch between replace
# (full re-reads) and merge (incremental runs) without a schema change.
@dlt.source(name="stripe", section="stripe", parallelized=True, root_key=True)
def stripe_source(
    credentials: StripeCredentials | None = dlt.secrets.value,
    resources: Sequence[str] | str | None = None,
    start_date: DateLike = None,
    end_date: DateLike = None,
    api_base: str | None = None,
    connect_base: str | None = None,
    lookback_seconds: int = 300,
    full_refresh: bool = False,
    max_requests_per_second: float | None = None,
    max_requests_per_endpoint: float | None = None,
    workers: int = 64,
    arrow: bool = True,
    flatten_processes: int | None = None,
) -> Iterator[DltResource]:
    """Stripe objects as tables, loaded completely the first time and incrementally after.

    Args:
        credentials: key (sk_/rk_ or OAuth access token) and optional connected account; read from
            `[sources.stripe.credentials]`, SOURCES__STRIPE__CREDENTIALS__API_KEY or STRIPE_API_KEY.
        resources: table names to load (default: all). Sub-list tables load with their parent.
        start_date / end_date: bound `created` (ISO 8601 strings, dates, datetimes or Unix seconds).
            An end_date makes the run a stateless backfill window.
        api_base: Stripe's API base URL (or STRIPE_API_BASE); the emulator's for local runs.
        lookback_seconds: re-read objects and events this far behind the last cursor.
        full_refresh: ignore cursors and read everything again.
        max_requests_per_second / max_requests_per_endpoint: pacing (default from the key's mode:
            live 100 and 25, test 25 and 25); raise them for accounts with raised limits.
        workers: concurrent list requests at most; sub-list pages (invoice lines, ...) run on as
            many threads again, at most 40.
        arrow: hand dlt Arrow tables flattened the way its normalizer would (the default: same
            tables, a fraction of the CPU); False uses dlt's own normalizer on dicts.
        flatten_processes: worker processes that do that flattening, off the process that fetches
            and extracts (default: one per core beyond the first, at most 4; 0 keeps it in-process).
    """
    # Everything the user gave is checked before the first request.
    start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    check_window(start, end)
    check_tuning(lookback_seconds, workers, max_requests_per_second, max_requests_per_endpoint, flatten_processes)
    selection = select_tables(resources)
    creds = resolve_credentials(credentials)
    api_base = (api_base or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/")
    connect_base = connect_base or os.environ.get(CONNECT_BASE_ENV) or DEFAULT_CONNECT_BASE

    limits = RateLimits.for_mode(creds.livemode)
    if max_requests_per_second is not None:
        limits.global_rps = max_requests_per_second
    if max_requests_per_endpoint is not None:
        limits.endpoint_rps = max_requests_per_endpoint
    # a connection for every thread that may request at once: list pages, sub-list pages, and
    # dlt's extract threads (objects re-fetched after a partial event, singletons)
    api = StripeApi(creds, api_base, connect_base=connect_base, limits=limits,
                    pool_size=workers + min(SUB_LIST_WORKERS, workers) + len(selection) + 1)

    account_id, account_created = _connect(api, creds, selection)
    now = api.server_time or int(time.time())
    check_start_is_past(start, now)
    bounds = RunBounds(
        now=now,
        start=start,
        end=end,
        lookback=lookback_seconds,
        full_refresh=full_refresh,
    )
    # forked before any thread of ours exists
    if flatten_processes is None:
        flatten_processes = flatten_processes_default()
    flatten_pool = start_flatten_pool(flatten_processes) if arrow else None
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stripe")
    sub_lists = ThreadPoolExecutor(max_workers=min(SUB_LIST_WORKERS, workers), thread_name_prefix="stripe-sub-lists")
    run = _Run(api, executor, account_id, bounds, selection, arrow, oldest=account_created, sub_lists=sub_lists,
               flatten_pool=flatten_pool)
    for root, tables in selection.items():
        yield run.resource(BY_TABLE[root], tables)


def _connect(
    api: StripeApi, creds: StripeCredentials, selection: dict[str, frozenset[str]]
) -> tuple[str | None, int | None]:
    """Validate the credentials with one cheap read; for restricted keys check every permission.

    Raises before anything is extracted, so a revoked key or a missing permission loads nothing.
    """
    account_id, account_created = creds.stripe_account, None
    try:
        account = api.get("/v1/account")
        account_id, account_created = account["id"], account.get("created")
    except stripe.PermissionError:
        pass  # a restricted key without account access: still valid, data rows name no account
    if creds.key_type == "restricted":
        missing = {}
        needed = [BY_TABLE[root] for root in selection]
        if "events" not in selection and any(entry.mutable and entry.events for entry in needed):
            needed.append(BY_TABLE["events"])  # runs after the first follow changes through /v1/events
        for entry in needed:
            try:
                api.get(entry.path or "", {"limit": 1} if not entry.singleton else None)
            except stripe.PermissionError:
                missing[entry.table] = entry.permission
        if missing:
            raise PermissionMissing(missing, account_id, follows_changes="events" not in selection)
    return account_id, account_created


class _Run:
    """One extraction: shared client, thread pool, events feed and bounds for all resources."""

    def __init__(
        self,
        api: StripeApi,
        executor: ThreadPoolExecutor,
        account_id: str | None,
        bounds: RunBounds,
        selection: dict[str, frozenset[str]],
        arrow: bool = False,
        oldest: int | None = None,
        sub_lists: ThreadPoolExecutor | None = None,
        flatten_pool: Executor | None = None,
    ) -> None:
        self.sub_lists = sub_lists
        self.flatten_pool = flatten_pool
        self._plans: dict[str, FlattenPlan] = {}  # per table, for pages flattened in worker processes
        self.digester = Digester(flatten_pool, self._plans) if flatten_pool is not None else None
        # the first resource to start tunes the GC; the last to end undoes it and stops the pool
        self._unfinished = len(selection)
        self._running_lock = threading.Lock()
        self._gc_threshold: tuple[int, ...] | None = None
        self.arrow = arrow
        self.oldest = oldest  # the account's creation: nothing in it is older
        self.api = api
        self.executor = executor
        self.account_id = account_id or ""
        self.bounds = bounds
        self.selection = selection
        self._hints: dict[str, Any] = {}
        self._feed: ChangeFeed | None = None
        self._feed_lock = threading.Lock()
        self._account_lock = threading.Lock()
        self._accounts_noted = False
        self._legacy_account: str | None = None
        self._other_accounts = False

    def reader(
        self, tables: frozenset[str] | None = None, skip_ids: frozenset[str] = frozenset(), rows: bool = False,
        clear_emptied: bool = False,
    ) -> ObjectReader:
        """A reader for this run; `rows`: batches must hold parsed rows (not digests); `clear_emptied`:
        (merging) a sub-list read empty deletes the rows its parent had."""
        reader = ObjectReader(self.api, self.executor, self.account_id, wanted_tables=tables, skip_ids=skip_ids,
                              sub_list_executor=self.sub_lists, digester=None if rows else self.digester,
                              clear_emptied=clear_emptied)
        if self.oldest:
            reader.oldest_created = self.oldest - 86400  # a day of slack for clock skew
        return reader

    def resource(self, entry: StripeObject, tables: frozenset[str]) -> DltResource:
        def read() -> Iterator[Any]:
            self._resource_started()
            try:
                yield from self._items(entry, tables)
            finally:
                self._resource_done()

        return dlt.resource(read, name=entry.table, table_name=entry.table, parallelized=True)

    def _items(self, entry: StripeObject, tables: frozenset[str]) -> Iterator[Any]:
        if self.arrow:
            # Pages become Arrow tables flattened the way dlt's normalizer would (arrow_rows.py):
            # normalize then just passes them through, the stage that otherwise costs the most CPU.
            buffer = ArrowBuffer(pool=self.flatten_pool)
            for batch in self._batches(entry, tables):
                if batch.flat is not None:
                    yield from buffer.add_flat(batch.table, batch.flat, self._hints[batch.table])
                else:
                    yield from buffer.add(batch.table, batch.rows, self._hints[batch.table])
            yield from buffer.flush()
            yield from realign_tables(entry.tables, self._hints)
            return
        for batch in self._batches(entry, tables):
            yield dlt.mark.with_hints(batch.rows, self._hints[batch.table], create_table_variant=True)

    def _resource_started(self) -> None:
        with self._running_lock:
            if self._gc_threshold is None:
                # Every page parses into thousands of containers; with the default threshold
                # (700) the collector runs so often it costs ~15% of the extract CPU.
                self._gc_threshold = gc.get_threshold()
                gc.set_threshold(50_000, 50, 100)

    def _resource_done(self) -> None:
        with self._running_lock:
            self._unfinished -= 1
            if self._unfinished == 0:
                if self._gc_threshold is not None:
                    gc.set_threshold(*self._gc_threshold)
                if self.flatten_pool is not None:
                    self.flatten_pool.shutdown(wait=False, cancel_futures=True)
                release_json_as_text(self.selection)

    # --- what one resource reads this run
    def _batches(self, entry: StripeObject, tables: frozenset[str]) -> Iterator[Batch]:
        self._note_account()
        if entry.singleton:
            self._set_hints(entry, "merge")
            yield read_singleton(self.api, entry, self.account_id)
            return
        state = dlt.current.resource_state(entry.table)
        cursor = events_cursor = None
        # an end_date makes a stateless backfill window: it reads its window whatever the cursors
        if not self.bounds.full_refresh and self.bounds.stateful:
            cursor, events_cursor = cursors_of(state, self.account_id, tables, self._legacy_account)
        tracks_changes = entry.mutable and bool(entry.events)
        if tracks_changes and cursor is not None:
            if events_cursor is None or is_gap(events_cursor, self.bounds):
                logger.warning(
                    "%s: the last sync is older than the 30 days Stripe keeps events; "
                    "reading all %s again so no update or delete is missed",
                    entry.table,
                    entry.table,
                )
                cursor = None
        whole = cursor is None and self.bounds.start is None and self.bounds.end is None
        # replacing a table would also wipe the rows other accounts loaded into this dataset
        replace = whole and entry.table != "events" and not self._other_accounts
        self._set_hints(entry, "replace" if replace else "merge")
        merging = not replace

        known = set(state.get("known_fields", ()))
        skip: frozenset[str] = frozenset()
        if cursor is not None and events_cursor is not None and tracks_changes:
            changes = self._feed_from(events_cursor - self.bounds.lookback).changes_for(
                entry.table, events_cursor - self.bounds.lookback
            )
            skip = changes.ids
            current, vanished = self._current(entry, changes, known)
            yield from tombstones(entry, {*changes.deleted, *vanished}, self.account_id)
            yield from self.reader(tables, clear_emptied=merging).complete(entry, current)

        start = self.bounds.start
        if cursor is not None:
            start = max(cursor - self.bounds.lookback, start or 0)
        window = Window(start, self.bounds.list_end)
        if entry.table == "events" and cursor is not None:
            since = max(start or 0, self.bounds.now - EVENTS_RETENTION_SECONDS)  # Stripe keeps no older ones
            events = self._feed_from(since).events(since)
            # copies: the feed's snapshots are shared with every resource that follows changes
            yield Batch("events", [dict(orjson.loads(orjson.dumps(e)), stripe_account_id=self.account_id)
                                   for e in events])
        else:
            for batch in self.reader(tables, skip_ids=skip, clear_emptied=merging).read(entry, window):
                if batch.table == entry.table:
                    known.update(batch.flat.first_keys if batch.flat else batch.rows[0].keys())
                yield batch
        if self.bounds.stateful:
            save_cursors(state, self.account_id, tables, self.bounds.list_end,
                         self.bounds.now if tracks_changes else None, entry.tables, self._legacy_account)
            state["known_fields"] = sorted(known - {"stripe_account_id"})

    def _note_account(self) -> None:
        """Record this run's account in the source state, once: whose cursors the state's older,
        one-cursor form holds, and whether the dataset holds rows of other accounts too."""
        with self._account_lock:
            if self._accounts_noted:
                return
            state = dlt.current.source_state()
            # pinned on the first run that keeps cursors per account: `account_id` is overwritten
            # by every run, and resources convert their older state only when they next run
            self._legacy_account = state.setdefault("legacy_account", state.get("account_id"))
            accounts = set(state.get("accounts", ()))
            if self._legacy_account:
                accounts.add(self._legacy_account)
            # "" (a restricted key that cannot read its account) may be any account: never "only us"
            self._other_accounts = bool(accounts - {self.account_id}) or (not self.account_id and bool(accounts))
            if self.account_id:
                state["accounts"] = sorted(accounts | {self.account_id})
                state["account_id"] = self.account_id  # lets a later failure say whom to re-authenticate
            self._accounts_noted = True

    def _current(self, entry: StripeObject, changes: ObjectChanges, known: set[str]) -> tuple[list[dict], list[str]]:
        """The newest state of changed objects: the event snapshot, or a re-fetch if it is partial;
        and the ids of objects a re-fetch found gone (deleted after the events were read)."""
        objects, vanished = [], []
        for object_id, snapshot in changes.updated.items():
            if is_complete(snapshot, known, changes.api_versions.get(object_id), entry):
                # a copy: shaping writes into the rows, and the snapshot is also an event's payload
                objects.append(orjson.loads(orjson.dumps(snapshot)))
                continue
            try:
                objects.append(self.api.get(f"{entry.path}/{object_id}", endpoint=f"{entry.path}/{{id}}"))
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
                vanished.append(object_id)
        return objects, vanished

    def _feed_from(self, since: int) -> ChangeFeed:
        """The run's shared events feed, starting at the oldest cursor any selected resource needs."""
        with self._feed_lock:
            if self._feed is None:
                self._feed = ChangeFeed(self.reader(rows=True), self.bounds, min(since, self._oldest_events_cursor()))
            return self._feed

    def _oldest_events_cursor(self) -> int:
        resources = dlt.current.source_state().get("resources", {})
        cursors = []
        for root, tables in self.selection.items():
            created, events = cursors_of(resources.get(root, {}), self.account_id, tables, self._legacy_account)
            if root == "events":
                if created is not None:
                    cursors.append(max(created - self.bounds.lookback, self.bounds.now - EVENTS_RETENTION_SECONDS))
            elif events is not None and not is_gap(events, self.bounds):
                cursors.append(events - self.bounds.lookback)
        return min(cursors, default=self.bounds.now)

    def _set_hints(self, entry: StripeObject, mode: str) -> None:
        # The resource's own disposition too: dlt starts every table it fills from it (nested
        # tables included, whose disposition must follow their root's), and truncates the tables
        # of a "replace" resource that yields nothing (a type emptied at Stripe).
        dlt.current.resource().apply_hints(write_disposition=table_hints(entry, mode)["write_disposition"])
        for table in entry.tables:
            self._hints[table] = table_hints(BY_TABLE[table], mode)
            if self.digester is not None:
                self._plans[table] = plan_for(table, self._hints[table])


def table_hints(entry: StripeObject, mode: str) -> Any:
    """dlt hints of one table: key, merge rules, timestamp columns, hard deletes."""
    columns: dict[str, dict[str, Any]] = {name: {"data_type": "timestamp"} for name in entry.timestamps}
    columns["stripe_account_id"] = {"data_type": "text"}
    columns["metadata"] = {"data_type": "json"}  # free-form keys: one column, not one per key
    if entry.table == "events":
        columns["data"] = {"data_type": "json"}  # any object type: as Stripe sent it, not flattened
    merge_key = None
    if entry.table == "events":
        disposition: Any = {"disposition": "merge", "strategy": "insert-only"}  # append-only log
    elif mode == "replace":
        disposition = "replace"
    else:
        disposition = {"disposition": "merge", "strategy": "delete-insert"}
        columns["deleted"] = {"data_type": "bool", "hard_delete": True}
        if entry.parent:
            # Re-reading a parent replaces all of its items (draft line ids change on finalize).
            merge_key = next(s.parent_column for s in BY_TABLE[entry.parent].sub_lists if s.table == entry.table)
    return dlt.mark.make_hints(
        table_name=entry.table,
        primary_key="id",
        merge_key=merge_key,
        write_disposition=disposition,
        columns=columns,
    )
