"""One account's objects, kept in Stripe's list order, with the changes API and its events."""

from __future__ import annotations

import copy
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable

import orjson

from .world import API_VERSION, Ids

EVENT_RETENTION = 30 * 86400

# List name -> the event type prefix of its objects (subscriptions are customer.subscription.*).
EVENT_PREFIX = {
    "charges": "charge",
    "payment_intents": "payment_intent",
    "refunds": "refund",
    "disputes": "charge.dispute",
    "payouts": "payout",
    "transfers": "transfer",
    "invoices": "invoice",
    "invoiceitems": "invoiceitem",
    "credit_notes": "credit_note",
    "customers": "customer",
    "subscriptions": "customer.subscription",
    "products": "product",
    "prices": "price",
    "plans": "plan",
    "coupons": "coupon",
    "promotion_codes": "promotion_code",
    "tax_rates": "tax_rate",
}
# Stripe announces a new charge by its outcome; there is no `charge.created`.
CREATED_EVENT = {"charges": "charge.succeeded"}
RESOURCES = (*EVENT_PREFIX, "balance_transactions", "subscription_items", "events")
EMBED_LIMIT = 10  # Stripe embeds the first 10 items of a sub-list


class Collection:
    """Objects of one list, ordered newest first by key (-created, id), like Stripe's lists."""

    def __init__(self, created_field: str = "created") -> None:
        self.created_field = created_field
        self.objects: dict[str, dict] = {}
        self.keys: list[tuple[int, str]] = []
        self._sorted = True

    def key(self, obj: dict) -> tuple[int, str]:
        return (-obj[self.created_field], obj["id"])

    def add(self, obj: dict) -> None:
        key = self.key(obj)
        self.objects[obj["id"]] = obj
        if self._sorted and (not self.keys or key > self.keys[-1]):
            self.keys.append(key)
        elif self._sorted and len(self.keys) < 50_000:
            insort(self.keys, key)
        else:  # bulk building: sort once, on first read
            self.keys.append(key)
            self._sorted = False

    def remove(self, object_id: str) -> dict:
        obj = self.objects.pop(object_id)
        keys = self.ordered()
        del keys[bisect_left(keys, self.key(obj))]
        return obj

    def ordered(self) -> list[tuple[int, str]]:
        if not self._sorted:
            self.keys.sort()
            self._sorted = True
        return self.keys

    def window(self, gte: int | None, lt: int | None) -> tuple[int, int]:
        """Index range of the keys whose `created` is in [gte, lt)."""
        keys = self.ordered()
        start = 0 if lt is None else bisect_left(keys, (-(lt - 1), ""))
        end = len(keys) if gte is None else bisect_right(keys, (-gte, "\uffff"))
        return start, end


