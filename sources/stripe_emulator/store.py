"""One account's objects, kept in Stripe's list order, with their sub-lists and the events of their changes."""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from .ids import Ids
from .objects import BY_NAME, EMBED_LIMIT, OBJECTS, RELATIONS, SUB_LIST_OF

API_VERSION = "2026-10-28.endive"  # objects are kept, and events recorded, as this version shapes them
EVENT_RETENTION = 30 * 86400  # Stripe keeps events 30 days


def dumps(obj: Any) -> bytes:
    """JSON bytes of exactly their length: orjson's own result keeps its growth buffer (kilobytes)."""
    return bytes(memoryview(orjson.dumps(obj)))


class Objects(dict):
    """id -> object. After the world is built each object is kept as its JSON bytes (about a third of
    a dict's memory, and what the API serves anyway); reading one decodes a fresh copy. Objects added
    or changed later are live dicts. Change objects through `Store.patch`/`update`, never in place."""

    def __getitem__(self, object_id: str) -> dict:
        value = dict.__getitem__(self, object_id)
        return orjson.loads(value) if type(value) is bytes else value

    def get(self, object_id: str, default: Any = None) -> Any:  # type: ignore[override]
        value = dict.get(self, object_id)
        if value is None:
            return default
        return orjson.loads(value) if type(value) is bytes else value

    def values(self) -> Iterator[dict]:  # type: ignore[override]
        return (self[object_id] for object_id in self)

    def pop(self, object_id: str, *default: Any) -> Any:  # type: ignore[override]
        value = dict.pop(self, object_id, *default)
        return orjson.loads(value) if type(value) is bytes else value

    def raw(self, object_id: str) -> dict | bytes:
        return dict.__getitem__(self, object_id)

    def raw_bytes(self, object_id: str) -> bytes:
        value = dict.__getitem__(self, object_id)
        return value if type(value) is bytes else orjson.dumps(value)

    def compact(self) -> None:
        for object_id, value in dict.items(self):
            if type(value) is not bytes:
                dict.__setitem__(self, object_id, dumps(value))


