"""The HTTP face of the emulator: Stripe's v1 read API and Connect OAuth, with limits and faults."""

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

from .store import EVENT_RETENTION, Store
from .world import API_VERSION

if TYPE_CHECKING:
    from . import Emulator

COMMON_PARAMS = {"limit", "starting_after", "ending_before", "expand"}
# List endpoint -> (its store list, parameters it accepts beyond the common ones).
LISTS: dict[str, tuple[str, set[str]]] = {
    "charges": ("charges", {"created", "customer", "payment_intent", "transfer_group"}),
    "payment_intents": ("payment_intents", {"created", "customer"}),
    "refunds": ("refunds", {"created", "charge", "payment_intent"}),
    "disputes": ("disputes", {"created", "charge", "payment_intent"}),
    "balance_transactions": ("balance_transactions", {"created", "payout", "source", "type", "currency"}),
    "payouts": ("payouts", {"created", "arrival_date", "destination", "status"}),
    "transfers": ("transfers", {"created", "destination", "transfer_group"}),
    "invoices": ("invoices", {"created", "customer", "status", "subscription", "collection_method", "due_date"}),
    "invoiceitems": ("invoiceitems", {"created", "customer", "invoice", "pending"}),
    "credit_notes": ("credit_notes", {"created", "customer", "invoice"}),
    "customers": ("customers", {"created", "email", "test_clock"}),
    "subscriptions": ("subscriptions", {"created", "customer", "price", "status", "collection_method"}),
    "subscription_items": ("subscription_items", {"subscription"}),
    "products": ("products", {"created", "active", "ids", "shippable", "url"}),
    "prices": ("prices", {"created", "active", "currency", "product", "type", "lookup_keys"}),
    "plans": ("plans", {"created", "active", "product"}),
    "coupons": ("coupons", {"created"}),
    "promotion_codes": ("promotion_codes", {"created", "active", "code", "coupon", "customer"}),
    "tax_rates": ("tax_rates", {"created", "active", "inclusive"}),
    "events": ("events", {"created", "type", "types", "delivery_success"}),
}
# Restricted-key permission guarding each list (Stripe's `rak_<resource>_read` names).
PERMISSIONS = {
    "charges": "rak_charge_read", "payment_intents": "rak_payment_intent_read", "refunds": "rak_refund_read",
    "disputes": "rak_dispute_read", "balance_transactions": "rak_balance_transaction_source_read",
    "payouts": "rak_payout_read", "transfers": "rak_transfer_read", "invoices": "rak_invoice_read",
    "invoiceitems": "rak_invoice_read", "credit_notes": "rak_credit_note_read", "customers": "rak_customer_read",
    "subscriptions": "rak_subscription_read", "subscription_items": "rak_subscription_read",
    "products": "rak_product_read", "prices": "rak_price_read", "plans": "rak_plan_read",
    "coupons": "rak_coupon_read", "promotion_codes": "rak_promotion_code_read", "tax_rates": "rak_tax_rate_read",
    "events": "rak_event_read", "account": "rak_account_read", "balance": "rak_balance_read",
}
OBJECT_NAMES = {
    "charges": "charge", "payment_intents": "payment_intent", "refunds": "refund", "disputes": "dispute",
    "balance_transactions": "balance_transaction", "payouts": "payout", "transfers": "transfer",
    "invoices": "invoice", "invoiceitems": "invoiceitem", "credit_notes": "credit_note", "customers": "customer",
    "subscriptions": "subscription", "subscription_items": "subscription_item", "products": "product",
    "prices": "price", "plans": "plan", "coupons": "coupon", "promotion_codes": "promotion_code",
    "tax_rates": "tax_rate", "events": "event",
}
_BRACKET = re.compile(r"^([a-z_]+)\[([a-z_]*|\d+)\]$")


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        body: dict[str, Any] = {"message": message, "type": type}
        if code:
            body["code"] = code
        if param:
            body["param"] = param
        self.status, self.body, self.headers = status, {"error": body}, headers or {}


def rate_limited(reason: str) -> ApiError:
    return ApiError(429, "Request rate limit exceeded. Learn more about rate limits here "
                         "https://stripe.com/docs/rate-limits.", code="rate_limit",
                    headers={"Stripe-Rate-Limited-Reason": reason})


def lock_timeout() -> ApiError:
    # Stripe's wording; the SDKs retry it because the API says so in Stripe-Should-Retry.
    return ApiError(429, "This object cannot be accessed right now because another API request or Stripe process is "
                         "currently accessing it. If you see this error intermittently, retry the request. If you see "
                         "this error frequently and are making multiple concurrent requests to a single object, make "
                         "your requests serially or at a lower rate.", code="lock_timeout",
                    headers={"Stripe-Should-Retry": "true"})