class Store:
    """An account's world. Thread-safe: the server reads while tests change it."""

    def __init__(self, account_id: str, livemode: bool, clock: Callable[[], int], ids: Ids) -> None:
        self.account_id = account_id
        self.livemode = livemode
        self.clock = clock
        self.ids = ids
        self.lock = threading.RLock()
        # invoice items carry `date` instead of `created`; their list orders and filters by it
        self.collections = {name: Collection("date" if name == "invoiceitems" else "created") for name in RESOURCES}
        self.sub_lists: dict[str, list[dict]] = {}  # invoice / credit note id -> all of its lines
        self.items_of: dict[str, list[str]] = {}  # subscription id -> its item ids
        self.where: dict[str, str] = {}  # object id -> list name (for expand)
        self.deleted: dict[str, set[str]] = {name: set() for name in RESOURCES}
        self._bytes: dict[str, bytes] = {}

    # --- building (no events)
    def add(self, resource: str, obj: dict, lines: list[dict] | None = None) -> dict:
        with self.lock:
            self.collections[resource].add(obj)
            self.where[obj["id"]] = resource
            if lines is not None:
                self.sub_lists[obj["id"]] = lines
            if resource == "subscription_items":
                self.items_of.setdefault(obj["subscription"], []).append(obj["id"])
                self._bytes.pop(obj["subscription"], None)
            return obj

    def patch(self, resource: str, object_id: str, **fields) -> dict:
        with self.lock:
            obj = self.collections[resource].objects[object_id]
            obj.update(fields)
            self._bytes.pop(object_id, None)
            return obj

    def get(self, resource: str, object_id: str) -> dict:
        return self.collections[resource].objects[object_id]

    # --- reading, as the API renders it
    def render(self, resource: str, obj: dict) -> dict:
        """The object as Stripe returns it: truncated sub-lists embedded with `has_more`."""
        if resource in ("invoices", "credit_notes"):
            lines = self.sub_lists.get(obj["id"], [])
            obj = dict(obj, lines=_embedded(lines, f"/v1/{resource}/{obj['id']}/lines"))
        elif resource == "subscriptions":
            items = [self.get("subscription_items", i) for i in self.items_of.get(obj["id"], [])]
            obj = dict(obj, items=_embedded(items, f"/v1/subscription_items?subscription={obj['id']}"))
        return obj

    def rendered_bytes(self, resource: str, object_id: str) -> bytes:
        cached = self._bytes.get(object_id)
        if cached is None:
            obj = self.collections[resource].objects[object_id]
            cached = orjson.dumps(self.render(resource, obj))
            self._bytes[object_id] = cached
        return cached

    def objects(self, resource: str) -> list[dict]:
        """Every current object of a list as the API renders it, newest first (events: 30 days)."""
        with self.lock:
            if resource == "invoice_line_items":
                return [copy.deepcopy(line) for inv in self._ordered("invoices")
                        for line in self.sub_lists.get(inv["id"], [])]
            if resource == "credit_note_line_items":
                # Stripe's credit note line has no parent field; name it for comparisons
                return [dict(copy.deepcopy(line), credit_note=cn["id"]) for cn in self._ordered("credit_notes")
                        for line in self.sub_lists.get(cn["id"], [])]
            rendered = [orjson.loads(self.rendered_bytes(resource, o["id"])) for o in self._ordered(resource)]
            if resource == "events":
                horizon = self.clock() - EVENT_RETENTION
                rendered = [e for e in rendered if e["created"] >= horizon]
            return rendered

    def _ordered(self, resource: str) -> Iterable[dict]:
        coll = self.collections[resource]
        return [coll.objects[i] for _, i in coll.ordered()]

    # --- changes, each recorded the way Stripe records it: as an event
    def record(self, event_type: str, obj: dict, previous: dict | None = None, created: int | None = None) -> dict:
        data: dict = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": self.ids.new("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": created if created is not None else self.clock(),
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        with self.lock:
            self.collections["events"].add(event)
            self.where[event["id"]] = "events"
        return event

    def created(self, resource: str, obj: dict, created: int | None = None) -> None:
        event_type = CREATED_EVENT.get(resource, f"{EVENT_PREFIX[resource]}.created")
        self.record(event_type, self.render(resource, obj), created=created)

    def update(self, resource: str, object_id: str, event_suffix: str = "updated", **fields) -> dict:
        with self.lock:
            obj = self.collections[resource].objects[object_id]
            previous = {k: copy.deepcopy(obj.get(k)) for k, v in fields.items() if obj.get(k) != v}
            obj.update(fields)
            self._bytes.pop(object_id, None)
            if resource in EVENT_PREFIX:
                self.record(f"{EVENT_PREFIX[resource]}.{event_suffix}", self.render(resource, obj), previous)
            return obj

    def delete(self, resource: str, object_id: str) -> None:
        with self.lock:
            obj = self.collections[resource].remove(object_id)
            self.deleted[resource].add(object_id)
            self._bytes.pop(object_id, None)
            snapshot = self.render(resource, obj)
            self.sub_lists.pop(object_id, None)
            self.record(f"{EVENT_PREFIX[resource]}.deleted", dict(snapshot, deleted=True))

    def invalidate(self, object_id: str) -> None:
        self._bytes.pop(object_id, None)


def _embedded(items: list[dict], url: str) -> dict:
    return {"object": "list", "data": items[:EMBED_LIMIT], "has_more": len(items) > EMBED_LIMIT,
            "total_count": len(items), "url": url}
