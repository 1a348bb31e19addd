"""Changes since the last run, from `/v1/events`: read once per run, shared by every resource.

Per object the newest event wins: its snapshot is used when complete, otherwise the object is
fetched again (one request), so a partial event never writes nulls. `*.deleted` events delete.
Events are rendered in the API version of their time, which may not be ours: a snapshot of another
version is never used as is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from .catalog import StripeObject, object_for_event


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
    """Events from `since` on, fetched once (by `fetch(since)`), on first use."""

    def __init__(self, fetch: Callable[[int], Iterable[dict]], since: int) -> None:
        self._fetch = fetch
        self.since = since
        self._lock = threading.Lock()
        self._events: list[dict] | None = None

    def events(self, since: int) -> list[dict]:
        """Copies of the events created at or after `since`, in the order they happened."""
        # copies: whoever takes them shapes them, and each is also the events table's payload
        return orjson.loads(orjson.dumps(self._stored(since)))

    def types(self, since: int) -> list[str]:
        """The types of the events since `since` (nothing copied: what changed, not how)."""
        return [event["type"] for event in self._stored(since)]

    def changes_for(self, table: str, since: int) -> ObjectChanges:
        """Copies of the newest snapshots of `table`'s objects since `since` (only those are copied)."""
        changes = group_changes(self._stored(since)).get(table)
        if changes is None:
            return ObjectChanges()
        updated, deleted = orjson.loads(orjson.dumps([changes.updated, changes.deleted]))
        return ObjectChanges(updated, deleted, changes.api_versions)

    def seen_in_states(self, table: str, since: int, states: tuple[str, ...]) -> list[str]:
        """Ids of the `table` objects that some event since `since` shows with a `status` in `states`
        (at any point, not only the newest), and that still exist."""
        events = self._stored(since)
        deleted = group_changes(events).get(table, ObjectChanges()).deleted
        seen = {}
        for event in events:
            entry = object_for_event(event)
            snapshot = event["data"]["object"]
            if entry is not None and entry.table == table and snapshot.get("status") in states:
                seen[snapshot["id"]] = None
        return [object_id for object_id in seen if object_id not in deleted]

    def _stored(self, since: int) -> list[dict]:
        """The events from `since` on as fetched: read them, never change them."""
        if since < self.since:
            raise ValueError(f"the feed starts at {self.since}, not {since}")
        with self._lock:
            if self._events is None:
                self._events = oldest_first(list(self._fetch(self.since)))
        return [event for event in self._events if event["created"] >= since]


def oldest_first(events: list[dict]) -> list[dict]:
    """Events in the order they happened.

    `/v1/events` lists newest first, and within one second in the order Stripe recorded them
    (newest first); event ids say nothing about that order. The engine delivers each second's
    events from one cursor, in list order, so a stable sort on `created` keeps that order.
    """
    return sorted(events, key=lambda e: -e["created"])[::-1]


def group_changes(events: list[dict]) -> dict[str, ObjectChanges]:
    """Per table, the newest snapshot of each object the events (oldest first) touch."""
    by_table: dict[str, ObjectChanges] = {}
    for event in events:
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


def is_complete(snapshot: dict, known_fields: set[str], api_version: str | None, entry: StripeObject,
                our_version: str) -> bool:
    """A snapshot can replace the row only if it has every field the list endpoint returns, in our
    API version (a snapshot that lacks a field would overwrite good data with null)."""
    if api_version and api_version != our_version:
        return False
    sub_fields = {sub.field for sub in entry.sub_lists}
    return (known_fields - sub_fields) <= snapshot.keys()