class Collection:
    """Objects of one list in Stripe's order: newest first; within a second, the later change first.

    Keys are (-created, -sequence, id): the sequence breaks ties between objects created in the
    same second (a create, update and delete in one second list as delete, update, create).
    Unordered collections (sub-list items, objects only reached by `expand`) keep no keys.
    """

    def __init__(self, created_field: str = "created", ordered: bool = True) -> None:
        self.created_field = created_field
        self.ordered_list = ordered
        self.objects = Objects()
        self.keys: list[tuple[int, int, str]] = []
        self.position: dict[str, tuple[int, int, str]] = {}  # id -> its key
        self._sorted = True
        self._sequence = 0
        self.bulk = False  # while the world is built: keys are sorted once, on first read

    def add(self, obj: dict | bytes, object_id: str | None = None, created: int | None = None) -> None:
        """Add an object (or its JSON bytes, with its id and time: events are stored as they are served)."""
        object_id = object_id or obj["id"]  # type: ignore[index]
        self.objects[object_id] = obj
        if not self.ordered_list:
            return
        self._sequence += 1
        key = (-(created if created is not None else obj[self.created_field]), -self._sequence,  # type: ignore[index]
               object_id)
        self.position[object_id] = key
        if self._sorted and (not self.keys or key > self.keys[-1]):
            self.keys.append(key)
        elif self._sorted and not self.bulk and len(self.keys) < 50_000:
            insort(self.keys, key)
        else:  # bulk building: sort once, on first read
            self.keys.append(key)
            self._sorted = False

    def remove(self, object_id: str) -> dict:
        obj = self.objects.pop(object_id)
        if self.ordered_list:
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

    def __init__(self, account_id: str, livemode: bool, clock: Callable[[], int], ids: Ids,
                 connected: bool = False) -> None:
        self.account_id = account_id
        self.livemode = livemode
        self.clock = clock
        self.ids = ids
        self.connected = connected  # events read for a connected account name it (`account`)
        self.lock = threading.RLock()
        self.collections = {entry.name: Collection(entry.created_field, ordered=entry.path is not None)
                            for entry in OBJECTS}
        for coll in self.collections.values():
            coll.bulk = True
        # sub-list item name -> parent id -> item ids, in the sub-list's order (the first 10 are embedded)
        self.sub_lists: dict[str, dict[str, list[str]]] = {item: {} for item in SUB_LIST_OF}
        self.parent_of: dict[str, str] = {}  # sub-list item id -> the parent embedding it
        # includable lists computed from other objects (see objects.RELATIONS): relation -> parent id -> ids
        self.relations: dict[str, dict[str, list[str]]] = {}
        self.extras: dict[str, dict[str, Any]] = {}  # object id -> includable values kept beside it
        self.where: dict[str, str] = {}  # object id -> its entry (for `expand`)
        self.deleted: dict[str, set[str]] = {entry.name: set() for entry in OBJECTS}
        self.settled_by: dict[str, str] = {}  # balance transaction -> the automatic payout that paid it out
        self.settled: dict[str, list[str]] = {}  # automatic payout -> the balance transactions it paid out
        self.undelivered: set[str] = set()  # events whose webhooks are pending or failed
        # rendered JSON of live (changed) objects: id -> entry -> bytes (a price and its plan share an id)
        self._bytes: dict[str, dict[str, bytes]] = {}

    # --- building (no events)
    def add(self, resource: str, obj: dict, parent: str | None = None) -> dict:
        """Add an object; a sub-list item goes after its parent's other items."""
        with self.lock:
            coll = self.collections[resource]
            # an object without its list's order field (a payment link has no `created`): kept beside it
            coll.add(obj, created=None if coll.created_field in obj else self.extra(obj["id"], coll.created_field))
            if resource != "plans" or obj["id"] not in self.where:  # a price's plan twin: the id names the price
                self.where[obj["id"]] = resource
            if parent is not None:
                self.sub_lists[resource].setdefault(parent, []).append(obj["id"])
                self.parent_of[obj["id"]] = parent
                self._bytes.pop(parent, None)
            return obj

    def relate(self, relation: str, parent: str, object_id: str) -> None:
        self.relations.setdefault(relation, {}).setdefault(parent, []).append(object_id)
        self._bytes.pop(parent, None)

    def settle(self, txn_id: str, payout_id: str) -> None:
        """An automatic payout paid this balance transaction out (`balance_transactions?payout=`)."""
        self.settled_by[txn_id] = payout_id
        self.settled.setdefault(payout_id, []).append(txn_id)

    def related(self, relation: str, parent: str) -> list[str]:
        return self.relations.get(relation, {}).get(parent, [])

    def related_objects(self, relation: str, parent: str) -> list[dict]:
        objects = self.collections[RELATIONS[relation][0]].objects
        return [objects[i] for i in self.related(relation, parent)]

    def found_related(self, relation: str, parent: str) -> list[tuple[str, dict]]:
        """(collection, object) of the parent's related objects that still exist, in their order; they
        may span collections (external accounts: bank accounts and cards)."""
        return [found for found in (self.find(i) for i in self.related(relation, parent)) if found is not None]

    def unrelate(self, relation: str, parent: str, object_id: str) -> None:
        self.relations.get(relation, {}).get(parent, []).remove(object_id)
        self._bytes.pop(parent, None)

    def set_extra(self, object_id: str, **values: Any) -> None:
        self.extras.setdefault(object_id, {}).update(values)

    def extra(self, object_id: str, name: str, default: Any = None) -> Any:
        return self.extras.get(object_id, {}).get(name, default)

    def item_ids(self, resource: str, parent: str) -> list[str]:
        return self.sub_lists[resource].get(parent, [])

    def children(self, resource: str, parent: str) -> list[dict]:
        objects = self.collections[resource].objects
        return [objects[i] for i in self.item_ids(resource, parent)]

    def remove_items(self, resource: str, parent: str, ids: list[str] | None = None) -> list[dict]:
        """Take items out of a parent's sub-list (all of them when `ids` is None)."""
        with self.lock:
            current = self.sub_lists[resource].get(parent, [])
            going = list(current) if ids is None else ids
            leaving = set(going)
            self.sub_lists[resource][parent] = [i for i in current if i not in leaving]
            self._bytes.pop(parent, None)
            removed = [self.collections[resource].remove(i) for i in going]
            for i in going:
                self.where.pop(i, None)
                self.parent_of.pop(i, None)
            return removed

    def compact(self) -> None:
        """Keep every object as its JSON bytes (see `Objects`); done once the world is built."""
        with self.lock:
            for coll in self.collections.values():
                coll.objects.compact()
                coll.bulk = False
            self._bytes.clear()

    def patch(self, resource: str, object_id: str, **fields: Any) -> dict:
        """Change fields without an event (building, or a change Stripe announces elsewhere)."""
        with self.lock:
            objects = self.collections[resource].objects
            obj = objects[object_id]
            obj.update(fields)
            objects[object_id] = obj
            self.invalidate(object_id)
            return obj

    def get(self, resource: str, object_id: str) -> dict:
        return self.collections[resource].objects[object_id]

    def find(self, object_id: str) -> tuple[str, dict] | None:
        """(entry name, object) of any object the account holds, by id."""
        resource = self.where.get(object_id)
        if resource is None or object_id not in self.collections[resource].objects:
            return None
        return resource, self.collections[resource].objects[object_id]

    def invalidate(self, object_id: str) -> None:
        """Forget the rendered JSON of an object (and of the parent embedding it)."""
        if not self._bytes:  # nothing rendered yet (while building)
            return
        self._bytes.pop(object_id, None)
        resource = self.where.get(object_id)
        if resource in SUB_LIST_OF:
            for parent, items in self.sub_lists[resource].items():
                if object_id in items:
                    self._bytes.pop(parent, None)
                    break

    # --- reading, as the API renders it
    def render(self, resource: str, obj: dict) -> dict:
        """The object as Stripe returns it: truncated sub-lists embedded with `has_more`."""
        entry = BY_NAME[resource]
        if not entry.sub_lists:
            return obj
        obj = dict(obj)
        for sub in entry.sub_lists:
            items = self.item_ids(sub.item, obj["id"])
            objects = self.collections[sub.item].objects
            obj[sub.field] = {"object": "list", "data": [objects[i] for i in items[:EMBED_LIMIT]],
                              "has_more": len(items) > EMBED_LIMIT, "url": sub.path.format(id=obj["id"])}
        return obj

    def rendered(self, resource: str, object_id: str) -> dict:
        return orjson.loads(self.rendered_bytes(resource, object_id))

    def rendered_bytes(self, resource: str, object_id: str) -> bytes:
        entry = BY_NAME[resource]
        raw = self.collections[resource].objects.raw(object_id)
        if type(raw) is bytes:
            if not entry.sub_lists:
                return raw
            parts = [raw[:-1]]  # splice the embedded sub-lists into the stored bytes, no decoding
            for sub in entry.sub_lists:
                objects = self.collections[sub.item].objects
                items = self.item_ids(sub.item, object_id)
                first = b",".join(objects.raw_bytes(i) for i in items[:EMBED_LIMIT])
                parts.append(b',"' + sub.field.encode() + b'":{"object":"list","data":[' + first + b'],"has_more":'
                             + (b"true" if len(items) > EMBED_LIMIT else b"false") + b',"url":'
                             + orjson.dumps(sub.path.format(id=object_id)) + b"}")
            return b"".join(parts) + b"}"
        cached = self._bytes.get(object_id, {}).get(resource)
        if cached is None:  # a live object: created or changed since the world was built
            cached = dumps(self.render(resource, raw))
            self._bytes.setdefault(object_id, {})[resource] = cached
        return cached

    def page_bytes(self, resource: str, ids: list[str]) -> list[bytes]:
        """The JSON of each object, for a list page (the hot path of every crawl)."""
        if BY_NAME[resource].sub_lists:
            return [self.rendered_bytes(resource, i) for i in ids]
        stored = [dict.__getitem__(self.collections[resource].objects, i) for i in ids]
        return [raw if type(raw) is bytes else self.rendered_bytes(resource, i)
                for raw, i in zip(stored, ids, strict=True)]

    def objects(self, resource: str) -> list[dict]:
        """Every current object of a list as the API renders it, newest first (events: 30 days).

        Sub-list items come parent by parent in the parents' list order; credit note lines get a
        `credit_note` key naming their parent (Stripe's line has no such field) for comparisons.
        """
        with self.lock:
            if resource in SUB_LIST_OF:
                parent, _ = SUB_LIST_OF[resource]
                items = [(p, item) for p in self.ordered_ids(parent.name) for item in self.children(resource, p)]
                if resource == "credit_note_line_items":
                    return [dict(item, credit_note=p) for p, item in items]
                return [item for _, item in items]
            rendered = [orjson.loads(self.rendered_bytes(resource, i)) for i in self.ordered_ids(resource)]
            if resource == "events":
                horizon = self.clock() - EVENT_RETENTION
                rendered = [e for e in rendered if e["created"] >= horizon]
            return rendered

    def ordered_ids(self, resource: str) -> list[str]:
        return [k[2] for k in self.collections[resource].ordered()]

    # --- changes, each recorded the way Stripe records it: as an event
    def record(self, event_type: str, obj: dict | bytes, previous: dict | None = None, created: int | None = None,
               delivered: bool = True, account: str | None = None) -> str:
        """Add an event carrying `obj` (a snapshot: a dict, or the JSON bytes of one); returns its id.

        Events never change, so they are kept as the JSON bytes they are served as. `account`: the
        connected account a platform's Connect event is about (`account.application.deauthorized`).
        """
        event_id = self.ids.new("evt")
        created = created if created is not None else self.clock()
        data: dict[str, Any] = {"object": orjson.Fragment(obj if type(obj) is bytes else orjson.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        event: dict[str, Any] = {"id": event_id, "object": "event"}
        if self.connected or account:
            event["account"] = account or self.account_id
        event.update({"api_version": API_VERSION, "created": created, "data": data, "livemode": self.livemode,
                      "pending_webhooks": 0 if delivered else 1, "request": {"id": None, "idempotency_key": None},
                      "type": event_type})
        with self.lock:
            self.collections["events"].add(dumps(event), event_id, created)
            self.where[event_id] = "events"
            if not delivered:
                self.undelivered.add(event_id)
        return event_id

    def snapshot_bytes(self, resource: str, object_id: str) -> bytes:
        """The object's JSON as the API renders it now."""
        return orjson.dumps(self.render(resource, self.collections[resource].objects[object_id]))

    def snapshot(self, resource: str, object_id: str) -> dict:
        """A copy of the object as the API renders it now (live objects change in place while building)."""
        return orjson.loads(orjson.dumps(self.render(resource, self.collections[resource].objects[object_id])))

    def changed(self, resource: str, after: dict, before: dict, event: str | None = "updated",
                when: int | None = None) -> str | None:
        """Record the event of a change already made (`before` and `after` are snapshots)."""
        prefix = BY_NAME[resource].events
        if event is None or prefix is None:
            return None
        if event == "updated" and not BY_NAME[resource].announces_updates:
            return None
        if event == "updated":
            previous = {k: before.get(k) for k in after if before.get(k) != after.get(k)}
            previous.update({k: v for k, v in before.items() if k not in after})
            if not previous:
                return None
            return self.record(f"{prefix}.updated", after, previous, created=when)
        return self.record(f"{prefix}.{event}", after, created=when)

    def delete(self, resource: str, object_id: str, when: int | None = None) -> dict:
        """Remove an object from its list; `<prefix>.deleted` carries it as it was (without `deleted`)."""
        with self.lock:
            snapshot = self.snapshot(resource, object_id)
            self.collections[resource].remove(object_id)
            self.deleted[resource].add(object_id)
            self._bytes.pop(object_id, None)
            for sub in BY_NAME[resource].sub_lists:
                self.remove_items(sub.item, object_id)
            self.record(f"{BY_NAME[resource].events}.deleted", snapshot, created=when)
            return snapshot