def server_error() -> ApiError:
    return ApiError(500, "An unknown error occurred", type="api_error", headers={"Stripe-Should-Retry": "true"})


# Scheduled or random faults answered with an error body (the others: "reset", "slow", "429").
FAULT_ERRORS = {"500": server_error, "lock_timeout": lock_timeout}


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


def _int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid integer: {value}", param=param) from None


class Api:
    """Routes a request to the emulator's stores; raises ApiError for anything Stripe would refuse."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    # --- auth
    def authenticate(self, headers: Any) -> tuple[Store, dict]:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise ApiError(401, "You did not provide an API key. You need to provide your API key in the "
                                "Authorization header, using Bearer auth "
                                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
        key = auth[7:].strip()
        info = self.emu.keys.get(key)
        if info is None or info["status"] == "revoked":
            raise ApiError(401, f"Invalid API Key provided: {mask(key)}")
        if info["status"] == "expired":
            raise ApiError(401, f"Expired API Key provided: {mask(key)}", code="api_key_expired")
        store = self.emu.stores[info["account"]]
        target = headers.get("Stripe-Account")
        if target and target != info["account"]:
            allowed = info["kind"] in ("secret", "restricted") and info["account"] == self.emu.account_id
            if not allowed or target not in self.emu.stores:
                raise ApiError(403, f"The provided key '{mask(key)}' does not have access to account '{target}' "
                                    "(or that account does not exist). Application access may have been revoked.",
                               code="account_invalid")
            store = self.emu.stores[target]
        return store, dict(info, key=key)

    def require(self, key_info: dict, store: Store, resource: str) -> None:
        if key_info["kind"] != "restricted":
            return
        if key_info["permissions"].get(resource, "none") not in ("read", "write"):
            raise ApiError(403, f"The provided key '{mask(key_info['key'])}' does not have the required permissions "
                                f"for this endpoint on account '{store.account_id}'. Having the "
                                f"'{PERMISSIONS[resource]}' permission would allow this request to continue.")

    # --- routes
    def route(self, path: str) -> tuple[str, list[str]]:
        """(endpoint template, path arguments) for counting, limiting and dispatch."""
        parts = path.strip("/").split("/")
        if parts[:1] == ["v1"]:
            rest = parts[1:]
            if len(rest) == 1:
                return f"GET /v1/{rest[0]}", []
            if len(rest) == 2:
                return f"GET /v1/{rest[0]}/{{id}}", [rest[1]]
            if len(rest) == 3:
                return f"GET /v1/{rest[0]}/{{id}}/{rest[2]}", [rest[1]]
        return f"GET {path}", []

    def get(self, path: str, params: dict, headers: Any) -> bytes:
        endpoint, args = self.route(path)
        store, key_info = self.authenticate(headers)
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "v1":
            raise self.unknown(path)
        name = parts[1]
        if name == "account" and len(parts) == 2:
            self.require(key_info, store, "account")
            return orjson.dumps(self.emu.account_object(store))
        if name == "accounts" and len(parts) == 3 and args[0] in self.emu.stores:
            return orjson.dumps(self.emu.account_object(self.emu.stores[args[0]]))
        if name == "balance" and len(parts) == 2:
            self.require(key_info, store, "balance")
            return orjson.dumps(self.emu.balance_object(store))
        if name not in LISTS:
            raise self.unknown(path)
        resource, accepted = LISTS[name]
        self.require(key_info, store, resource)
        if len(parts) == 2:
            return self.list(store, resource, params, accepted, f"/v1/{name}")
        if len(parts) == 3:
            return self.retrieve(store, resource, args[0], params)
        if len(parts) == 4 and parts[3] == "lines" and resource in ("invoices", "credit_notes"):
            return self.lines(store, resource, args[0], params)
        raise self.unknown(path)

    def unknown(self, path: str) -> ApiError:
        return ApiError(404, f"Unrecognized request URL (GET: {path}). Please see https://stripe.com/docs or we "
                             "can help at https://support.stripe.com/.")

    def retrieve(self, store: Store, resource: str, object_id: str, params: dict) -> bytes:
        self.check_params(params, {"expand"})
        obj = store.collections[resource].objects.get(object_id)
        if obj is None:
            raise ApiError(404, f"No such {OBJECT_NAMES[resource]}: '{object_id}'", code="resource_missing",
                           param="id")
        if params.get("expand"):
            return orjson.dumps(self.expand(store, store.render(resource, obj), params["expand"], ""))
        return store.rendered_bytes(resource, object_id)

    def check_params(self, params: dict, accepted: set[str]) -> None:
        for name in params:
            if name not in accepted:
                raise ApiError(400, f"Received unknown parameter: {name}", param=name)

    def page_bounds(self, params: dict) -> int:
        limit = _int(params.get("limit", 10), "limit")
        # Stripe's wording for an out-of-range integer parameter
        if limit < 1:
            raise ApiError(400, "This value must be greater than or equal to 1.", param="limit")
        if limit > 100:
            raise ApiError(400, "This value must be less than or equal to 100.", param="limit")
        if "starting_after" in params and "ending_before" in params:
            raise ApiError(400, "You may only specify one of these parameters: ending_before, starting_after.")
        return limit

    def list(self, store: Store, resource: str, params: dict, accepted: set[str], url: str) -> bytes:
        self.check_params(params, COMMON_PARAMS | accepted)
        limit = self.page_bounds(params)
        expand = self.list_expand(params)
        with store.lock:
            coll = store.collections[resource]
            gte, lt = self.created_bounds(params.get("created"))
            if resource == "events":
                gte = max(gte or 0, self.emu.now() - EVENT_RETENTION)
            start, end = coll.window(gte, lt)
            keys = coll.ordered()
            if self.needs_filter(resource, params):
                ids, has_more = self.cursor(store, resource, self.filter(store, resource, keys[start:end], params),
                                            params, limit)
            else:  # the common case, O(log n) per page however long the list
                ids, has_more = self.bisect_page(store, resource, keys, start, end, params, limit)
            if expand:
                data = [self.expand(store, store.render(resource, coll.objects[i]), expand, "data.")
                        for i in ids]
                return orjson.dumps({"object": "list", "data": data, "has_more": has_more, "url": url})
            body = b",".join(store.page_bytes(resource, ids))
        return b'{"object":"list","data":[' + body + b'],"has_more":' + (b"true" if has_more else b"false") + \
            b',"url":' + orjson.dumps(url) + b"}"

    def created_bounds(self, created: Any) -> tuple[int | None, int | None]:
        """`created` as [gte, lt): an exact int, or a dict of gt/gte/lt/lte."""
        if created is None:
            return None, None
        if isinstance(created, str):
            value = _int(created, "created")
            return value, value + 1
        if not isinstance(created, dict):
            raise ApiError(400, "Invalid created: must be an integer or a hash", param="created")
        gte = lt = None
        for op, raw in created.items():
            value = _int(raw, f"created[{op}]")
            if op == "gte":
                gte = max(gte or value, value)
            elif op == "gt":
                gte = max(gte or value + 1, value + 1)
            elif op == "lt":
                lt = min(lt or value, value)
            elif op == "lte":
                lt = min(lt or value + 1, value + 1)
            else:
                raise ApiError(400, f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        return gte, lt

    FILTERS = ("customer", "charge", "payment_intent", "invoice", "product", "status", "type", "currency", "active",
               "subscription", "types")

    def needs_filter(self, resource: str, params: dict) -> bool:
        if resource == "subscriptions" and params.get("status") != "all":
            return True
        return resource == "subscription_items" or any(name in params for name in self.FILTERS)

    def bisect_page(self, store: Store, resource: str, keys: list, start: int, end: int, params: dict,
                    limit: int) -> tuple[list[str], bool]:
        self.check_cursors(store, resource, params)
        if "ending_before" in params:
            end = min(end, bisect_left(keys, self._position(store, resource, params["ending_before"])))
            first = max(start, end - limit)
            return [k[-1] for k in keys[first:end]], first > start
        if "starting_after" in params:
            start = max(start, bisect_right(keys, self._position(store, resource, params["starting_after"])))
        return [k[-1] for k in keys[start:min(end, start + limit)]], end - start > limit

    def filter(self, store: Store, resource: str, keys: list[tuple[int, str]], params: dict) -> list[tuple[int, str]]:
        """The list keys whose objects pass the request's filters (objects decoded once each)."""
        if resource == "subscription_items":
            if "subscription" not in params:
                raise ApiError(400, "Missing required param: subscription.", param="subscription")
            wanted = set(store.items_of.get(params["subscription"], []))
            keys = [k for k in keys if k[2] in wanted]
        tests = []
        if resource == "subscriptions":
            status = params.get("status")
            if status is None:
                tests.append(lambda o: o["status"] not in ("canceled", "incomplete_expired"))
            elif status != "all":
                tests.append(lambda o: o["status"] == status)
        if resource == "events":
            types = params.get("types") or ([params["type"]] if "type" in params else None)
            if types:
                patterns = [re.compile("^" + re.escape(t).replace(r"\*", "[^.]+(\\.[^.]+)*") + "$") for t in types]
                tests.append(lambda o: any(p.match(o["type"]) for p in patterns))
        for name in ("customer", "charge", "payment_intent", "invoice", "product", "status", "type", "currency"):
            if name in params and resource not in ("subscriptions", "events"):
                tests.append(lambda o, name=name: _ref(o.get(name)) == params[name])
        if "active" in params:
            wanted_active = params["active"] == "true"
            tests.append(lambda o: o.get("active") == wanted_active)
        if not tests:
            return keys
        objects = store.collections[resource].objects
        return [k for k in keys if all(test(o) for o in (objects[k[2]],) for test in tests)]

    def cursor(self, store: Store, resource: str, keys: list[tuple[int, str]], params: dict,
               limit: int) -> tuple[list[str], bool]:
        self.check_cursors(store, resource, params)
        for name in ("starting_after", "ending_before"):
            if name in params:
                anchor = self._position(store, resource, params[name])
                return _slice(keys, name, anchor, limit)
        return [k[-1] for k in keys[:limit]], len(keys) > limit

    def check_cursors(self, store: Store, resource: str, params: dict) -> None:
        # A cursor must name an object of this list; Stripe answers resource_missing naming the parameter.
        for name in ("starting_after", "ending_before"):
            if name in params and params[name] not in store.collections[resource].objects:
                raise ApiError(400, f"No such {OBJECT_NAMES[resource]}: '{params[name]}'", code="resource_missing",
                               param=name)

    def _position(self, store: Store, resource: str, object_id: str) -> tuple:
        return store.collections[resource].position[object_id]

    def lines(self, store: Store, resource: str, parent_id: str, params: dict) -> bytes:
        self.check_params(params, COMMON_PARAMS)
        limit = self.page_bounds(params)
        if parent_id not in store.collections[resource].objects:
            raise ApiError(404, f"No such {OBJECT_NAMES[resource]}: '{parent_id}'", code="resource_missing", param="id")
        with store.lock:
            lines = store.sub_lists.get(parent_id, [])
            ids = store.sub_list_ids.get(parent_id, [])
        position = {line_id: n for n, line_id in enumerate(ids)}  # lines keep the invoice's order
        keys = [(n, line_id) for n, line_id in enumerate(ids)]
        page, has_more = [line_id for _, line_id in keys[:limit]], len(keys) > limit
        for name in ("starting_after", "ending_before"):
            if name in params:
                if params[name] not in position:
                    raise ApiError(400, f"No such line item: '{params[name]}'", code="resource_missing", param=name)
                page, has_more = _slice(keys, name, (position[params[name]], params[name]), limit)
        body = b",".join(lines[position[i]] for i in page)
        url = f"/v1/{resource}/{parent_id}/lines"
        return b'{"object":"list","data":[' + body + b'],"has_more":' + (b"true" if has_more else b"false") + \
            b',"url":' + orjson.dumps(url) + b"}"

    # --- expand
    def list_expand(self, params: dict) -> list[str]:
        expand = params.get("expand") or []
        for path in expand:
            if not path.startswith("data."):
                raise ApiError(400, f"This property cannot be expanded ({path}). You may want to try expanding "
                                    f"'data.{path}' instead.", param="expand")
        return [p[len("data."):] for p in expand]

    def expand(self, store: Store, obj: dict, paths: list[str], prefix: str) -> dict:
        obj = orjson.loads(orjson.dumps(obj))
        for path in paths:
            parts = path.split(".")
            if len(parts) + (1 if prefix else 0) > 4:
                raise ApiError(400, "You cannot expand more than 4 levels of a property.", param="expand")
            self._expand_into(store, obj, parts, prefix + path)
        return obj

    def _expand_into(self, store: Store, node: Any, parts: list[str], full: str) -> None:
        if not isinstance(node, dict) or not parts:
            return
        head, rest = parts[0], parts[1:]
        if head not in node:
            raise ApiError(400, f"This property cannot be expanded ({full}).", param="expand")
        value = node[head]
        if isinstance(value, str):
            resource = store.where.get(value)
            if resource is None:
                raise ApiError(400, f"This property cannot be expanded ({full}).", param="expand")
            value = node[head] = orjson.loads(store.rendered_bytes(resource, value))
        self._expand_into(store, value, rest, full)


def _ref(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


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
        except ApiError as exc:
            self.respond(exc.status, orjson.dumps(exc.body), exc.headers)

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
            raise emu.api.unknown(url.path)
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
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        self.send_header("Stripe-Version", API_VERSION)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()  # headers and body in one send


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
        with self.lock:
            for info in list(self.emu.keys.values()):
                if info["account"] == account and info["kind"] == "oauth":
                    info["status"] = "revoked"
            for token, info in list(self.refresh_tokens.items()):
                if info["account"] == account:
                    del self.refresh_tokens[token]
        return 200, {"stripe_user_id": account}


def _redirect(uri: str, **params: Any) -> str:
    separator = "&" if "?" in uri else "?"
    return uri + separator + urlencode({k: v for k, v in params.items() if v is not None})


def jitter(rng: random.Random, fixed_ms: float, jitter_ms: float) -> float:
    return (fixed_ms + (rng.uniform(0, jitter_ms) if jitter_ms else 0.0)) / 1000.0
