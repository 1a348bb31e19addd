"""One account's objects, kept in Stripe's list order, with the changes API and its events."""

from __future__ import annotations

import copy
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable

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
SUB_LISTS = ("invoices", "credit_notes")  # lists whose objects embed `lines`


def dumps(obj) -> bytes:
    """JSON bytes of exactly their length: orjson's own result keeps its growth buffer (kilobytes)."""
    return bytes(memoryview(orjson.dumps(obj)))


class Objects(dict):
    """id -> object. After the world is built each object is kept as its JSON bytes (about a third of
    a dict's memory, and what the API serves anyway); reading one decodes a fresh copy. Objects added
    or changed later are live dicts. Change objects through `Store.patch`/`update`, never in place."""

    def __getitem__(self, object_id: str) -> dict:
        value = dict.__getitem__(self, object_id)
        return orjson.loads(value) if type(value) is bytes else value

    def get(self, object_id: str, default=None):  # type: ignore[override]
        value = dict.get(self, object_id)
        if value is None:
            return default
        return orjson.loads(value) if type(value) is bytes else value

    def values(self):  # type: ignore[override]
        return (self[object_id] for object_id in self)

    def pop(self, object_id: str, *default):  # type: ignore[override]
        value = dict.pop(self, object_id, *default)
        return orjson.loads(value) if type(value) is bytes else value

    def raw(self, object_id: str) -> dict | bytes:
        return dict.__getitem__(self, object_id)

    def item_ids(self, subscription_id: str) -> list[str]:
        """A subscription's items in their list's order (the embedded ones are its first page)."""
        return sorted(self.items_of.get(subscription_id, []), key=self.collections["subscription_items"].position.get)

    def compact(self) -> None:
        for object_id, value in dict.items(self):
            if type(value) is not bytes:
                dict.__setitem__(self, object_id, dumps(value))


