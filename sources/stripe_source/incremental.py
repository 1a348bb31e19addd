"""What each run reads: cursors on `created`, the events feed for updates and deletes, gaps.

The sync model (the README repeats it for users):
- First run, or `full_refresh`: every object is listed (within `start_date`/`end_date`).
- Later runs list only objects created since the last run's cursor, minus `lookback_seconds`.
- Objects that change after creation are brought up to date from `/v1/events` since the last
  run: the newest event per object wins; its snapshot is used when it is complete, otherwise the
  object is fetched again (one request). Truncated sub-lists are always paged to the end.
- `*.deleted` events delete the row and its sub-list rows (dlt's hard-delete hint on `deleted`).
- Stripe keeps events 30 days. A cursor older than that is a gap: the run says so and reads the
  mutable objects fully again, replacing their tables, so the warehouse ends equal to Stripe.

Cursors live in dlt's state (destination-backed), so they survive a lost working directory. They
are kept per account (a connected account's run never moves the platform's) and per table (loading
invoices alone leaves invoice lines' cursor where it was, so a later run still catches them up).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .catalog import BY_TABLE, StripeObject, object_for_event
from .client import API_VERSION
from .shaping import removed_row
from .sync import Batch, ObjectReader, Window

EVENTS_RETENTION_SECONDS = 30 * 86400


def cursors_of(state: dict, account: str, tables: Iterable[str], legacy_account: str | None = None,
               ) -> tuple[int | None, int | None]:
    """Where the last runs left `tables` of one resource for `account`: (created, events) cursors,
    the oldest of the tables'; (None, None) if any of them was never loaded for this account."""
    per_account = state.get("cursors")
    if per_account is None:  # written before cursors were kept per account and table
        if legacy_account is not None and legacy_account != account:
            return None, None
        return state.get("created_cursor"), state.get("events_cursor")
    per_table = per_account.get(account, {})
    found = [per_table.get(table) for table in tables]
    if not found or any(cursor is None for cursor in found):
        return None, None
    events = [cursor.get("events") for cursor in found]
    return min(cursor["created"] for cursor in found), None if None in events else min(events)


def save_cursors(state: dict, account: str, tables: Iterable[str], created: int, events: int | None,
                 all_tables: Iterable[str], legacy_account: str | None = None) -> None:
    """Record where this run left `tables` for `account` (the resource's state in the older,
    one-cursor form is converted: it held the cursor of every table of `legacy_account`)."""
    if "cursors" not in state:
        old_created, old_events = state.pop("created_cursor", None), state.pop("events_cursor", None)
        state["cursors"] = {}
        if old_created is not None:
            state["cursors"][legacy_account if legacy_account is not None else account] = {
                table: {"created": old_created, "events": old_events} for table in all_tables
            }
    per_table = state["cursors"].setdefault(account, {})
    for table in tables:
        per_table[table] = {"created": created, "events": events}


@dataclass(frozen=True)
class RunBounds:
    """What the user asked for this run, fixed before the first request."""

    now: int  # Stripe's clock at the start of the run
    start: int | None
    end: int | None  # explicit end_date: a stateless window, cursors are left alone
    lookback: int
    full_refresh: bool

    @property
    def list_end(self) -> int:
        # Exclusive bound: objects created from `now` on belong to the next run (via lookback).
        return self.end if self.end is not None else self.now + 1

    @property
    def stateful(self) -> bool:
        return self.end is None


@dataclass
class ObjectChanges:
    """The newest state events report for objects of one table since the last run."""

    updated: dict[str, dict] = field(default_factory=dict)  # id -> snapshot
    deleted: dict[str, dict] = field(default_factory=dict)  # id -> snapshot at deletion
    api_versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self.updated) | frozenset(self.deleted)


class ChangeFeed:
    """Events since the oldest cursor of this run's resources, read once and shared by all of them."""

    def __init__(self, reader: ObjectReader, bounds: RunBounds, since: int) -> None:
        self.reader = reader
        self.bounds = bounds
        self.since = since
        self._lock = threading.Lock()
        self._events: list[dict] | None = None

    def events(self, since: int) -> list[dict]:
        """Events created at or after `since` (oldest first); fetched once, on first use."""
        if since < self.since:
            raise ValueError(f"the feed starts at {self.since}, not {since}")
        with self._lock:
            if self._events is None:
                events: list[dict] = []
                for batch in self.reader.read(BY_TABLE["events"], Window(self.since, self.bounds.now + 1)):
                    events.extend(batch.rows)
                self._events = oldest_first(events)
        return [event for event in self._events if event["created"] >= since]

    def changes_for(self, table: str, since: int) -> ObjectChanges:
        return _group_changes(self.events(since)).get(table, ObjectChanges())


def oldest_first(events: list[dict]) -> list[dict]:
    """Events in the order they happened.

    `/v1/events` lists newest first, and within one second in the order Stripe recorded them
    (newest first); event ids say nothing about that order. The reader delivers each second's
    events from one cursor, in list order, so a stable sort on `created` keeps that order.
    """
    return sorted(events, key=lambda e: -e["created"])[::-1]


def is_gap(events_cursor: int, bounds: RunBounds) -> bool:
    """Whether events we would need have already expired at Stripe."""
    return events_cursor - bounds.lookback < bounds.now - EVENTS_RETENTION_SECONDS


def _group_changes(events: list[dict]) -> dict[str, ObjectChanges]:
    by_table: dict[str, ObjectChanges] = {}
    for event in events:  # oldest first, so the newest event per object wins
        entry = object_for_event(event)
        if entry is None:
            continue
        changes = by_table.setdefault(entry.table, ObjectChanges())
        snapshot = event["data"]["object"]
        object_id = snapshot["id"]
        if event["type"].endswith(".deleted") and entry.deletable:
            changes.updated.pop(object_id, None)
            changes.deleted[object_id] = snapshot
        else:
            changes.deleted.pop(object_id, None)
            changes.updated[object_id] = snapshot
            changes.api_versions[object_id] = event.get("api_version")
    return by_table


def is_complete(snapshot: dict, known_fields: set[str], api_version: str | None, entry: StripeObject) -> bool:
    """A snapshot can replace the row only if it has every field the list endpoint returns.

    Events are rendered in the account's API version, which may not be ours; and a snapshot that
    lacks a field would overwrite good data with null.
    """
    if api_version and api_version != API_VERSION:
        return False
    sub_fields = {sub.field for sub in entry.sub_lists}
    return (known_fields - sub_fields) <= snapshot.keys()


def tombstones(entry: StripeObject, deleted_ids: Any, account_id: str | None) -> Iterator[Batch]:
    """Rows that make dlt delete an object and, through the merge key, all of its sub-list rows."""
    ids = sorted(deleted_ids)
    if not ids:
        return
    yield Batch(entry.table, [{"id": i, "deleted": True, "stripe_account_id": account_id} for i in ids])
    for sub in entry.sub_lists:
        yield Batch(sub.table, [removed_row(sub, i, account_id, "deleted") for i in ids])
