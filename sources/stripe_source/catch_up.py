"""An incremental run's first step for one resource of one account: bring the objects that changed
since the last run up to date.

The events feed says which objects changed or were deleted (`changes.py`). A change lands as its
event's snapshot when the snapshot can be trusted, and as a fresh read of the object otherwise: a
partial snapshot (an older API version's), an object whose sub-list items embed an object that
changed since (a subscription item's price), or one whose items changed alone after its own
event (a fee's refund). Changes Stripe announces in no event are read again (`catalog.Recheck`),
and sub-lists whose items changed alone are read whole again (`item_changes.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import stripe

from .catalog import StripeObject
from .changes import ObjectChanges, is_complete
from .client import API_VERSION
from .item_changes import sub_lists_to_read
from .pages import PageJob, TableRows
from .plan import ResourcePlan
from .run import AccountScope
from .shaping import tombstone_rows, value_at


@dataclass(frozen=True)
class CaughtUp:
    """What the rest of the run needs from the catch-up."""

    handled: frozenset[str] = frozenset()  # ids read (or deleted) here: the list read after skips them
    list_new: bool = True  # whether the list must still be read for the objects created since


class CatchUp:
    def __init__(self, scope: AccountScope, entry: StripeObject, tables: frozenset[str], job: PageJob,
                 known: set[str]) -> None:
        self.scope = scope
        self.entry = entry
        self.tables = tables
        self.job = job
        self.known = known  # fields the list has shown: a snapshot without one of them is partial

    def rows(self, plan: ResourcePlan) -> Iterator[TableRows]:
        """Rows of the changed objects (tombstones for the deleted); returns `CaughtUp`."""
        scope, entry = self.scope, self.entry
        since = plan.changes_since
        assert since is not None
        rechecked: set[str] = set()
        for digest in scope.reader(self.job).read_selections(entry, self._rechecks(since)):
            if (rows := digest.tables.get(entry.table)) is not None:
                rechecked.update(rows.ids())
            yield from digest.tables.values()
        changes = scope.feed(since).changes_for(entry.table, since)
        list_new = True
        if plan.creations_from_events:
            # New objects are among the changes. When their snapshots cannot be trusted (updates
            # Stripe does not announce), the list reads those the rechecks did not just read.
            list_new = not entry.updates_announced and not set(changes.updated) <= rechecked
        if not entry.updates_announced:  # a snapshot may predate unannounced updates
            changes.updated.clear()
        for object_id in rechecked:  # read just now: newer than any event
            changes.updated.pop(object_id, None)
        items = sub_lists_to_read(scope, entry, self.tables, since, changes.ids)
        # a deleted parent stays deleted; a changed one is fetched again when its items changed alone
        stale = self._embedding_changed(since, changes.updated) | (items.refetch & set(changes.updated))
        current, vanished = self._current(changes, stale)
        if plan.disposition == "merge":  # appending to tables without the account's rows: nothing to delete
            gone = tombstone_rows(entry, [*changes.deleted, *vanished], scope.account, self.tables)
            yield from scope.run.digester.made_rows(gone)
        for digest in scope.reader(self.job).complete(entry, current):
            yield from digest.tables.values()
        for digest in scope.reader(self.job).read_sub_lists(entry, items.reread):
            yield from digest.tables.values()
        if not entry.created_filter:
            list_new = False  # a list without `created` (payment links, quotes): events say what is new
        return CaughtUp(changes.ids | rechecked | stale, list_new)

    def _rechecks(self, since: int) -> list[dict[str, str]]:
        """The list params of this run's `rechecks` (see `catalog.Recheck`)."""
        selections = []
        for recheck in self.entry.rechecks:
            if recheck.per is None:
                selections.append(dict(recheck.params))
                continue
            for parent_id in self.scope.feed(since).seen_in_states(recheck.per, since, recheck.states):
                selections.append({name: value.format(id=parent_id) for name, value in recheck.params})
        return selections

    def _embedding_changed(self, since: int, snapshots: dict[str, dict]) -> set[str]:
        """Objects whose sub-list items embed an object this run's events changed (`SubList.embeds`):
        items the destination holds, and items in this run's event `snapshots` of the objects (added
        since the last run: the destination has no row of them yet)."""
        parents: set[str] = set()
        for sub in self.entry.sub_lists:
            for column, table in sub.embeds:
                changed = self.scope.feed(since).changes_for(table, since).updated
                if not changed:
                    continue
                found = self.scope.run.destination().ids(sub.table, self.scope.account, sub.parent_column,
                                                         where_in=(column, sorted(changed)))
                parents |= found or set()
                path = column.replace("__", ".")  # the column's path in the object (`price__id`: price.id)
                parents |= {object_id for object_id, snapshot in snapshots.items()
                            if any(value_at(item, path) in changed for item in _embedded(snapshot, sub.field))}
        return parents

    def _current(self, changes: ObjectChanges, refetch: set[str]) -> tuple[list[dict], list[str]]:
        """The newest state of changed objects: the event snapshot, or a re-fetch if it is partial or
        the object is in `refetch`; and the ids of objects a re-fetch found gone (deleted after the
        events were read)."""
        entry, objects, vanished = self.entry, [], []
        snapshots: dict[str, dict | None] = {**dict.fromkeys(refetch), **changes.updated}
        for object_id, snapshot in snapshots.items():
            if object_id not in refetch and snapshot is not None and is_complete(
                    snapshot, self.known, changes.api_versions.get(object_id), entry, API_VERSION):
                objects.append(snapshot)
                continue
            try:
                expand = {"expand[]": list(entry.expand)} if entry.expand else None
                objects.append(self.scope.api.get(f"{entry.path}/{object_id}", expand,
                                                  endpoint=f"{entry.path}/{{id}}"))
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
                vanished.append(object_id)
        return objects, vanished


def _embedded(obj: dict, field: str) -> list[dict]:
    """The items of `obj`'s truncated sub-list `field` (none when absent)."""
    value = obj.get(field)
    return value.get("data") or [] if isinstance(value, dict) else []

