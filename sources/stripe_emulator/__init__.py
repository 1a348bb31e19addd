"""A local stand-in for Stripe's v1 read API and Connect OAuth, for tests, the demo and benchmarks.

    with Emulator(seed=1, scale=1000) as emu:
        client = stripe.StripeClient(emu.api_key, base_addresses={"api": emu.api_base})

It answers the official SDK the way Stripe does for reading data: list semantics (newest first,
cursors, `created` filters, `limit` bounds, `expand`), truncated sub-lists, events with 30-day
retention on its own clock, key types and their errors, connected accounts, OAuth, rate limits
and injected faults. It never imports the Stripe source; the source never imports it.
"""

from __future__ import annotations

import copy
import random
import secrets
import threading
import time
from collections import Counter
from typing import Any

from .apps import StripeApps
from .server import Api, EmulatorServer, FaultConfig, OAuth, RateLimits, Stats, _Bucket, jitter
from .store import EVENT_PREFIX, EVENT_RETENTION, Store
from .world import API_VERSION, Ids, WorldBuilder

__all__ = ["Emulator", "RateLimits", "FaultConfig", "API_VERSION"]


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
    ) -> None:
        self.seed, self.latency_ms, self.jitter_ms = seed, latency_ms, jitter_ms
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
        now = self.now()
        self._build(self.account_id, seed, scale, span_days, now, counts)
        self.connected_account_ids = []
        for n in range(connected_accounts):
            account = "acct_1" + ids.new("x")[5:21]
            self.connected_account_ids.append(account)
            self._build(account, seed * 31 + n + 1, max(60, scale // 10), span_days, now, None)
        self.created = now - 800 * 86400  # when the accounts were opened: fixed, whatever the clock does
        self.api_key = self.add_key(api_key, kind="secret")
        self.api = Api(self)
        self.oauth = OAuth(self)
        self.apps = StripeApps(self)
        self._server = EmulatorServer(self, host, port)
        self._thread: threading.Thread | None = None

    def _build(self, account: str, seed: int, scale: int, span_days: int, now: int, counts) -> None:
        tag = account[6:8]
        store = Store(account, False, self.now, Ids(random.Random(seed * 101), tag))
        WorldBuilder(store, seed=seed, scale=scale, span_days=span_days, now=now, livemode=False, tag=tag,
                     counts=counts).build()
        self._seed_events(store, now)
        store.compact()
        self.stores[account] = store

    @staticmethod
    def _seed_events(store: Store, now: int) -> None:
        """`<object>.created` events for what was created in the last 30 days, as Stripe would have."""
        horizon = now - EVENT_RETENTION
        for resource in EVENT_PREFIX:
            coll = store.collections[resource]
            for *_, object_id in coll.ordered():
                obj = coll.objects[object_id]
                created = obj.get(coll.created_field, 0)
                if created < horizon:
                    break  # newest first: the rest is older
                store.created(resource, obj, created=created)

    # --- lifecycle
    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def connect_base(self) -> str:
        return self.api_base

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-emulator", daemon=True)
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
        return self.store(account).objects(resource)

    def get(self, resource: str, object_id: str, account: str | None = None) -> dict:
        store = self.store(account)
        return copy.deepcopy(store.render(resource, store.get(resource, object_id)))

    def lines_of(self, parent_id: str, account: str | None = None) -> list[dict]:
        return self.store(account).lines(parent_id)

    def deleted_ids(self, resource: str, account: str | None = None) -> set[str]:
        return set(self.store(account).deleted[resource])

    def _builder(self, store: Store) -> WorldBuilder:
        now = self.now()
        builder = WorldBuilder(store, seed=self._rng.randint(1, 10**9), scale=0, span_days=0, now=now,
                               livemode=store.livemode, tag=store.account_id[6:8], counts={})
        builder.ids = store.ids
        return builder

    def create(self, resource: str, account: str | None = None, **fields: Any) -> dict:
        """Create an object now (or at `created=`), with its dependents, recording `<object>.created`."""
        store = self.store(account)
        builder = self._builder(store)
        created = fields.pop("created", None)
        customer = store.get("customers", fields["customer"]) if "customer" in fields else None
        if customer is None and resource not in ("customers", "products", "coupons", "tax_rates", "payouts",
                                                 "transfers"):
            customer = next(iter(store.collections["customers"].objects.values()))
        when = created or self.now()
        builder.when = lambda after=None: when  # everything it builds is created now
        with store.lock:
            if resource == "charges":
                obj = builder.charge(customer, None, when)
            elif resource == "customers":
                obj = builder.customer()
            elif resource == "payment_intents":
                obj = builder.payment(customer, when)[0]
            elif resource == "products":
                obj = builder.product()
            elif resource == "invoiceitems":
                price = next(iter(store.collections["prices"].objects.values()))
                obj = builder.invoiceitem(customer, None, price)
            elif resource == "payouts":
                obj = builder.payout()
            elif resource == "refunds":
                obj = builder.refund(store.get("charges", fields.pop("charge")))
            else:
                raise ValueError(f"create({resource!r}) is not supported by the emulator")
            obj.update({k: v for k, v in fields.items() if k != "customer"})
            store.invalidate(obj["id"])
        store.created(resource, obj)
        if resource == "refunds":  # Stripe announces the charge's new refunded totals
            store.record("charge.refunded", store.render("charges", store.get("charges", obj["charge"])))
        if resource == "payment_intents" and obj.get("latest_charge"):
            store.created("charges", store.get("charges", obj["latest_charge"]))
        return copy.deepcopy(store.render(resource, obj))

    def update(self, resource: str, object_id: str, account: str | None = None, **fields: Any) -> dict:
        return copy.deepcopy(self.store(account).update(resource, object_id, **fields))

    def delete(self, resource: str, object_id: str, account: str | None = None) -> None:
        store = self.store(account)
        if resource == "invoices" and store.get("invoices", object_id)["status"] != "draft":
            raise ValueError("Stripe only deletes draft invoices")
        store.delete(resource, object_id)

    def pay_invoice(self, invoice_id: str, account: str | None = None) -> dict:
        store = self.store(account)
        invoice = store.get("invoices", invoice_id)
        if invoice["status"] != "open":
            raise ValueError(f"invoice {invoice_id} is {invoice['status']}, not open")
        now = self.now()
        builder = self._builder(store)
        builder.when = lambda after=None: now
        customer = store.get("customers", invoice["customer"])
        with store.lock:
            pi, charge = builder.payment(customer, now)
            store.patch("payment_intents", pi["id"], amount=invoice["amount_due"], status="succeeded",
                        amount_received=invoice["amount_due"], latest_charge=charge["id"] if charge else None)
        store.created("payment_intents", pi)
        if charge:
            store.created("charges", charge)
        transitions = dict(invoice["status_transitions"], paid_at=now)
        invoice = store.update("invoices", invoice_id, status="paid", amount_paid=invoice["amount_due"],
                               amount_remaining=0, attempted=True, attempt_count=1, status_transitions=transitions)
        store.record("invoice.paid", store.render("invoices", invoice))
        store.record("invoice.payment_succeeded", store.render("invoices", invoice))
        return copy.deepcopy(store.render("invoices", invoice))

    def add_invoice_lines(self, invoice_id: str, n: int, account: str | None = None) -> dict:
        store = self.store(account)
        invoice = store.get("invoices", invoice_id)
        if invoice["status"] != "draft":
            raise ValueError("lines can only be added to draft invoices")
        builder = self._builder(store)
        now = self.now()
        builder.when = lambda after=None: now
        price = next(iter(store.collections["prices"].objects.values()))
        customer = store.get("customers", invoice["customer"])
        lines = []
        for _ in range(n):
            item = builder.invoiceitem(customer, invoice, price)
            store.created("invoiceitems", item)
            lines.append({"id": store.ids.new("il"), "object": "line_item", "amount": item["amount"],
                          "currency": "usd", "description": item["description"], "discount_amounts": [],
                          "discountable": True, "discounts": [], "invoice": invoice_id, "livemode": store.livemode,
                          "metadata": {}, "parent": {"type": "invoice_item_details",
                                                     "invoice_item_details": {"invoice_item": item["id"]},
                                                     "subscription_item_details": None},
                          "period": item["period"], "pretax_credit_amounts": [], "pricing": item["pricing"],
                          "quantity": item["quantity"], "subtotal": item["amount"], "taxes": []})
        store.add_lines(invoice_id, lines)
        total = sum(line["amount"] for line in store.lines(invoice_id))
        return copy.deepcopy(store.update("invoices", invoice_id, subtotal=total, subtotal_excluding_tax=total,
                                          total=total, total_excluding_tax=total, amount_due=total,
                                          amount_remaining=total))

    def remove_invoice_lines(self, invoice_id: str, account: str | None = None) -> dict:
        """Delete every invoice item of a draft invoice: Stripe sends `invoice.updated`, lines empty."""
        store = self.store(account)
        if store.get("invoices", invoice_id)["status"] != "draft":
            raise ValueError("lines can only be removed from draft invoices")
        with store.lock:
            store.set_lines(invoice_id, [])
        return copy.deepcopy(store.update("invoices", invoice_id, subtotal=0, subtotal_excluding_tax=0, total=0,
                                          total_excluding_tax=0, amount_due=0, amount_remaining=0))

    def add_subscription_items(self, subscription_id: str, n: int, account: str | None = None) -> dict:
        """Add items (one price each): Stripe sends `customer.subscription.updated`."""
        store = self.store(account)
        builder = self._builder(store)
        prices = [p for p in store.collections["prices"].objects.values() if p["type"] == "recurring"]
        with store.lock:
            subscription = store.get("subscriptions", subscription_id)
            for k in range(n):
                builder.subscription_item(subscription, prices[k % len(prices)])
            store.invalidate(subscription_id)
        return copy.deepcopy(store.render("subscriptions", store.update("subscriptions", subscription_id)))

    def remove_subscription_item(self, item_id: str, account: str | None = None) -> dict:
        """Delete a subscription item: Stripe sends `customer.subscription.updated` (no event of its own)."""
        store = self.store(account)
        with store.lock:
            item = store.collections["subscription_items"].remove(item_id)
            store.items_of[item["subscription"]].remove(item_id)
            store.invalidate(item["subscription"])
        return copy.deepcopy(store.update("subscriptions", item["subscription"]))

    def cancel_subscription(self, subscription_id: str, account: str | None = None) -> dict:
        now = self.now()
        return copy.deepcopy(self.store(account).update(
            "subscriptions", subscription_id, event_suffix="deleted", status="canceled", canceled_at=now,
            ended_at=now, cancellation_details={"comment": None, "feedback": None, "reason": "cancellation_requested"},
        ))

    def emit_event(self, type: str, obj: dict, previous_attributes: dict | None = None,
                   account: str | None = None) -> dict:
        return copy.deepcopy(self.store(account).record(type, obj, previous_attributes))

    # --- accounts
    def account_object(self, store: Store) -> dict:
        connected = store.account_id != self.account_id
        return {
            "id": store.account_id, "object": "account", "business_type": "company",
            "business_profile": {"name": "Connected Shop" if connected else "Emulated Inc.", "url": None,
                                 "mcc": "5734", "support_email": None},
            "capabilities": {"card_payments": "active", "transfers": "active"}, "charges_enabled": True,
            "controller": {"type": "account"}, "country": "US", "created": self.created,
            "default_currency": "usd", "details_submitted": True, "email": "owner@example.com",
            "metadata": {}, "payouts_enabled": True, "settings": {"dashboard": {"display_name": "Emulated"}},
            "type": "standard",
        }

    def balance_object(self, store: Store) -> dict:
        return {"object": "balance", "livemode": store.livemode,
                "available": [{"amount": 123456, "currency": "usd", "source_types": {"card": 123456}}],
                "pending": [{"amount": 7890, "currency": "usd", "source_types": {"card": 7890}}]}

    # --- limits, faults, counters (called by the server)
    def latency(self) -> float:
        if not (self.latency_ms or self.jitter_ms):
            return 0.0
        with self._lock:
            return jitter(self._rng, self.latency_ms, self.jitter_ms)

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
        info = self.keys.get(headers.get("Authorization", "")[7:].strip(), {})
        account = headers.get("Stripe-Account") or info.get("account", "?")
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
