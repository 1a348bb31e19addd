"""The frame the generators share: ids, time, picking dependencies, and recording changes as Stripe does.

Every change to an object goes through `Builder.change` (or `emit` for a new one): within
Stripe's 30 days of events it records the events Stripe sends, each carrying the object as it
is right after that change, so an object's latest event matches it unless it changed later.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .ids import Ids
from .objects import BY_NAME, OBJECTS
from .store import EVENT_RETENTION, Store


class Dice(random.Random):
    """`random.Random` with cheaper `randint`/`choice` (one `random()` each; building draws millions)."""

    def randint(self, a: int, b: int) -> int:  # type: ignore[override]
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq: Any) -> Any:  # type: ignore[override]
        return seq[int(self.random() * len(seq))]


class Builder:
    """Ids, time and recording for the generators (`payments.Payments`, `catalog.Catalog`, `billing.Billing`)."""

    def __init__(self, store: Store, *, seed: int, scale: int, span_days: int, now: int, livemode: bool,
                 tag: str, counts: dict[str, int] | None = None, destinations: Sequence[str] = (),
                 account_name: str = "Emulated Inc.") -> None:
        self.store = store
        self.rng = Dice(seed)
        self.ids = store.ids if scale == 0 else Ids(random.Random(seed * 7919 + 1), tag)
        self.now = now
        self.start = now - span_days * 86400
        self.horizon = now - EVENT_RETENTION  # older changes need no event
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
        self.gone: set[str] = set()  # deleted: never picked again
        self.varied: dict[str, int] = {}  # draws so far per `vary` kind
        self.touched: dict[str, int] = {}  # object id -> time of its latest change (changes come in order)

    # --- time
    def when(self, after: int | None = None) -> int:
        """A moment in the world's span, uniformly; one before `after` moves to soon after it instead
        (an invoice soon after its subscription began), so recent days hold no more than their share."""
        if self.instant:
            return self.now
        last = self.now - 60
        moment = self.rng.randint(self.start, last)
        if after is not None and moment < after:
            moment = self.rng.randint(min(after, last), min(last, after + 60 * 86400))
        return moment

    def before(self, moment: int) -> int:
        """When a supporting object (a price an invoice needs) was made: any time before, while the
        world is built; at that moment on a built world, where the past is already served."""
        return moment if self.instant else self.rng.randint(self.start, moment)

    def later(self, obj: dict, *after: int | None, within: int = 7 * 86400) -> int:
        """A moment soon after the object's latest change (and after `after`): changes to one object
        stay in order, and an old object's lifecycle stays in its own past (recent days get their share)."""
        if self.instant:
            return self.now
        low = max([self.touched.get(obj["id"], obj.get("created") or obj.get("date") or self.start),
                   *[a for a in after if a is not None]])
        if (parent := self.store.parent_of.get(obj["id"])) is not None:
            # an item's change shows in its parent's later events: it cannot come before them
            low = max(low, self.touched.get(parent, low))
        last = self.now - 60
        return self.rng.randint(min(low, last), max(min(low, last), min(last, low + within)))

    # --- picking
    def pick(self, kind: str, test: Any = None) -> dict | None:
        """A random object of a kind built so far (passing `test`): a few random tries, then a scan."""
        pool = self.made.get(kind)
        if pool is None:
            pool = self.made[kind] = self.existing(kind)
        if not pool:
            return None
        for _ in range(12):
            obj = self.rng.choice(pool)
            if obj["id"] not in self.gone and (test is None or test(obj)):
                return obj
        passing = [o for o in pool if o["id"] not in self.gone and (test is None or test(o))]
        return self.rng.choice(passing) if passing else None

    def existing(self, kind: str) -> list[dict]:
        """Objects of a kind already in the store (a builder working on a built world, for the Emulator API)."""
        return []

    def remember(self, kind: str, obj: dict) -> dict:
        self.made.setdefault(kind, []).append(obj)
        return obj

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def vary(self, kind: str, choices: Sequence[str]) -> str:
        """The first draws of a kind take each choice in turn (small worlds see every status), then at random."""
        drawn = self.varied.get(kind, 0)
        self.varied[kind] = drawn + 1
        distinct = list(dict.fromkeys(choices))
        return distinct[drawn] if drawn < len(distinct) else self.rng.choice(choices)

    # --- recording
    def add(self, resource: str, obj: dict, fields: dict | None = None, parent: str | None = None) -> dict:
        """Store a new object, with the caller's overrides (`Emulator.create(..., **fields)`)."""
        if fields:
            obj.update(fields)
        return self.store.add(resource, obj, parent=parent)

    def recent(self, at: int) -> bool:
        return at >= self.horizon

    def emit(self, event_type: str, resource: str, object_id: str, at: int) -> None:
        """Record an event carrying the object as it is now (only within Stripe's 30 days)."""
        if self.recent(at):
            self.store.record(event_type, self.store.snapshot_bytes(resource, object_id), created=at,
                              delivered=self.delivered(at))

    def delivered(self, at: int) -> bool:
        """Whether the account's webhook endpoint got the event: a few deliveries failed, the latest are pending."""
        if self.instant:
            return True
        return self.rng.random() > (0.5 if at > self.now - 600 else 0.03)

    def change(self, resource: str, obj: dict, at: int, events: Sequence[str] = ("updated",), **fields: Any) -> dict:
        """Change an object at `at` and record Stripe's events for it.

        `updated` carries `previous_attributes`: the old value of each field that changed (Stripe sends
        none when nothing did). Nested values are always replaced, never changed in place, so the
        old ones stay as they were.
        """
        self.touched[obj["id"]] = max(at, self.touched.get(obj["id"], at))
        if (parent := self.store.parent_of.get(obj["id"])) is not None:  # its parent renders it from now on
            self.touched[parent] = max(at, self.touched.get(parent, at))
        if not self.recent(at):
            obj.update(fields)  # a live dict while building: the stored object itself
            return self.store.patch(resource, obj["id"], **fields)
        current = self.store.get(resource, obj["id"])
        previous = {k: current.get(k) for k, v in fields.items() if current.get(k) != v}
        changed = self.store.patch(resource, obj["id"], **fields)
        obj.update(fields)
        snapshot = self.store.snapshot_bytes(resource, obj["id"])
        entry = BY_NAME[resource]
        prefix = entry.events
        if prefix is None:  # Stripe announces no change of it (a shipping rate)
            return changed
        for event in events:
            if event != "updated":
                self.store.record(f"{prefix}.{event}", snapshot, created=at, delivered=self.delivered(at))
            elif previous and entry.announces_updates:
                self.store.record(f"{prefix}.updated", snapshot, previous, created=at, delivered=self.delivered(at))
        return changed

    def touch_sub_list(self, resource: str, obj: dict, at: int, before: dict | None, field: str) -> None:
        """After a parent's sub-list changed: `<prefix>.updated` with the old embedded list (and totals).

        The sub-list is in `previous_attributes` even when its first 10 items look the same (an item
        added beyond them): Stripe announces the change all the same.
        """
        self.touched[obj["id"]] = max(at, self.touched.get(obj["id"], at))
        if before is None or not self.recent(at):
            return
        after = self.store.snapshot(resource, obj["id"])
        previous = {k: before.get(k) for k in after if before.get(k) != after.get(k)}
        previous.setdefault(field, before[field])
        self.store.record(f"{BY_NAME[resource].events}.updated", after, previous, created=at)

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
