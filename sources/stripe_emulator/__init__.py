"""A local stand-in for Stripe's v1 read API and Connect OAuth, for tests, the demo and benchmarks.

    with Emulator(seed=1, scale=1000) as emu:
        client = stripe.StripeClient(emu.api_key, base_addresses={"api": emu.api_base})

It answers the official SDK the way Stripe's API version 2026-10-28.endive does for reading data:
objects with every field that version returns, list semantics (newest first, cursors, `created`
and every documented filter, `limit` bounds), `expand[]` (ids and includable fields, 4 levels),
truncated sub-lists and their paging endpoints, `Stripe-Version` (2022-11-15 shapes too), events
with 30-day retention on its own clock, key types and their errors, connected accounts, OAuth,
rate limits and injected faults. What it serves is declared once, in `objects.OBJECTS`. It never
imports the Stripe source; the source never imports it.
"""

from __future__ import annotations

import copy
import gc
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

from .accounts import account_object, balance_object
from .apps import StripeApps
from .ids import Ids
from .objects import BY_NAME
from .server import Api, EmulatorServer, FaultConfig, OAuth, RateLimits, Stats, _Bucket, jitter
from .store import API_VERSION, EVENT_RETENTION, Store
from .world import WorldBuilder

__all__ = ["Emulator", "RateLimits", "FaultConfig", "API_VERSION", "EVENT_RETENTION"]