class Collection:
    """Objects of one list in Stripe's order: newest first; within a second, the later change first.

    Keys are (-created, -sequence, id): the sequence breaks ties between objects created in the
    same second (a create, update and delete in one second list as delete, update, create).
    """

    def __init__(self, created_field: str = "created") -> None:
        self.created_field = created_field
        self.objects = Objects()
        self.keys: list[tuple[int, int, str]] = []
        self.position: dict[str, tuple[int, int, str]] = {}  # id -> its key
        self._sorted = True
        self._sequence = 0

    def add(self, obj: dict) -> None:
        self._sequence += 1
        key = (-obj[self.created_field], -self._sequence, obj["id"])
        self.objects[obj["id"]] = obj
        self.position[obj["id"]] = key
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
        del keys[bisect_left(keys, self.position.pop(object_id))]
        return obj

    def ordered(self) -> list[tuple[int, int, str]]:
        if not self._sorted:
            self.keys.sort()
            self._sorted = True
        return self.keys

    def window(self, gte: int | None, lt: int | None) -> tuple[int, int]:
        """Index range of the keys whose `created` is in [gte, lt)."""
        keys = self.ordered()
        start = 0 if lt is None else bisect_left(keys, (-(lt - 1),))
        end = len(keys) if gte is None else bisect_right(keys, (-gte, float("inf")))
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
        # invoice / credit note id -> all of its lines, as JSON bytes, and their ids (for cursors)
        self.sub_lists: dict[str, list[bytes]] = {}
        self.sub_list_ids: dict[str, list[str]] = {}
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
                self.set_lines(obj["id"], lines)
            if resource == "subscription_items":
                self.items_of.setdefault(obj["subscription"], []).append(obj["id"])
                self._bytes.pop(obj["subscription"], None)
            return obj

    def set_lines(self, parent_id: str, lines: list[dict]) -> None:
        self.sub_lists[parent_id] = [dumps(line) for line in lines]
        self.sub_list_ids[parent_id] = [line["id"] for line in lines]
        self._bytes.pop(parent_id, None)

    def add_lines(self, parent_id: str, lines: list[dict]) -> None:
        with self.lock:
            self.sub_lists.setdefault(parent_id, []).extend(dumps(line) for line in lines)
            self.sub_list_ids.setdefault(parent_id, []).extend(line["id"] for line in lines)
            self._bytes.pop(parent_id, None)

    def lines(self, parent_id: str) -> list[dict]:
        return [orjson.loads(line) for line in self.sub_lists.get(parent_id, [])]

    def item_ids(self, subscription_id: str) -> list[str]:
        """A subscription's items in their list's order (the embedded ones are its first page)."""
        return sorted(self.items_of.get(subscription_id, []), key=self.collections["subscription_items"].position.get)

    def compact(self) -> None:
        """Keep every object as its JSON bytes (see `Objects`); done once the world is built."""
        with self.lock:
            for coll in self.collections.values():
                coll.objects.compact()
            self._bytes.clear()

    def patch(self, resource: str, object_id: str, **fields) -> dict:
        with self.lock:
            objects = self.collections[resource].objects
            obj = objects[object_id]
            obj.update(fields)
            objects[object_id] = obj
            self._bytes.pop(object_id, None)
            return obj

    def get(self, resource: str, object_id: str) -> dict:
        return self.collections[resource].objects[object_id]

    # --- reading, as the API renders it
    def render(self, resource: str, obj: dict) -> dict:
        """The object as Stripe returns it: truncated sub-lists embedded with `has_more`."""
        if resource in SUB_LISTS:
            lines = self.sub_lists.get(obj["id"], [])
            obj = dict(obj, lines=_embedded([orjson.loads(line) for line in lines[:EMBED_LIMIT]], len(lines),
                                            f"/v1/{resource}/{obj['id']}/lines"))
        elif resource == "subscriptions":
            items = [self.get("subscription_items", i) for i in self.item_ids(obj["id"])]
            obj = dict(obj, items=_embedded(items[:EMBED_LIMIT], len(items),
                                            f"/v1/subscription_items?subscription={obj['id']}"))
        return obj

    def rendered_bytes(self, resource: str, object_id: str) -> bytes:
        raw = self.collections[resource].objects.raw(object_id)
        if type(raw) is bytes:
            if resource in SUB_LISTS:  # splice the embedded lines into the stored bytes, no decoding
                lines = self.sub_lists.get(object_id, [])
                return raw[:-1] + b',"lines":' + _embedded_bytes(lines, f"/v1/{resource}/{object_id}/lines") + b"}"
            if resource == "subscriptions":
                items = self.collections["subscription_items"].objects
                data = [items.raw(i) for i in self.item_ids(object_id)]
                data = [d if type(d) is bytes else orjson.dumps(d) for d in data]
                url = f"/v1/subscription_items?subscription={object_id}"
                return raw[:-1] + b',"items":' + _embedded_bytes(data, url) + b"}"
            return raw
        cached = self._bytes.get(object_id)
        if cached is None:  # a live object: created or changed since the world was built
            cached = dumps(self.render(resource, raw))
            self._bytes[object_id] = cached
        return cached

    def page_bytes(self, resource: str, ids: list[str]) -> list[bytes]:
        """The JSON of each object, for a list page (the hot path of every crawl)."""
        if resource in SUB_LISTS or resource == "subscriptions":
            return [self.rendered_bytes(resource, i) for i in ids]
        stored = [dict.__getitem__(self.collections[resource].objects, i) for i in ids]
        return [raw if type(raw) is bytes else self.rendered_bytes(resource, i)
                for raw, i in zip(stored, ids, strict=True)]

    def objects(self, resource: str) -> list[dict]:
        """Every current object of a list as the API renders it, newest first (events: 30 days)."""
        with self.lock:
            if resource == "invoice_line_items":
                return [line for inv in self._ordered_ids("invoices") for line in self.lines(inv)]
            if resource == "credit_note_line_items":
                # Stripe's credit note line has no parent field; name it for comparisons
                return [dict(line, credit_note=cn) for cn in self._ordered_ids("credit_notes")
                        for line in self.lines(cn)]
            rendered = [orjson.loads(self.rendered_bytes(resource, i)) for i in self._ordered_ids(resource)]
            if resource == "events":
                horizon = self.clock() - EVENT_RETENTION
                rendered = [e for e in rendered if e["created"] >= horizon]
            return rendered

    def _ordered_ids(self, resource: str) -> list[str]:
        return [k[2] for k in self.collections[resource].ordered()]

    # --- changes, each recorded the way Stripe records it: as an event
    def record(self, event_type: str, obj: dict, previous: dict | None = None, created: int | None = None) -> dict:
        data: dict = {"object": orjson.loads(orjson.dumps(obj))}  # a snapshot; faster than deepcopy
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
            objects = self.collections[resource].objects
            obj = objects[object_id]
            previous = {k: copy.deepcopy(obj.get(k)) for k, v in fields.items() if obj.get(k) != v}
            obj.update(fields)
            objects[object_id] = obj
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
            self.sub_list_ids.pop(object_id, None)
            self.record(f"{EVENT_PREFIX[resource]}.deleted", dict(snapshot, deleted=True))

    def invalidate(self, object_id: str) -> None:
        self._bytes.pop(object_id, None)


def _embedded(first: list[dict], total: int, url: str) -> dict:
    return {"object": "list", "data": first, "has_more": total > EMBED_LIMIT, "total_count": total, "url": url}


def _embedded_bytes(items: list[bytes], url: str) -> bytes:
    return (b'{"object":"list","data":[' + b",".join(items[:EMBED_LIMIT]) + b'],"has_more":'
            + (b"true" if len(items) > EMBED_LIMIT else b"false") + b',"total_count":' + str(len(items)).encode()
            + b',"url":' + orjson.dumps(url) + b"}")
