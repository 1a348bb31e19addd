"""The HTTP face of the emulator: Stripe's v1 read API and Connect OAuth, with limits and faults.

Routes come from the object table (`objects.OBJECTS`): every entry's list path, single-object
path and sub-list paging paths. A list applies each documented filter the entry declares, in
Stripe's order (newest first, the later change first within a second), with its cursors and
`created` windows; sub-lists page in their parent's order.
"""

from __future__ import annotations

import random
import re
import secrets
import socket
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlparse

import orjson

from .errors import (
    ApiError,
    account_invalid,
    exclusive,
    lock_timeout,
    missing_parameter,
    not_a_platform,
    not_the_controller,
    rate_limited,
    resource_missing,
    server_error,
    unknown_parameter,
    unrecognized_url,
)
from .expand import check_paths, expand
from .filters import parse_int, parse_range
from .objects import (
    ACCOUNT_RELATIONS,
    BY_NAME,
    CONNECTED_ACCOUNTS,
    OBJECTS,
    RELATIONS,
    SINGLETONS,
    SUB_LIST_OF,
    EmulatedObject,
)
from .store import EVENT_RETENTION, Store
from .versions import API_VERSION, SUPPORTED, render

if TYPE_CHECKING:
    from . import Emulator

COMMON_PARAMS = {"limit", "starting_after", "ending_before", "expand"}
_BRACKET = re.compile(r"^([a-z_]+)\[([a-z_]*|\d+)\]$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")

# Stripe's errors for a failing request, by kind of fault injected ("reset", "slow", "429" are not bodies).
FAULT_ERRORS = {"500": server_error, "lock_timeout": lock_timeout}


def _routes() -> list[tuple[tuple[str, ...], str, str]]:
    """(path segments with "{}" placeholders, kind, entry or relation name) for every served path."""
    routes = [(("v1", "account"), "account", ""), (("v1", "balance"), "balance", ""),
              (("v1", "accounts"), "connected_accounts", ""), (("v1", "accounts", "{}"), "connected_account", "")]
    for entry in OBJECTS:
        if entry.path:
            routes.append((tuple(entry.path.strip("/").split("/")), "list", entry.name))
        if entry.retrieve:
            segments = tuple("{}" if s.startswith("{") else s for s in entry.retrieve.strip("/").split("/"))
            routes.append((segments, "retrieve", entry.name))
        for sub in entry.sub_lists:
            path = sub.path.split("?")[0]
            if "{id}" in path:
                routes.append((tuple("{}" if s == "{id}" else s for s in path.strip("/").split("/")), "sub_list",
                               sub.item))
    for relation, (_, url) in RELATIONS.items():
        if "?" not in url:
            routes.append((tuple("{}" if s == "{id}" else s for s in url.strip("/").split("/")), "relation",
                           relation))
    return routes


ROUTES = _routes()
_MATCHED: dict[str, Any] = {}  # path -> Api.match's answer
_UNKNOWN = object()


def mask(key: str) -> str:
    """Stripe's way of echoing a key: its prefix, stars, the last four characters."""
    prefix = key[: key.find("_", 3) + 1] if key.count("_") >= 2 else ""
    return f"{prefix}{'*' * max(4, len(key) - len(prefix) - 4)}{key[-4:]}"


@dataclass
class RateLimits:
    """Token buckets per account: overall and per endpoint (method + route template)."""

    global_rps: float = 100.0
    endpoint_rps: float = 25.0

    @classmethod
    def live(cls) -> RateLimits:
        return cls(100.0, 25.0)

    @classmethod
    def test(cls) -> RateLimits:
        return cls(25.0, 25.0)


@dataclass
class FaultConfig:
    """Injected failures: at random (seeded) rates, or on given request numbers (1-based)."""

    error_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 2000.0
    # request number -> "500" | "reset" | "slow" | "429" | "lock_timeout"
    schedule: dict[int, str] = field(default_factory=dict)
    seed: int = 0