class Emulator:
    """One platform account with its connected accounts, served on 127.0.0.1 (random port)."""

    def __init__(
        self,
        seed: int = 1,
        scale: int = 1000,
        span_days: int = 730,
        latency_ms: float = 0,
        jitter_ms: float = 0,
        rate_limits: RateLimits | None = None,
        faults: FaultConfig | None = None,
        connected_accounts: int = 2,
        host: str = "127.0.0.1",
        port: int = 0,
        counts: dict[str, int] | None = None,
        api_key: str | None = None,
        connected_scales: Sequence[int] | None = None,
        default_api_version: str = API_VERSION,
    ) -> None:
        """`connected_accounts` connected accounts, each of scale `max(60, scale // 10)`; or one per
        entry of `connected_scales`, of that scale (a platform of many small accounts and a few large).
        `default_api_version`: what a request without `Stripe-Version` gets (at Stripe, the version the
        account was created with, often older than the one a client pins)."""
        self.seed, self.latency_ms, self.jitter_ms = seed, latency_ms, jitter_ms
        self.default_api_version = default_api_version
        self.rate_limits = rate_limits
        self.faults = faults or FaultConfig()
        self._offset = 0
        self._rng = random.Random(seed)
        self._fault_rng = random.Random(self.faults.seed or seed)
        self._lock = threading.Lock()
        self._stats = Stats()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.oauth_consent = "approve"
        self.keys: dict[str, dict] = {}
        self.stores: dict[str, Store] = {}
        ids = Ids(random.Random(seed), "")
        self.account_id = "acct_1" + ids.new("x")[5:21]
        self.client_id = "ca_" + ids.new("x")[5:]
        scales = list(connected_scales) if connected_scales is not None else [max(60, scale // 10)] * connected_accounts
        self.connected_account_ids = ["acct_1" + ids.new("x")[5:21] for _ in scales]
        self.deauthorized: set[str] = set()  # connected accounts that disconnected from the platform
        # every third connected account joined through Connect OAuth: a Standard account the platform does
        # not control (the others it created, and controls)
        self.oauth_connected = {account for n, account in enumerate(self.connected_account_ids) if n % 3 == 2}
        now = self.now()
        self._created = {self.account_id: now - 800 * 86400}
        self._build(self.account_id, seed, scale, span_days, now, counts, destinations=self.connected_account_ids)
        for n, (account, account_scale) in enumerate(zip(self.connected_account_ids, scales, strict=True)):
            # connected one after another, an hour apart: `/v1/accounts` lists them newest first
            self._created[account] = now - 400 * 86400 + n * 3600
            self._build(account, seed * 31 + n + 1, account_scale, span_days, now, None, connected=True)
        self.created = self._created[self.account_id]  # when the platform account was opened: fixed
        self.api_key = self.add_key(api_key, kind="secret")
        self.api = Api(self)
        self.oauth = OAuth(self)
        self.apps = StripeApps(self)
        self._server = EmulatorServer(self, host, port)
        self._thread: threading.Thread | None = None

    def _build(self, account: str, seed: int, scale: int, span_days: int, now: int, counts: dict | None,
               destinations: list[str] | None = None, connected: bool = False) -> None:
        tag = account[6:8]
        store = Store(account, False, self.now, Ids(random.Random(seed * 101), tag), connected=connected)
        store.set_extra(account, opened=self._created[account])  # what its account object says (`created`)
        collecting = gc.isenabled()
        gc.disable()  # millions of acyclic dicts: the cyclic collector would rescan them all, a third of the build
        try:
            WorldBuilder(store, seed=seed, scale=scale, span_days=span_days, now=now, livemode=False, tag=tag,
                         counts=counts, destinations=destinations or (),
                         account_name="Connected Shop" if connected else "Emulated Inc.").build()
            store.compact()  # to bytes, which the collector does not track
        finally:
            if collecting:
                gc.enable()
        self.stores[account] = store

    # --- lifecycle
    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def connect_base(self) -> str:
        return self.api_base

    def start(self) -> Emulator:
        # a short poll: `stop()` waits for the serving loop to notice, and tests stop many emulators
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stripe-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- clock
    def now(self) -> int:
        return int(time.time()) + self._offset

    def advance(self, seconds: int = 0, days: int = 0) -> None:
        self._offset += seconds + days * 86400
        self._settle_balance_transactions()

    def _settle_balance_transactions(self) -> None:
        """Stripe makes a balance transaction `available` once its `available_on` has passed, and
        announces it in no event."""
        now = self.now()
        for store in self.stores.values():
            with store.lock:
                due = [txn for txn in map(partial(store.get, "balance_transactions"),
                                          store.ordered_ids("balance_transactions"))
                       if txn["status"] == "pending" and txn["available_on"] <= now]
                if due:
                    builder = self._builder(store)
                    for txn in due:
                        builder.change("balance_transactions", txn, now, (), status="available")

    # --- keys
    def add_key(
        self,
        key: str | None = None,
        *,
        kind: str = "secret",
        livemode: bool = False,
        account: str | None = None,
        permissions: dict[str, str] | None = None,
    ) -> str:
        """Register a key: kind secret (sk_), restricted (rk_) or oauth (an access token, sk_)."""
        if key is None:
            prefix = "rk" if kind == "restricted" else "sk"
            key = f"{prefix}_{'live' if livemode else 'test'}_" + secrets.token_urlsafe(24).replace("-", "x")
        self.keys[key] = {"kind": kind, "livemode": livemode, "account": account or self.account_id,
                          "permissions": dict(permissions or {}), "status": "active"}
        return key

    def revoke_key(self, key: str) -> None:
        self.keys[key]["status"] = "revoked"

    def expire_key(self, key: str) -> None:
        self.keys[key]["status"] = "expired"

    # --- data
    def store(self, account: str | None = None) -> Store:
        return self.stores[account or self.account_id]

    def objects(self, resource: str, account: str | None = None) -> list[dict]:
        """Every current object of a list, as the API renders it, newest first (sub-list items: parent by parent)."""
        return self.store(account).objects(resource)

    def get(self, resource: str, object_id: str, account: str | None = None) -> dict:
        store = self.store(account)
        return copy.deepcopy(store.snapshot(resource, object_id))

    def lines_of(self, parent_id: str, account: str | None = None) -> list[dict]:
        """The items of a parent's truncating sub-list (invoice or credit note lines, subscription items, reversals)."""
        store = self.store(account)
        resource = store.where.get(parent_id)
        for sub in BY_NAME[resource].sub_lists if resource else ():
            return store.children(sub.item, parent_id)
        return []

    def deleted_ids(self, resource: str, account: str | None = None) -> set[str]:
        return set(self.store(account).deleted[resource])

    def _builder(self, store: Store) -> WorldBuilder:
        """A builder working on a built world, at the emulator's now (for the change methods below)."""
        return WorldBuilder(store, seed=self._rng.randint(1, 10**9), scale=0, span_days=3650, now=self.now(),
                            livemode=store.livemode, tag=store.account_id[6:8], counts={},
                            destinations=self.connected_account_ids if store.account_id == self.account_id else (),
                            account_name="Emulated Inc." if store.account_id == self.account_id
                            else "Connected Shop")

    def create(self, resource: str, account: str | None = None, **fields: Any) -> dict:
        """Create an object now (or at `created=`) with its dependents, recording the events Stripe records.

        References may be given by id (`customer="cus_..."`, `invoice=`, `charge=`, `subscription=`,
        `product=`, `price=`, `coupon=`, `transfer=`, `cardholder=`, `card=`, `transaction=`, `file=`,
        `payment_link=`); other fields override the generated ones. Generator arguments pass through
        (`status=`, `items=`, `lines=`, `reversals=`, `refunds=`, `links=`, `mode=`, `amount=`).
        """
        store = self.store(account)
        entry = BY_NAME.get(resource)
        if entry is None or entry.generator is None:
            raise ValueError(f"create({resource!r}) is not supported by the emulator")
        builder = self._builder(store)
        refs = {"customer": "customers", "invoice": "invoices", "charge": "charges", "subscription": "subscriptions",
                "product": "products", "price": "prices", "coupon": "coupons", "transfer": "transfers",
                "cardholder": "issuing_cardholders", "card": "issuing_cards", "transaction": "issuing_transactions",
                "file": "files", "payment_link": "payment_links"}
        args: dict[str, Any] = {}
        for name, kind in refs.items():
            if name in fields and isinstance(fields[name], str) and name != resource[:-1]:
                args[name] = store.get(kind, fields.pop(name))
        for name in ("created", "status", "items", "lines", "reversals", "amount", "currency", "automatic",
                     "recurring", "quantity", "mode", "refunds", "links", "active"):
            if name in fields:
                args[name] = fields.pop(name)
        if args.get("created"):
            builder.now = max(builder.now, args["created"])
        with store.lock:
            obj = getattr(builder, entry.generator)(**args, **fields)
        if obj is None:
            raise ValueError(f"nothing to create a {entry.object} from")
        return copy.deepcopy(store.snapshot(resource, obj["id"]))

    def update(self, resource: str, object_id: str, account: str | None = None, **fields: Any) -> dict:
        """Change fields now: `<object>.updated` with `previous_attributes` (no event when nothing changed)."""
        store = self.store(account)
        builder = self._builder(store)
        with store.lock:
            builder.update(resource, store.get(resource, object_id), builder.now, **fields)
        return copy.deepcopy(store.snapshot(resource, object_id))

    def delete(self, resource: str, object_id: str, account: str | None = None) -> None:
        store = self.store(account)
        builder = self._builder(store)
        with store.lock:
            builder.delete(resource, store.get(resource, object_id), builder.now)

    def _change(self, account: str | None, method: str, *args: Any) -> dict:
        store = self.store(account)
        builder = self._builder(store)
        with store.lock:
            return copy.deepcopy(getattr(builder, method)(*args, builder.now))

    def pay_invoice(self, invoice_id: str, account: str | None = None) -> dict:
        """Pay an open invoice: payment intent, charge, invoice payment, then `invoice.updated`, `.paid` and
        `.payment_succeeded`."""
        invoice = self.store(account).get("invoices", invoice_id)
        if invoice["status"] != "open":
            raise ValueError(f"invoice {invoice_id} is {invoice['status']}, not open")
        self._change(account, "pay", invoice)
        return self.get("invoices", invoice_id, account)

    def finalize_invoice(self, invoice_id: str, account: str | None = None) -> dict:
        invoice = self.store(account).get("invoices", invoice_id)
        if invoice["status"] != "draft":
            raise ValueError(f"invoice {invoice_id} is {invoice['status']}, not a draft")
        self._change(account, "finalize_invoice", invoice)
        return self.get("invoices", invoice_id, account)

    def void_invoice(self, invoice_id: str, account: str | None = None) -> dict:
        self._change(account, "void_invoice", self.store(account).get("invoices", invoice_id))
        return self.get("invoices", invoice_id, account)

    def add_invoice_lines(self, invoice_id: str, n: int, account: str | None = None) -> dict:
        return self._change(account, "add_invoice_lines", self.store(account).get("invoices", invoice_id), n)

    def remove_invoice_lines(self, invoice_id: str, account: str | None = None) -> dict:
        """Delete every invoice item of a draft invoice: Stripe sends `invoiceitem.deleted`s and `invoice.updated`."""
        return self._change(account, "remove_invoice_lines", self.store(account).get("invoices", invoice_id))

    def add_subscription_items(self, subscription_id: str, n: int, account: str | None = None) -> dict:
        """Add `n` items (new prices): Stripe sends `customer.subscription.updated` with the old `items`."""
        return self._change(account, "add_subscription_items",
                            self.store(account).get("subscriptions", subscription_id), n)

    def remove_subscription_item(self, item_id: str, account: str | None = None) -> dict:
        """Delete a subscription item: Stripe sends `customer.subscription.updated` (no event of its own)."""
        return self._change(account, "remove_subscription_item", item_id)

    def cancel_subscription(self, subscription_id: str, account: str | None = None) -> dict:
        self._change(account, "cancel_subscription", self.store(account).get("subscriptions", subscription_id))
        return self.get("subscriptions", subscription_id, account)

    def add_transfer_reversals(self, transfer_id: str, n: int, account: str | None = None) -> dict:
        """Reverse a transfer in `n` parts: each sends `transfer.reversed` with the transfer's new totals."""
        self._change(account, "reverse_transfer", self.store(account).get("transfers", transfer_id), n)
        return self.get("transfers", transfer_id, account)

    def transition(self, resource: str, object_id: str, event: str, account: str | None = None,
                   **fields: Any) -> dict:
        """Change fields now, announced by `<object>.<event>` as Stripe names that step (a checkout session
        `expired`, a setup intent `canceled`, a top-up `succeeded`), not by `.updated`."""
        store = self.store(account)
        builder = self._builder(store)
        with store.lock:
            builder.change(resource, store.get(resource, object_id), builder.now, (event,), **fields)
        return self.get(resource, object_id, account)

    def delete_tax_id(self, tax_id: str, account: str | None = None) -> None:
        """Remove a customer's tax id: `customer.tax_id.deleted`."""
        self._change(account, "delete_tax_id", self.store(account).get("tax_ids", tax_id))

    def adjust_customer_balance(self, customer_id: str, amount: int, account: str | None = None) -> dict:
        """A balance transaction of `amount` (negative: a credit), then `customer.updated` with the new balance."""
        return self._change(account, "adjust_balance", self.store(account).get("customers", customer_id), amount)

    def attach_product_feature(self, product_id: str, account: str | None = None) -> dict:
        """Grant an entitlement feature with a product (Stripe announces no event for it)."""
        store = self.store(account)
        builder = self._builder(store)
        with store.lock:
            return copy.deepcopy(builder.attach_feature(store.get("products", product_id)))

    def finalize_quote(self, quote_id: str, account: str | None = None) -> dict:
        self._change(account, "finalize_quote", self.store(account).get("quotes", quote_id))
        return self.get("quotes", quote_id, account)

    def accept_quote(self, quote_id: str, account: str | None = None) -> dict:
        """Accept a finalized quote: its invoice is made, `quote.accepted`."""
        self._change(account, "accept_quote", self.store(account).get("quotes", quote_id))
        return self.get("quotes", quote_id, account)

    def capture_issuing_authorization(self, authorization_id: str, account: str | None = None) -> dict:
        """The merchant captures a pending authorization: a capture transaction, the authorization closes."""
        self._change(account, "capture", self.store(account).get("issuing_authorizations", authorization_id))
        return self.get("issuing_authorizations", authorization_id, account)

    def detach_payment_method(self, payment_method_id: str, account: str | None = None) -> dict:
        """Detach a payment method from its customer: `payment_method.detached` (its `customer` is null)."""
        return self._change(account, "detach_payment_method",
                            self.store(account).get("payment_methods", payment_method_id))

    def close_review(self, review_id: str, reason: str = "approved", account: str | None = None) -> dict:
        store = self.store(account)
        builder = self._builder(store)
        with store.lock:
            builder.close_review(store.get("reviews", review_id), builder.now, reason)
        return self.get("reviews", review_id, account)

    def refund_application_fee(self, fee_id: str, n: int, account: str | None = None) -> dict:
        """Refund an application fee in `n` parts: each sends `application_fee.refunded` with its new totals."""
        self._change(account, "refund_fee", self.store(account).get("application_fees", fee_id), n)
        return self.get("application_fees", fee_id, account)

    def update_account(self, account: str, **fields: Any) -> dict:
        """Change a connected account's own fields (`business_profile`...): `account.updated` in its events."""
        store = self.store(account)
        builder = self._builder(store)
        with store.lock:
            return copy.deepcopy(builder.update_account(builder.now, **fields))

    def emit_event(self, type: str, obj: dict, previous_attributes: dict | None = None,
                   account: str | None = None) -> dict:
        """Record an event as given (tests of odd snapshots; Stripe's own events come from the methods above)."""
        store = self.store(account)
        return store.collections["events"].objects[store.record(type, obj, previous_attributes)]

    # --- accounts
    def listed_accounts(self) -> list[tuple[str, int]]:
        """(id, created) of the platform's connected accounts as `/v1/accounts` lists them, newest first."""
        listed = [(account, self._created[account]) for account in self.connected_account_ids
                  if account not in self.deauthorized]
        return sorted(listed, key=lambda pair: (-pair[1], pair[0]))

    def is_connected(self, account: str) -> bool:
        return account in self.stores and account not in self.deauthorized

    def deauthorize(self, account: str) -> dict:
        """The connected account disconnects from the platform (Connect OAuth's deauthorize, or its owner
        in the Dashboard): it leaves `/v1/accounts`, reads for it with `Stripe-Account` answer 403
        `account_invalid`, its OAuth tokens are revoked, and the platform's events get
        `account.application.deauthorized` (naming it in `account`). Returns that event."""
        if account not in self.connected_account_ids:
            raise ValueError(f"{account} is not connected to this platform")
        self.deauthorized.add(account)
        self.oauth.revoke_tokens(account)
        return self._application_event("account.application.deauthorized", account)

    def reconnect(self, account: str) -> dict:
        """The account connects to the platform again: `account.application.authorized` on the platform."""
        if account not in self.connected_account_ids:
            raise ValueError(f"{account} was never connected to this platform")
        self.deauthorized.discard(account)
        return self._application_event("account.application.authorized", account)

    def _application_event(self, event_type: str, account: str) -> dict:
        store = self.store()
        application = {"id": self.client_id, "object": "application", "name": "Emulated Inc."}
        return store.collections["events"].objects[store.record(event_type, application, account=account)]

    def account_asked(self, headers: Any) -> str:
        """Whose data a request reads: its `Stripe-Account`, else its key's account ("?" for an unknown key)."""
        info = self.keys.get(headers.get("Authorization", "")[7:].strip(), {})
        return headers.get("Stripe-Account") or info.get("account", "?")

    def account_object(self, store: Store) -> dict:
        return account_object(store, self._created[store.account_id], store.account_id == self.account_id,
                              store.account_id not in self.oauth_connected)

    def balance_object(self, store: Store) -> dict:
        return balance_object(store)

    # --- limits, faults, counters (called by the server)
    def latency(self) -> float:
        if not (self.latency_ms or self.jitter_ms):
            return 0.0
        with self._lock:
            return jitter(self._rng, self.latency_ms, self.jitter_ms)

    def count_account(self, endpoint: str, account: str) -> None:
        """A request for `account`'s data (its key's, or the `Stripe-Account` it names)."""
        with self._stats.lock:
            self._stats.by_account.setdefault(account, Counter())[endpoint] += 1

    def count_request(self, endpoint: str) -> int:
        with self._stats.lock:
            self._stats.total += 1
            self._stats.requests[endpoint] += 1
            second = int(time.monotonic() - self._stats.started)
            self._stats.timeline.setdefault(endpoint, Counter())[second] += 1
            return self._stats.total

    def fault_for(self, number: int) -> str | None:
        faults = self.faults
        kind = faults.schedule.get(number)
        if kind is None and (faults.error_rate or faults.reset_rate or faults.slow_rate):
            with self._lock:
                roll = self._fault_rng.random()
            if roll < faults.error_rate:
                kind = "500"
            elif roll < faults.error_rate + faults.reset_rate:
                kind = "reset"
            elif roll < faults.error_rate + faults.reset_rate + faults.slow_rate:
                kind = "slow"
        if kind:
            with self._stats.lock:
                self._stats.faults_injected += 1
        return kind

    def admit(self, headers: Any, endpoint: str) -> str | None:
        """Token buckets per account: overall and per endpoint. The limiter that refused, or None."""
        if self.rate_limits is None:
            return None
        account = self.account_asked(headers)
        with self._lock:
            overall = self._buckets.setdefault((account, "*"), _Bucket(self.rate_limits.global_rps))
            per_endpoint = self._buckets.setdefault((account, endpoint), _Bucket(self.rate_limits.endpoint_rps))
            # A request spends a token of both buckets, or of neither.
            if overall.refill() < 1.0:
                return "global-rate"
            if per_endpoint.refill() < 1.0:
                return "endpoint-rate"
            overall.tokens -= 1.0
            per_endpoint.tokens -= 1.0
            return None

    def stats_note_429(self) -> None:
        with self._stats.lock:
            self._stats.rate_limited += 1

    def stats_note_status(self, status: int) -> None:
        with self._stats.lock:
            self._stats.by_status[status] += 1

    def stats(self) -> dict:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()
