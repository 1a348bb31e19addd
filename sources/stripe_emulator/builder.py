"""The frame the generators share: ids, time, picking dependencies, and recording changes as Stripe does.

Every change to an object goes through `Builder.change` (or `emit` for a new one): within
Stripe's 30 days of events it records the events Stripe sends, each carrying the object as it
is right after that change, so an object's latest event matches it unless it changed later.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

API_VERSION = "2026-10-28.endive"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EVENT_WINDOW = 30 * 86400  # Stripe keeps events 30 days; older changes need no event


@dataclass
class Ids:
    rng: random.Random
    tag: str

    def new(self, prefix: str) -> str:
        body = "".join(self.rng.choices(_ALPHABET, k=14))
        return f"{prefix}_1{self.tag}{body}"


class Builder:
    """Ids, time and recording for the generators (`billing.Billing`, `payments.Payments`)."""

    def __init__(self, store: Store, *, seed: int, scale: int, span_days: int, now: int, livemode: bool,
                 tag: str, counts: dict[str, int] | None = None, destinations: Sequence[str] = (),
                 account_name: str = "Emulated Inc.") -> None:
        from .objects import OBJECTS

        self.store = store
        self.rng = random.Random(seed)
        self.ids = store.ids if scale == 0 else Ids(random.Random(seed * 7919 + 1), tag)
        self.now = now
        self.start = now - span_days * 86400
        self.livemode = livemode
        self.destinations = list(destinations)  # connected accounts transfers go to
        self.account_name = account_name
        self.exact = counts is not None  # counts given: exactly those objects, no history played on top
        if counts is not None:
            self.counts = {entry.name: counts.get(entry.name, 0) for entry in OBJECTS if entry.generator}
        else:
            self.counts = {entry.name: max(2, int(scale * entry.share)) for entry in OBJECTS if entry.generator}
        self.instant = scale == 0  # working on a built world (the Emulator API): every change happens now
        self.declined: tuple | None = None  # the decline of the last failed charge
        self.made: dict[str, list[dict]] = {}  # objects built so far, by kind, to pick dependencies from
        self.touched: dict[str, int] = {}  # object id -> time of its latest change (changes come in order)

    # --- time
    @property
    def horizon(self) -> int:
        return self.now - EVENT_WINDOW

    def when(self, after: int | None = None) -> int:
        if self.instant:
            return self.now
        low = max(self.start, after or self.start)
        return self.rng.randint(low, max(low, self.now - 60))

    def later(self, obj: dict, *after: int | None) -> int:
        """A moment after the object's latest change (and after `after`): changes to one object stay ordered."""
        if self.instant:
            return self.now
        low = max([self.touched.get(obj["id"], obj.get("created") or obj.get("date") or self.start),
                   *[a for a in after if a is not None]])
        return self.rng.randint(low, max(low, self.now - 60))

    # --- picking
    def pick(self, kind: str, test: Any = None) -> dict | None:
        """A random object of a kind built so far (passing `test`): a few random tries, then a scan."""
        pool = self.made.get(kind)
        if pool is None:
            pool = self.made[kind] = self.existing(kind)
        if not pool:
            return None
        if test is None:
            return self.rng.choice(pool)
        for _ in range(12):
            obj = self.rng.choice(pool)
            if test(obj):
                return obj
        passing = [o for o in pool if test(o)]
        return self.rng.choice(passing) if passing else None

    def existing(self, kind: str) -> list[dict]:
        """Objects of a kind already in the store (a builder working on a built world, for the Emulator API)."""
        return []

    def remember(self, kind: str, obj: dict) -> dict:
        self.made.setdefault(kind, []).append(obj)
        return obj

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # --- recording
    def add(self, resource: str, obj: dict, fields: dict | None = None, parent: str | None = None) -> dict:
        """Store a new object, with the caller's overrides (`Emulator.create(..., **fields)`)."""
        if fields:
            obj.update(fields)
        self.touched[obj["id"]] = obj.get("created") or obj.get("date") or self.now
        return self.store.add(resource, obj, parent=parent)

    def recent(self, at: int) -> bool:
        return at >= self.horizon

    def emit(self, event_type: str, resource: str, object_id: str, at: int, delivered: bool = True) -> None:
        """Record an event carrying the object as it is now (only within Stripe's 30 days)."""
        if self.recent(at):
            self.store.record(event_type, self.store.snapshot(resource, object_id), created=at,
                              delivered=delivered)

    def change(self, resource: str, obj: dict, at: int, events: Sequence[str] = ("updated",), **fields: Any) -> dict:
        """Change an object at `at` and record Stripe's events for it (`updated` with previous_attributes)."""
        self.touched[obj["id"]] = max(at, self.touched.get(obj["id"], at))
        if not self.recent(at):
            obj.update(fields)  # a live dict while building: the stored object itself
            return self.store.patch(resource, obj["id"], **fields)
        before = self.store.snapshot(resource, obj["id"])
        changed = self.store.patch(resource, obj["id"], **fields)
        obj.update(fields)
        after = self.store.snapshot(resource, obj["id"])
        for event in events:
            self.store.changed(resource, after, before, event, when=at)
        return changed

    def touch_sub_list(self, resource: str, obj: dict, at: int, before: dict | None) -> None:
        """After a parent's sub-list changed: `<prefix>.updated` with the old embedded list."""
        self.touched[obj["id"]] = max(at, self.touched.get(obj["id"], at))
        if before is not None and self.recent(at):
            self.store.changed(resource, self.store.snapshot(resource, obj["id"]), before, "updated", when=at)

    def snapshot_if_recent(self, resource: str, obj: dict, at: int) -> dict | None:
        return self.store.snapshot(resource, obj["id"]) if self.recent(at) else None


def address(rng: random.Random, country: str | None = None) -> dict:
    country = country or rng.choice(["DE", "IE", "US", "PT", "FR", "GB"])
    cities = {"DE": "Berlin", "IE": "Dublin", "US": "Austin", "PT": "Lisbon", "FR": "Lyon", "GB": "Leeds"}
    return {"city": cities.get(country), "country": country, "line1": f"{rng.randint(1, 200)} Main St",
            "line2": rng.choice([None, None, "Suite 4"]), "postal_code": f"{rng.randint(10000, 99999)}",
            "state": "TX" if country == "US" else None}


def list_object(data: list, url: str) -> dict:
    return {"object": "list", "data": data, "has_more": False, "url": url}