class _Bucket:
    def __init__(self, rate: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.stamp = self.capacity, time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: Counter[str] = Counter()
            self.by_account: dict[str, Counter[str]] = {}  # account read (Stripe-Account or the key's) -> endpoint
            self.by_status: Counter[int] = Counter()
            self.rate_limited = 0
            self.faults_injected = 0
            self.total = 0
            # requests per endpoint per whole second since the reset: shows where a run idles
            self.started = time.monotonic()
            self.timeline: dict[str, Counter[int]] = {}

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "requests_total": self.total,
                "requests": dict(self.requests),
                "by_account": {account: dict(counts) for account, counts in self.by_account.items()},
                "by_status": dict(self.by_status),
                "rate_limited": self.rate_limited,
                "faults_injected": self.faults_injected,
                "timeline": {endpoint: dict(seconds) for endpoint, seconds in self.timeline.items()},
            }


def parse_params(query: str) -> dict[str, Any]:
    """Stripe's form encoding: `created[gte]=1`, `expand[0]=x` / `expand[]=x`, `types[]=...`."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        match = _BRACKET.match(key)
        if not match:
            params[key] = value
        elif match.group(2) == "" or match.group(2).isdigit():
            params.setdefault(match.group(1), []).append(value)
        else:
            params.setdefault(match.group(1), {})[match.group(2)] = value
    return params


@dataclass
class Request:
    """What the handler of one request needs: the account's store, the key, the version, the path's ids."""

    store: Store
    key: dict
    version: str
    args: list[str]


class Api:
    """Routes a request to the emulator's stores; raises ApiError for anything Stripe would refuse."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    # --- auth and version
    def authenticate(self, headers: Any) -> tuple[Store, dict]:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise ApiError(401, "You did not provide an API key. You need to provide your API key in the "
                                "Authorization header, using Bearer auth "
                                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').", logged=False)
        key = auth[7:].strip()
        info = self.emu.keys.get(key)
        if info is None or info["status"] == "revoked":
            raise ApiError(401, f"Invalid API Key provided: {mask(key)}", logged=False)
        if info["status"] == "expired":
            raise ApiError(401, f"Expired API Key provided: {mask(key)}", code="api_key_expired", logged=False)
        store = self.emu.stores[info["account"]]
        target = headers.get("Stripe-Account")
        if target and target != info["account"]:
            allowed = info["kind"] in ("secret", "restricted") and info["account"] == self.emu.account_id
            if not allowed or not self.emu.is_connected(target):
                raise account_invalid(mask(key), target)
            store = self.emu.stores[target]
        return store, dict(info, key=key)

    def version(self, headers: Any) -> str:
        """The version to render: the request's `Stripe-Version`, or the account's default."""
        asked = (headers.get("Stripe-Version") or "").strip()
        if not asked:
            return self.emu.default_api_version
        if asked not in SUPPORTED:
            raise ApiError(400, f"Invalid Stripe API version: {asked}")
        return asked

    def require(self, key_info: dict, store: Store, permission: str | None) -> None:
        if key_info["kind"] != "restricted" or permission is None:
            return
        resource = permission.removeprefix("rak_").removesuffix("_read")
        names = {resource, resource + "s", _PERMISSION_NAMES.get(permission, "")}
        if not any(key_info["permissions"].get(name, "none") in ("read", "write") for name in names):
            raise ApiError(403, f"The provided key '{mask(key_info['key'])}' does not have the required permissions "
                                f"for this endpoint on account '{store.account_id}'. Having the "
                                f"'{permission}' permission would allow this request to continue.")

    # --- routes
    @staticmethod
    def match(path: str) -> tuple[str, str, list[str]] | None:
        """(kind, entry or relation name, path ids) of a served path (remembered: a crawl asks for few)."""
        found = _MATCHED.get(path, _UNKNOWN)
        if found is not _UNKNOWN:
            return found
        parts = tuple(path.strip("/").split("/"))
        for segments, kind, name in ROUTES:
            if len(segments) == len(parts) and all(s == "{}" or s == p for s, p in zip(segments, parts, strict=True)):
                found = (kind, name, [p for s, p in zip(segments, parts, strict=True) if s == "{}"])
                break
        else:
            found = None
        if len(_MATCHED) > 50_000:  # ids make paths many; keep the table bounded
            _MATCHED.clear()
        _MATCHED[path] = found
        return found

    def route(self, path: str) -> tuple[str, list[str]]:
        """(endpoint template, path ids) for counting, limiting and dispatch."""
        parts = path.strip("/").split("/")
        matched = self.match(path)
        if matched:
            template = "/".join("{id}" if p in matched[2] else p for p in parts)
            return f"GET /{template}", matched[2]
        if parts[:1] == ["v1"] and len(parts) >= 2:  # the old shapes, for unknown paths
            return f"GET /{'/'.join(parts[:2] + ['{id}'] * (len(parts) > 2) + parts[3:4])}", parts[2:3]
        return f"GET {path}", []

    def get(self, path: str, params: dict, headers: Any) -> bytes:
        store, key_info = self.authenticate(headers)
        matched = self.match(path)
        if matched is None:
            raise unrecognized_url("GET", path)
        version = self.version(headers)
        kind, name, args = matched
        request = Request(store, key_info, version, args)
        if kind == "account":
            self.require(key_info, store, SINGLETONS["account"])
            return self.single(request, self.emu.account_object(store), params)
        if kind == "balance":
            self.require(key_info, store, SINGLETONS["balance"])
            return self.single(request, self.emu.balance_object(store), params)
        if kind == "connected_accounts":
            self.require(key_info, store, CONNECTED_ACCOUNTS)
            return self.connected_accounts(request, params)
        if kind == "connected_account":
            self.require(key_info, store, CONNECTED_ACCOUNTS)
            return self.single(request, self.emu.account_object(self.account_store(request, args[0])), params)
        if kind == "relation" and name in ACCOUNT_RELATIONS:
            return self.account_relation(request, name, params)
        if kind == "relation":
            return self.relation(request, name, params)
        entry = BY_NAME[name]
        self.require(key_info, store, entry.permission)
        if kind == "list":
            if entry.name in SUB_LIST_OF:  # /v1/subscription_items?subscription=...
                return self.sub_list(request, entry, params)
            return self.list(request, entry, params, path)
        if kind == "sub_list":
            return self.sub_list(request, entry, params)
        return self.retrieve(request, entry, params)

    def account_store(self, request: Request, target: str) -> Store:
        """The store of an account named in the path (`/v1/accounts/{id}...`): the key's own, or one
        connected to the platform the key belongs to."""
        store = request.store
        if target == store.account_id:
            return store
        if store.account_id != self.emu.account_id:
            raise not_a_platform()
        if target in self.emu.deauthorized:
            raise account_invalid(mask(request.key["key"]), target)
        if target not in self.emu.stores:
            raise resource_missing("account", target)
        return self.emu.stores[target]

    # --- single objects
    def single(self, request: Request, obj: dict, params: dict) -> bytes:
        self.check_params(params, {"expand"})
        obj = render(request.store, obj, request.version)
        if params.get("expand"):
            check_paths(params["expand"])
            obj = expand(request.store, obj, params["expand"], self.resolver(request), request.version)
        return orjson.dumps(obj)

    def retrieve(self, request: Request, entry: EmulatedObject, params: dict) -> bytes:
        self.check_params(params, {"expand"})
        store, object_id = request.store, request.args[-1]
        objects = store.collections[entry.name].objects
        # /v1/transfers/{transfer}/reversals/{id}: the item must be that parent's
        in_parent = len(request.args) < 2 or object_id in store.item_ids(entry.name, request.args[0])
        if object_id not in objects or not in_parent:
            raise resource_missing(entry.object, object_id)
        if not params.get("expand") and request.version == API_VERSION:
            return store.rendered_bytes(entry.name, object_id)
        return self.single(request, store.rendered(entry.name, object_id), params)

    def resolver(self, request: Request) -> Any:
        """id -> the object it names in this account (or a connected account), in the request's version."""
        store = request.store

        def resolve(object_id: str) -> dict | None:
            if object_id in self.emu.stores:
                return render(store, self.emu.account_object(self.emu.stores[object_id]), request.version)
            found = store.find(object_id)
            if found is None:
                return None
            return render(store, store.rendered(found[0], object_id), request.version)
        return resolve

    def check_params(self, params: dict, accepted: set[str]) -> None:
        for name in params:
            if name not in accepted:
                raise unknown_parameter(name)
        if "expand" in params and not isinstance(params["expand"], list):
            raise ApiError(400, "Invalid array", param="expand")

    def connected_accounts(self, request: Request, params: dict) -> bytes:
        """`/v1/accounts`: the platform's connected accounts, newest first. Stripe: "If you're not a
        platform, the list is empty" (also for a platform key acting as a connected account)."""
        self.check_params(params, COMMON_PARAMS | {"created"})
        limit = self.page_bounds(params)
        expand_paths = self.list_expand(params)
        gte, lt = parse_range(params["created"], "created") if "created" in params else (None, None)
        platform = request.store.account_id == self.emu.account_id
        accounts = self.emu.listed_accounts() if platform else []
        ids = [account for account, created in accounts
               if (gte is None or created >= gte) and (lt is None or created < lt)]
        page, has_more = self.page_ids(ids, params, limit, "account")
        objects = [render(request.store, self.emu.account_object(self.emu.stores[i]), request.version) for i in page]
        if expand_paths:
            resolve = self.resolver(request)
            objects = [expand(request.store, obj, expand_paths, resolve, request.version) for obj in objects]
        return _list_bytes([orjson.dumps(obj) for obj in objects], has_more, "/v1/accounts")

    # --- lists
    def page_bounds(self, params: dict) -> int:
        limit = parse_int(params.get("limit", 10), "limit")
        # Stripe's wording for an out-of-range integer parameter
        if limit < 1:
            raise ApiError(400, "This value must be greater than or equal to 1.", param="limit")
        if limit > 100:
            raise ApiError(400, "This value must be less than or equal to 100.", param="limit")
        if "starting_after" in params and "ending_before" in params:
            raise exclusive("ending_before", "starting_after")
        return limit

    def list_expand(self, params: dict) -> list[str]:
        expand_paths = params.get("expand") or []
        for path in expand_paths:
            if not path.startswith("data."):
                raise ApiError(400, f"This property cannot be expanded ({path}). You may want to try expanding "
                                    f"'data.{path}' instead.", param="expand")
        check_paths(expand_paths)
        return [p[len("data."):] for p in expand_paths]

    def list(self, request: Request, entry: EmulatedObject, params: dict, url: str) -> bytes:
        store = request.store
        accepted = COMMON_PARAMS | set(entry.filters) | ({"created"} if entry.created_filter else set())
        self.check_params(params, accepted)
        for group in entry.rules.exclusive:
            if all(name in params for name in group):
                raise exclusive(*group)
        for name in entry.rules.required:
            if name not in params:
                raise missing_parameter(name)
        limit = self.page_bounds(params)
        expand_paths = self.list_expand(params)
        for check in entry.rules.checks:
            check(store, params)
        wanted = {name: entry.filters[name].parse(params[name], name) for name in entry.filters if name in params}
        hidden = [test for test, lifted_by in entry.rules.hidden if not any(p in params for p in lifted_by)]
        gte, lt = parse_range(params["created"], "created") if "created" in params else (None, None)
        with store.lock:
            coll = store.collections[entry.name]
            if entry.name == "events":
                gte = max(gte or 0, self.emu.now() - EVENT_RETENTION)
            start, end = coll.window(gte, lt)
            keys = coll.ordered()
            self.check_cursors(store, entry, params)
            if wanted or hidden:
                indexed = self.candidates(store, coll, entry, wanted, gte, lt)
                kept = self.filter(store, entry, keys[start:end] if indexed is None else indexed, wanted, hidden,
                                   params)
                ids, has_more = self.cursor(store, entry, kept, params, limit)
            else:  # the common case, O(log n) per page however long the list
                ids, has_more = self.bisect_page(store, entry, keys, start, end, params, limit)
            body = self.page(request, entry.name, ids, expand_paths)
        return _list_bytes(body, has_more, url)

    def page(self, request: Request, resource: str, ids: list[str], expand_paths: list[str]) -> list[bytes]:
        store = request.store
        if not expand_paths and request.version == API_VERSION:
            return store.page_bytes(resource, ids)
        resolve = self.resolver(request)
        objects = [render(store, store.rendered(resource, i), request.version) for i in ids]
        if expand_paths:
            objects = [expand(store, obj, expand_paths, resolve, request.version) for obj in objects]
        return [orjson.dumps(obj) for obj in objects]

    def bisect_page(self, store: Store, entry: EmulatedObject, keys: list, start: int, end: int, params: dict,
                    limit: int) -> tuple[list[str], bool]:
        position = store.collections[entry.name].position
        if "ending_before" in params:
            end = min(end, bisect_left(keys, position[params["ending_before"]]))
            first = max(start, end - limit)
            return [k[-1] for k in keys[first:end]], first > start
        if "starting_after" in params:
            start = max(start, bisect_right(keys, position[params["starting_after"]]))
        return [k[-1] for k in keys[start:min(end, start + limit)]], end - start > limit

    def candidates(self, store: Store, coll: Any, entry: EmulatedObject, wanted: dict, gte: int | None,
                   lt: int | None) -> list[tuple[int, int, str]] | None:
        """The keys an indexed filter allows in the `created` window, in list order (None: no index):
        a filter read per parent (`?payout=`) would otherwise decode the whole list each request."""
        for name, value in wanted.items():
            index = getattr(entry.filters[name], "index", None)
            if index is not None:
                keys = (coll.position[i] for i in index(store, value) if i in coll.position)
                return sorted(k for k in keys if (gte is None or -k[0] >= gte) and (lt is None or -k[0] < lt))
        return None

    def filter(self, store: Store, entry: EmulatedObject, keys: list[tuple[int, int, str]], wanted: dict,
               hidden: list, params: dict) -> list[tuple[int, int, str]]:
        """The list keys whose objects pass the request's filters (objects decoded once each)."""
        objects = store.collections[entry.name].objects
        filters = [(entry.filters[name], value) for name, value in wanted.items()]
        kept = []
        for key in keys:
            obj = objects[key[2]]
            if any(test(store, obj, params) for test in hidden):
                continue
            if all(f.keeps(store, obj, value) for f, value in filters):
                kept.append(key)
        return kept

    def cursor(self, store: Store, entry: EmulatedObject, keys: list[tuple[int, int, str]], params: dict,
               limit: int) -> tuple[list[str], bool]:
        for name in ("starting_after", "ending_before"):
            if name in params:
                anchor = store.collections[entry.name].position[params[name]]
                return _slice(keys, name, anchor, limit)
        return [k[-1] for k in keys[:limit]], len(keys) > limit

    def check_cursors(self, store: Store, entry: EmulatedObject, params: dict) -> None:
        # A cursor must name an object of this list; Stripe answers resource_missing naming the parameter.
        for name in ("starting_after", "ending_before"):
            if name in params and params[name] not in store.collections[entry.name].position:
                raise resource_missing(entry.object, params[name], param=name, status=400)

    # --- sub-lists: a parent's items in its order
    def sub_list(self, request: Request, entry: EmulatedObject, params: dict) -> bytes:
        store = request.store
        parent_entry, sub = SUB_LIST_OF[entry.name]
        by_query = "?" in sub.path  # /v1/subscription_items?subscription={id}
        param = sub.path.split("?")[1].split("=")[0] if by_query else None
        self.check_params(params, COMMON_PARAMS | ({param} if param else set()))
        if param and param not in params:
            raise missing_parameter(param)
        parent_id = params[param] if param else request.args[0]
        limit = self.page_bounds(params)
        expand_paths = self.list_expand(params)
        if parent_id not in store.collections[parent_entry.name].objects:
            raise resource_missing(parent_entry.object, parent_id, param=param or "id",
                                   status=400 if param else 404)
        with store.lock:
            ids = list(store.item_ids(entry.name, parent_id))
            page, has_more = self.page_ids(ids, params, limit, entry.object)
            body = self.page(request, entry.name, page, expand_paths)
        return _list_bytes(body, has_more, sub.path.split("?")[0].format(id=parent_id))

    def relation(self, request: Request, relation: str, params: dict) -> bytes:
        """An includable list's own endpoint (a charge's refunds, a customer's payment methods)."""
        store = request.store
        resource, url = RELATIONS[relation]
        entry = BY_NAME[resource]
        self.require(request.key, store, entry.permission)
        self.check_params(params, COMMON_PARAMS | set(entry.filters))
        limit = self.page_bounds(params)
        expand_paths = self.list_expand(params)
        wanted = {name: entry.filters[name].parse(params[name], name) for name in entry.filters if name in params}
        parent = request.args[0]
        if store.find(parent) is None:
            raise resource_missing(_PARENT_OBJECT[relation], parent)
        with store.lock:
            ids = list(store.related(relation, parent))
            if wanted:
                objects = store.collections[resource].objects
                ids = [i for i in ids if all(entry.filters[name].keeps(store, objects[i], value)
                                             for name, value in wanted.items())]
            page, has_more = self.page_ids(ids, params, limit, BY_NAME[resource].object)
            body = self.page(request, resource, page, expand_paths)
        return _list_bytes(body, has_more, url.format(id=parent))

    def account_relation(self, request: Request, relation: str, params: dict) -> bytes:
        """A connected account's persons or external accounts, as its platform reads them
        (`/v1/accounts/{id}/persons`, `/v1/accounts/{id}/external_accounts`): its own objects, in their order."""
        resource, url = RELATIONS[relation]
        entry = BY_NAME[resource]
        self.require(request.key, request.store, entry.permission)
        self.check_params(params, COMMON_PARAMS | set(entry.filters))
        limit = self.page_bounds(params)
        expand_paths = self.list_expand(params)
        wanted = {name: entry.filters[name].parse(params[name], name) for name in entry.filters if name in params}
        target = request.args[0]
        store = self.account_store(request, target)
        if target in self.emu.oauth_connected and store is not request.store:
            raise not_the_controller(target)
        with store.lock:
            current = [obj for _, obj in store.found_related(relation, target)
                       if all(entry.filters[name].keeps(store, obj, value) for name, value in wanted.items())]
            if entry.created_field in (current[0] if current else {}):  # persons: newest first, as Stripe lists them
                current.sort(key=lambda obj: -obj[entry.created_field])
            ids = [obj["id"] for obj in current]
            page, has_more = self.page_ids(ids, params, limit, entry.object)
            objects = [render(store, store.rendered(store.where[i], i), request.version) for i in page]
        if expand_paths:
            resolve = self.resolver(Request(store, request.key, request.version, request.args))
            objects = [expand(store, obj, expand_paths, resolve, request.version) for obj in objects]
        return _list_bytes([orjson.dumps(obj) for obj in objects], has_more, url.format(id=target))

    @staticmethod
    def page_ids(ids: list[str], params: dict, limit: int, object_name: str) -> tuple[list[str], bool]:
        position = {item: n for n, item in enumerate(ids)}
        keys = [(n, item) for n, item in enumerate(ids)]
        for name in ("starting_after", "ending_before"):
            if name in params:
                if params[name] not in position:
                    raise resource_missing(object_name.replace("_", " "), params[name], param=name, status=400)
                return _slice(keys, name, (position[params[name]], params[name]), limit)
        return ids[:limit], len(ids) > limit

    def unknown(self, path: str) -> ApiError:
        return unrecognized_url("GET", path)


# The object a relation's parent is (`No such checkout.session: ...`), from the list its url starts with.
_PARENT_OBJECT = {relation: next((e.object for e in OBJECTS if e.path == url.split("/{id}")[0]), url.split("/")[2][:-1])
                  for relation, (_, url) in RELATIONS.items()}

# Restricted-key permission names as keys carry them (the emulator's `permissions={...}` uses list names).
_PERMISSION_NAMES = {"rak_balance_transaction_source_read": "balance_transactions",
                     "rak_invoice_read": "invoices", "rak_subscription_read": "subscriptions",
                     "rak_credit_note_read": "credit_notes", "rak_transfer_read": "transfers",
                     "rak_account_read": "account", "rak_balance_read": "balance",
                     "rak_payment_method_read": "payment_methods", "rak_customer_read": "customers"}


def _list_bytes(items: list[bytes], has_more: bool, url: str) -> bytes:
    """The page's JSON in one copy of its objects' bytes (pages are the bulk of every crawl)."""
    head = b'{"object":"list","data":['
    tail = b'],"has_more":' + (b"true" if has_more else b"false") + b',"url":' + orjson.dumps(url) + b"}"
    if not items:
        return head + tail
    return b",".join([head + items[0], *items[1:-1], items[-1] + tail] if len(items) > 1 else
                     [head + items[0] + tail])


def _slice(keys: list[tuple], cursor: str, anchor: tuple, limit: int) -> tuple[list[str], bool]:
    """One page of ids from sorted (key, id) pairs after/before the anchor key, and whether more follow."""
    if cursor == "starting_after":
        start = bisect_right(keys, anchor)
        return [k[-1] for k in keys[start:start + limit]], len(keys) - start > limit
    end = bisect_left(keys, anchor)
    first = max(0, end - limit)
    return [k[-1] for k in keys[first:end]], first > 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and benchmarks read stdout
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        # `send_response` writes the Date header; it must tell the emulator's clock, which tests move
        return formatdate(self.server.emu.now() if timestamp is None else timestamp, usegmt=True)

    def do_GET(self) -> None:
        self.handle_request("GET")

    def do_POST(self) -> None:
        self.handle_request("POST")

    def handle_request(self, method: str) -> None:
        emu = self.server.emu
        url = urlparse(self.path)
        body = b""
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        if url.path.startswith("/_emulator/"):
            return self.emulator_control(url.path)
        endpoint = emu.api.route(url.path)[0] if method == "GET" else f"POST {url.path}"
        self.request_id = "req_" + secrets.token_hex(7)
        asked = (self.headers.get("Stripe-Version") or "").strip()
        self.version = asked if asked in SUPPORTED else emu.default_api_version  # what the response says it speaks
        emu.count_account(endpoint, emu.account_asked(self.headers))
        number = emu.count_request(endpoint)
        fault = emu.fault_for(number)
        latency = emu.latency()
        if fault == "slow":
            latency += emu.faults.slow_ms / 1000.0
        if latency:
            time.sleep(latency)
        if fault == "reset":
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            self.connection.close()
            return
        try:
            if fault in FAULT_ERRORS:
                raise FAULT_ERRORS[fault]()
            refused = None
            if method == "GET" and not url.path.startswith("/oauth"):
                refused = emu.admit(self.headers, endpoint)
            if refused or fault == "429":
                emu.stats_note_429()
                raise rate_limited(refused or "global-rate")
            if emu.apps.serves(method, url.path):  # Stripe Apps OAuth and the Install API (apps.py)
                return self.respond(*emu.apps.answer(method, url, body, self.headers))
            if url.path.startswith("/oauth/"):
                return self.oauth(method, url, body)
            if method != "GET":
                raise ApiError(405, "This emulator only serves Stripe's read API", type="invalid_request_error")
            payload = emu.api.get(url.path, parse_params(url.query), self.headers)
            self.respond(200, payload)
        except Exception as exc:  # noqa: BLE001 - a bug in the emulator answers like Stripe's own failures
            if not isinstance(exc, ApiError):
                exc = server_error()
            info = emu.keys.get(self.headers.get("Authorization", "")[7:].strip(), {})
            account = self.headers.get("Stripe-Account") or info.get("account")
            body = exc.body(account, self.request_id, info.get("livemode", False))
            self.respond(exc.status, orjson.dumps(body), exc.headers)

    def oauth(self, method: str, url: Any, body: bytes) -> None:
        emu = self.server.emu
        if url.path == "/oauth/authorize" and method == "GET":
            location = emu.oauth.authorize(parse_params(url.query))
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        form = parse_params(body.decode())
        auth = self.headers.get("Authorization", "")
        secret = form.get("client_secret") or (auth[7:].strip() if auth.startswith("Bearer ") else None)
        if url.path == "/oauth/token" and method == "POST":
            status, payload = emu.oauth.token(form, secret)
        elif url.path == "/oauth/deauthorize" and method == "POST":
            status, payload = emu.oauth.deauthorize(form, secret)
        else:
            raise unrecognized_url(method, url.path)
        self.respond(status, orjson.dumps(payload))

    def emulator_control(self, path: str) -> None:
        emu = self.server.emu
        if path == "/_emulator/stats":
            return self.respond(200, orjson.dumps(emu.stats(), option=orjson.OPT_NON_STR_KEYS))
        if path == "/_emulator/stats/reset":
            emu.reset_stats()
            return self.respond(200, b"{}")
        self.respond(404, b'{"error":{"message":"unknown emulator control"}}')

    def respond(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        emu = self.server.emu
        emu.stats_note_status(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", getattr(self, "request_id", None) or "req_" + secrets.token_hex(7))
        self.send_header("Stripe-Version", getattr(self, "version", API_VERSION))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._headers_buffer += [b"\r\n", payload]  # type: ignore[attr-defined]
        self.flush_headers()  # headers and body in one send, the body copied once


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, emu: Emulator, host: str, port: int) -> None:
        self.emu = emu
        super().__init__((host, port), Handler)


class OAuth:
    """Connect OAuth: consent, single-use codes (5 minutes), tokens, refresh, deauthorization."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.lock = threading.Lock()

    def authorize(self, params: dict) -> str:
        redirect = params.get("redirect_uri", "")
        state = params.get("state")
        extra = {"state": state} if state is not None else {}
        if params.get("client_id") != self.emu.client_id or params.get("response_type") != "code":
            return _redirect(redirect, error="invalid_request", error_description="Invalid client_id or "
                             "response_type", **extra)
        if (params.get("emulator_consent") or self.emu.oauth_consent) == "deny":
            return _redirect(redirect, error="access_denied", error_description="The user denied your request",
                             **extra)
        scope = params.get("scope", "read_only")
        account = params.get("stripe_user_id") or self.emu.connected_account_ids[0]
        code = "ac_" + secrets.token_urlsafe(18)
        with self.lock:
            self.codes[code] = {"account": account, "scope": scope, "expires": self.emu.now() + 300,
                                "used": False, "tokens": []}
        return _redirect(redirect, code=code, scope=scope, **extra)

    def _client_ok(self, secret: str | None) -> bool:
        info = self.emu.keys.get(secret or "")
        return bool(info and info["account"] == self.emu.account_id and info["kind"] == "secret"
                    and info["status"] == "active")

    def token(self, form: dict, secret: str | None) -> tuple[int, dict]:
        if not self._client_ok(secret):
            return 401, {"error": "invalid_client", "error_description": "No such api key: " + mask(secret or "none")}
        grant = form.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                code = self.codes.get(form.get("code", ""))
                if code is None:
                    return 400, {"error": "invalid_grant",
                                 "error_description": f"Authorization code does not exist: {form.get('code')}"}
                if code["used"]:
                    for token in code["tokens"]:  # Stripe revokes what a replayed code issued
                        self.emu.revoke_key(token)
                    return 400, {"error": "invalid_grant", "error_description": "This authorization code has already "
                                 "been used. All tokens issued with this code have been revoked."}
                if self.emu.now() > code["expires"]:
                    return 400, {"error": "invalid_grant", "error_description": "This authorization code has expired."}
                code["used"] = True
                refresh = "rt_" + secrets.token_urlsafe(24)
                self.refresh_tokens[refresh] = {"account": code["account"], "scope": code["scope"]}
                payload = self._issue(code["account"], code["scope"], refresh)
                code["tokens"].append(payload["access_token"])
                return 200, payload
            if grant == "refresh_token":
                grant_info = self.refresh_tokens.get(form.get("refresh_token", ""))
                if grant_info is None:
                    return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token: "
                                 + mask(form.get("refresh_token", "none"))}
                return 200, self._issue(grant_info["account"], grant_info["scope"], form["refresh_token"])
        return 400, {"error": "unsupported_grant_type", "error_description": f"Unsupported grant type: {grant}"}

    def _issue(self, account: str, scope: str, refresh: str) -> dict:
        access = self.emu.add_key(kind="oauth", account=account)
        return {"access_token": access, "livemode": False, "refresh_token": refresh, "token_type": "bearer",
                "stripe_publishable_key": "pk_test_" + secrets.token_hex(12), "stripe_user_id": account,
                "scope": scope}

    def deauthorize(self, form: dict, secret: str | None) -> tuple[int, dict]:
        if not self._client_ok(secret) or form.get("client_id") != self.emu.client_id:
            return 401, {"error": "invalid_client", "error_description": "No such application: "
                         + str(form.get("client_id"))}
        account = form.get("stripe_user_id")
        if account not in self.emu.connected_account_ids:
            return 400, {"error": "invalid_request", "error_description": f"No such account: {account}"}
        self.emu.deauthorize(account)
        return 200, {"stripe_user_id": account}

    def revoke_tokens(self, account: str) -> None:
        """The account's OAuth access and refresh tokens stop working (it disconnected the platform)."""
        with self.lock:
            for info in list(self.emu.keys.values()):
                if info["account"] == account and info["kind"] == "oauth":
                    info["status"] = "revoked"
            for token, info in list(self.refresh_tokens.items()):
                if info["account"] == account:
                    del self.refresh_tokens[token]


def _redirect(uri: str, **params: Any) -> str:
    separator = "&" if "?" in uri else "?"
    return uri + separator + urlencode({k: v for k, v in params.items() if v is not None})


def jitter(rng: random.Random, fixed_ms: float, jitter_ms: float) -> float:
    return (fixed_ms + (rng.uniform(0, jitter_ms) if jitter_ms else 0.0)) / 1000.0
