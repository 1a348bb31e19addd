"""Sub-list items with events of their own: which parents' lists to read again, which items left.

Most sub-list items change with their parent, whose event brings their list again.
Some change alone, announced by events of their own and none of the parent's: a payment method
attached to a customer (`payment_method.attached`), a tax id added to one (`customer.tax_id.created`),
an application fee refund updated. A sub-list table holds each parent's items as one set (its merge
key is the parent), so one item's snapshot would replace its siblings: the parent's list is read
again whole, one request per parent. An item whose last event says it left the list
(`payment_method.detached`: it names no customer any more) has the list of the parent it had (as the
destination holds it) read again. A sub-list no event announces at all (a product's features) is
read again for every parent, every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .catalog import BY_TABLE, StripeObject, SubList, object_for_event

if TYPE_CHECKING:
    from .run import AccountScope


@dataclass
class ItemChanges:
    """What items' own events ask of an incremental run."""

    reread: list[tuple[SubList, str]] = field(default_factory=list)  # (sub-list, parent id): read whole again
    # parents that changed themselves too: their event snapshot may predate their items' own events,
    # so the parent is fetched again (one request) rather than trusted
    refetch: set[str] = field(default_factory=set)
    orphans: dict[SubList, list[str]] = field(default_factory=dict)  # items that left, naming no parent


def sub_lists_to_read(scope: AccountScope, entry: StripeObject, wanted: frozenset[str], since: int,
                      handled: frozenset[str]) -> ItemChanges:
    """The sub-lists to read again whole on an incremental run, beyond the parents that changed
    themselves (`handled`): those whose items' own events the feed holds since `since` (an item that
    left its list: the parent the destination has it under), and the sub-lists no event announces,
    for every parent; and the handled parents to fetch again."""
    feed, destination, account = scope.feed(since), scope.run.destination(), scope.account
    found = item_changes(lambda: feed.events(since), entry, wanted, handled)
    for sub, item_ids in found.orphans.items():
        had = set(destination.column_of(sub.table, account, item_ids, sub.parent_column).values())
        found.refetch |= had & handled
        found.reread += [(sub, parent) for parent in sorted(had - handled) if (sub, parent) not in found.reread]
    found.reread += every_run(entry, wanted, lambda table, column: destination.ids(table, account, column), handled)
    return found


def item_changes(events: Callable[[], Iterable[dict]], entry: StripeObject, wanted: frozenset[str],
                 handled: frozenset[str]) -> ItemChanges:
    """For `entry`'s wanted sub-lists whose items have events: (sub-list, parent id) to read again,
    the parents in `handled` (changed or deleted themselves: read, or removed, with their own change)
    to fetch again rather than trust their snapshot, and per sub-list the ids of items that left their
    list naming no parent (look it up where they were loaded). `events()` gives them oldest first
    (asked only when some sub-list follows its items' events)."""
    followed = {BY_TABLE[sub.table].object: sub for sub in entry.sub_lists
                if sub.table in wanted and BY_TABLE[sub.table].events}
    if not followed:
        return ItemChanges()
    last: dict[str, tuple[SubList, dict]] = {}
    for event in events():
        item = object_for_event(event)
        sub = followed.get(item.object) if item is not None else None
        if sub is not None:
            last[event["data"]["object"]["id"]] = (sub, event)
    reread: dict[tuple[SubList, str], None] = {}
    found = ItemChanges()
    for item_id, (sub, event) in last.items():
        snapshot = event["data"]["object"]
        previous = event["data"].get("previous_attributes") or {}
        parent = snapshot.get(sub.parent_column) or previous.get(sub.parent_column)
        if not isinstance(parent, str):
            found.orphans.setdefault(sub, []).append(item_id)
        elif parent in handled:
            found.refetch.add(parent)
        else:
            reread[(sub, parent)] = None
    found.reread = list(reread)
    return found


def every_run(entry: StripeObject, wanted: frozenset[str], held: Callable[[str, str], set[str] | None],
              handled: frozenset[str]) -> list[tuple[SubList, str]]:
    """The sub-lists no event announces a change of (`SubList.every_run`), for every parent the
    destination holds (`held(table, column)`: its parents' ids, or the ids its items name)."""
    found: list[tuple[SubList, str]] = []
    for sub in entry.sub_lists:
        if sub.every_run and sub.table in wanted:
            parents = (held(entry.table, "id") or set()) | (held(sub.table, sub.parent_column) or set())
            found += [(sub, parent) for parent in sorted(parents - handled)]
    return found
