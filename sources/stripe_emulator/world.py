"""A seeded, consistent Stripe business, and the changes Stripe makes to it, with their events.

`WorldBuilder.build()` creates each object type of `objects.OBJECTS` that has a generator, in
table order, as many as its share of `scale`; then plays the last 30 days of activity (updates,
deletions, payments, refunds, disputes, payouts, invoice finalization and payment, subscription
changes) so the events list holds every kind of event the source follows, each carrying the
object as it was right after its change. The same methods serve `Emulator.create/update/...`.
"""

from __future__ import annotations

from typing import Any

from .connect import Connect
from .objects import BY_NAME, LISTED
from .store import EVENT_RETENTION


class WorldBuilder(Connect):
    def build(self) -> None:
        for entry in LISTED:
            if not entry.generator:
                continue
            make = getattr(self, entry.generator)
            count = self.counts[entry.name]
            if entry.name == "payouts":  # each automatic payout pays out what became available before it
                for created in sorted(self.when() for _ in range(count)):
                    make(created=created)
            else:
                for _ in range(count):
                    make()
        if not self.exact:
            self.history()
        if self.store.connected:
            self.connect_profile()
            if not self.exact:
                self.connect_history()

    def existing(self, kind: str) -> list[dict]:
        if kind.startswith("recurring_"):
            _, currency, interval = kind.split("_")
            return [p for p in self.store.collections["prices"].objects.values() if p["type"] == "recurring"
                    and p["currency"] == currency and p["recurring"]["interval"] == interval]
        if kind.startswith("one_time_"):
            return [p for p in self.store.collections["prices"].objects.values() if p["type"] == "one_time"
                    and p["currency"] == kind[9:]]
        if kind in self.store.collections and kind in BY_NAME:
            return list(self.store.collections[kind].objects.values())
        return []

    # --- the last 30 days
    def history(self) -> None:
        """The last 30 days of activity on top of the built world: each kind of change the source follows,
        at its own time, as Stripe records it (so a fresh world's events hold every kind of event)."""
        r = self.rng
        lo = self.now - 29 * 86400
        rounds = max(1, min(8, sum(self.counts.values()) // 1000))  # more activity on bigger worlds, within reason

        def at() -> int:
            return r.randint(lo, self.now - 7200)

        for _ in range(rounds):
            for status in ("succeeded", "requires_payment_method", "canceled", "requires_action", "processing"):
                self.payment_intent(status=status, created=at())
            self.charge(status="failed", created=at())
            for status in ("paid", "open", "void", "uncollectible"):
                invoice = self.invoice(status=status, created=at(), collection_method="charge_automatically")
                if status == "paid":
                    self.credit_note(invoice, created=self.later(invoice, within=10 * 86400))
            self.customer(created=at())
            self.subscription(created=at(), status="active")
            self.invoiceitem(created=at())
            self.transfer(created=at(), reversals=r.choice([2, 12]))
            product = self.product(created=at())
            self.price(product, created=self.later(product, lo))
            self.coupon(created=at())
            self.tax_rate(created=at())
            self.promotion_code(created=at())
            for created in sorted(at() for _ in range(2)):
                self.payout(created=created, automatic=True)
            self._refunds(lo)
            for status in ("needs_response", "won", "lost"):
                self._dispute(lo, status)
            self._change_catalog(lo)
            self._change_customers(lo)
            self._change_subscriptions(lo)
            self._change_invoices(lo)
            self._checkout_and_radar(lo, at)
            self._billing_agreements(lo, at)
            self._issuing_and_files(lo, at)
            if fee := self.application_fee(created=at(), refunds=0):
                self.refund_fee(fee, 2, self._during(fee, lo))
                if refund := self._live("application_fee_refunds"):  # `application_fee.refund.updated`
                    self.change("application_fee_refunds", refund, self._during(refund, lo),
                                metadata={"reason": "goodwill"})

    def _issuing_and_files(self, lo: int, at: Any) -> None:
        """Cards issued and canceled, cardholders updated, authorizations held and captured, disputes filed
        and decided, files uploaded and shared."""
        holder = self.issuing_cardholder(created=at(), status="active")
        card = self.issuing_card(holder, created=self.later(holder, lo))
        self.issuing_authorization(card, created=self.later(card, lo), status="pending")
        for status in ("closed", "reversed", "declined"):
            self.issuing_authorization(card, created=self.later(card, lo), status=status)
        if held := self._live("issuing_authorizations", lambda a: a["status"] == "pending"):
            self.capture(held, self._during(held, lo))
        self.issuing_dispute(created=at(), status="won")
        if other := self._live("issuing_cardholders", lambda c: c["status"] == "active" and c["id"] != holder["id"]):
            self.update_cardholder(other, self._during(other, lo), email="cards@example.com")
        if old := self._live("issuing_cards", lambda c: c["status"] == "active" and c["id"] != card["id"]):
            self.change("issuing_cards", old, self._during(old, lo), status="canceled", cancellation_reason="lost")
        upload = self.file(created=at(), links=1)
        self.file_link(upload, self._during(upload, lo))

    def _billing_agreements(self, lo: int, at: Any) -> None:
        """Quotes finalized and accepted, schedules started and canceled, credit granted and voided, meters
        deactivated, tax ids added and removed, balances adjusted, shipping rates and product features."""
        for status in ("accepted", "draft", "canceled"):
            self.quote(status=status, created=at())
        if draft := self._live("quotes", lambda q: q["status"] == "draft"):
            self.finalize_quote(draft, self._during(draft, lo))
        for status in ("active", "not_started"):
            self.subscription_schedule(status=status, created=at())
        if waiting := self._live("subscription_schedules", lambda s: s["status"] == "not_started"):
            when = self._during(waiting, lo)
            self.change("subscription_schedules", waiting, when, ("canceled",), status="canceled", canceled_at=when)
        grant = self.credit_grant(created=at())
        if grant["created"] < self.now - 86400:
            when = self._during(grant, lo)
            self.change("credit_grants", grant, when, voided_at=when, updated=when)
        if meter := self._live("meters", lambda m: m["status"] == "active"):
            when = self._during(meter, lo)
            self.change("meters", meter, when, ("deactivated",), status="inactive", updated=when,
                        status_transitions={"deactivated_at": when})
        if customer := self._live("customers", lambda c: c["address"] is not None):
            self.tax_id(customer, created=self._during(customer, lo))
            self.adjust_balance(customer, -1000, self._during(customer, lo))
        if tax_id := self._live("tax_ids", lambda t: t["customer"] in self.store.collections["customers"].objects):
            self.delete_tax_id(tax_id, self._during(tax_id, lo))
        self.shipping_rate(created=at())
        if rate := self._live("shipping_rates", lambda r: r["active"]):  # no event: Stripe sends none for it
            self.change("shipping_rates", rate, self._during(rate, lo), active=False)
        if product := self._live("products"):
            self.attach_feature(product)

    def _checkout_and_radar(self, lo: int, at: Any) -> None:
        """Sessions completing and expiring, setup intents, payment methods attached, changed and detached,
        payment links switched off, reviews closed, fraud warnings, top-ups settling."""
        for status in ("complete", "expired", "open"):
            self.checkout_session(status=status, created=at())
        self.setup_intent(created=at())
        self.topup(created=lo - 2 * 86400)  # settles within the 30 days
        if customer := self._live("customers"):
            self.payment_method(customer, at())
        if pm := self._live("payment_methods", lambda p: p["customer"] is not None):
            self.update("payment_methods", pm, self._during(pm, lo),
                        billing_details=dict(pm["billing_details"], phone="+15555550123"))
        if pm := self._live("payment_methods", lambda p: p["customer"] is not None):
            self.detach_payment_method(pm, self._during(pm, lo))
        if link := self._live("payment_links", lambda p: p["active"]):
            self.update("payment_links", link, at(), active=False)
        self.payment_link(created=at())
        if review := self._live("reviews", lambda v: v["open"]):
            self.close_review(review, self._during(review, lo))
        if charge := self._recent("charges", lo, lambda c: c["status"] == "succeeded" and c["captured"]
                                  and not c["refunded"] and not c["disputed"]):
            self.early_fraud_warning(charge, created=self._during(charge, lo))

    def _recent(self, kind: str, lo: int, test: Any = None) -> dict | None:
        """One of the objects of a kind made in the last 90 days (a refund or dispute comes soon after)."""
        key = f"_recent_{kind}"
        if key not in self.made:
            self.made[key] = [o for o in self.made.get(kind, []) if o["created"] >= lo - 60 * 86400]
        return self.pick(key, test)

    def _refunds(self, lo: int) -> None:
        def refundable(c: dict) -> bool:
            return c["status"] == "succeeded" and c["captured"] and c["amount_refunded"] < c["amount"]

        if charge := self._recent("charges", lo, refundable):
            self.refund(charge, created=self._during(charge, lo))
        if charge := self._recent("charges", lo, refundable):  # a card refund settling days later: `refund.updated`
            if refund := self.refund(charge, created=self._during(charge, lo), status="pending"):
                self.change("refunds", refund, self.later(refund, within=5 * 86400), status="succeeded")

    def _dispute(self, lo: int, status: str) -> None:
        if charge := self._recent("charges", lo, lambda c: c["status"] == "succeeded" and not c["disputed"]
                                  and c["captured"]):
            self.dispute(charge, created=self.later(charge, lo, within=10 * 86400), status=status)

    def _during(self, obj: dict, lo: int) -> int:
        """A moment of the last 30 days after the object's latest change."""
        return self.later(obj, lo, within=EVENT_RETENTION)

    def _live(self, kind: str, test: Any = None) -> dict | None:
        """A random object of a kind still in its list (passing `test`)."""
        objects = self.store.collections[kind].objects
        return self.pick(kind, lambda o: o["id"] in objects and (test is None or test(o)))

    def _change_catalog(self, lo: int) -> None:
        r = self.rng
        if product := self._live("products"):
            self.update("products", product, self._during(product, lo), name=product["name"] + " Plus",
                        description="Now with more")
        if price := self._live("prices", lambda p: p["active"] and p["type"] == "recurring"):
            self.update("prices", price, self._during(price, lo), active=False)  # archived: its plan says so too
        if promo := self._live("promotion_codes", lambda p: p["active"]):
            self.update("promotion_codes", promo, self._during(promo, lo), active=False)
        if rate := self._live("tax_rates"):
            self.update("tax_rates", rate, self._during(rate, lo), display_name=rate["display_name"] + " (standard)")
        if coupon := self._live("coupons"):
            self.update("coupons", coupon, self._during(coupon, lo), metadata={"campaign": "spring"})
        if charge := self._recent("charges", lo):
            self.update("charges", charge, self._during(charge, lo), description=f"Order #{r.randint(100, 999)}",
                        metadata={"order": "web"})
        if transfer := self._live("transfers"):
            self.update("transfers", transfer, self._during(transfer, lo), description="Seller payout (adjusted)")
        for kind, make in (("products", self.product), ("plans", self.plan), ("coupons", self.coupon)):
            doomed = make(created=r.randint(lo, self.now - 7200))  # made in error, deleted the same month
            self.delete(kind, doomed, self._during(doomed, lo))

    def _change_customers(self, lo: int) -> None:
        r = self.rng
        if customer := self._live("customers"):
            self.update("customers", customer, self._during(customer, lo), email=f"billing+{r.randint(1, 999)}"
                        "@example.com", metadata={**customer["metadata"], "segment": "smb"})
        gone = self.customer(created=r.randint(lo, self.now - 7200))
        self.delete("customers", gone, self._during(gone, lo))
        pending = self.invoiceitem(created=r.randint(lo, self.now - 7200))
        self.delete("invoiceitems", pending, self._during(pending, lo))

    def _change_subscriptions(self, lo: int) -> None:
        if sub := self._live("subscriptions", lambda s: s["status"] in ("active", "trialing")):
            self.cancel_subscription(sub, self._during(sub, lo))
        if sub := self._live("subscriptions", lambda s: s["status"] == "active"
                             and len(self.store.item_ids("subscription_items", s["id"])) <= 18):
            self.add_subscription_items(sub, self.rng.choice([1, 2]), self._during(sub, lo))
        if sub := self._live("subscriptions", lambda s: s["status"] == "trialing"):
            self.change("subscriptions", sub, self._during(sub, lo), status="active")  # the trial ended

    def _change_invoices(self, lo: int) -> None:
        if invoice := self._live("invoices", lambda i: i["status"] == "open"):
            self.pay(invoice, self._during(invoice, lo))
        if invoice := self._live("invoices", lambda i: i["status"] == "open"):
            self.void_invoice(invoice, self._during(invoice, lo))
        draft = self.invoice(status="draft", created=self.rng.randint(lo, self.now - 7200))
        self.finalize_invoice(draft, self._during(draft, lo))
        draft = self.invoice(status="draft", created=self.rng.randint(lo, self.now - 7200))
        self.delete("invoices", draft, self._during(draft, lo))
        if note := self._live("credit_notes", lambda c: c["status"] == "issued"):
            self.change("credit_notes", note, self._during(note, lo), memo="Goodwill credit")
        note = self._live("credit_notes", lambda c: c["status"] == "issued" and c["type"] == "pre_payment")
        if note is None and (invoice := self._live("invoices", lambda i: i["status"] == "open"
                                                   and self._creditable(i))):
            note = self.credit_note(invoice, created=self._during(invoice, lo))  # on an open invoice: pre-payment
        if note:
            when = self._during(note, lo)
            self.change("credit_notes", note, when, ("updated", "voided"), status="void", voided_at=when)

    # --- changes, as Stripe makes them (also `Emulator.update/delete/cancel_subscription/...`)
    def update(self, resource: str, obj: dict, at: int, **fields: Any) -> dict:
        """`<prefix>.updated`; a recurring price and its plan are one object at Stripe: both announce it."""
        if resource == "products":
            fields.setdefault("updated", at)
        if resource == "invoiceitems":
            return self._update_invoiceitem(obj, at, **fields)
        if resource == "issuing_cardholders":
            return self.update_cardholder(obj, at, **fields)
        changed = self.change(resource, obj, at, **fields)
        twin = {"prices": "plans", "plans": "prices"}.get(resource)
        if twin and obj["id"] in self.store.collections[twin].objects:
            mirrored = {k: v for k, v in fields.items() if k in ("active", "metadata", "nickname")}
            if mirrored:
                self.change(twin, self.store.get(twin, obj["id"]), at, **mirrored)
        if twin:
            self._refresh_embedded_price(obj["id"])
        return changed

    def _refresh_embedded_price(self, price_id: str) -> None:
        """Subscription items carry their price (and its plan view) whole, as Stripe renders it when
        read; Stripe announces the price's change only (no `customer.subscription.updated`)."""
        if price_id not in self.store.collections["prices"].objects:
            return
        price = self.store.get("prices", price_id)
        for item in list(self.store.collections["subscription_items"].objects.values()):
            if item["price"]["id"] == price_id:
                self.store.patch("subscription_items", item["id"], price=dict(price), plan=self.plan_of(price))

    def delete(self, resource: str, obj: dict, at: int) -> dict:
        """`<prefix>.deleted` carrying the object as it was; a deleted customer's subscriptions end first."""
        if resource == "invoices" and self.store.get("invoices", obj["id"])["status"] != "draft":
            raise ValueError("Stripe only deletes draft invoices")
        if resource == "invoiceitems" and (draft := self._draft_of(obj)) is not None:
            return self._delete_draft_invoiceitem(draft, obj, at)
        if resource == "customers":
            for sub_id in self.store.related("customer_subscriptions", obj["id"]):
                sub = self.store.get("subscriptions", sub_id)
                if sub["status"] not in ("canceled", "incomplete_expired"):
                    self.cancel_subscription(sub, at)
        self.touched[obj["id"]] = at
        twin = {"prices": "plans", "plans": "prices"}.get(resource)
        self.gone.add(obj["id"])  # nothing picks a deleted object again
        snapshot = self.store.delete(resource, obj["id"], when=at if self.recent(at) else None)
        if twin and obj["id"] in self.store.collections[twin].objects:
            self.store.delete(twin, obj["id"], when=at if self.recent(at) else None)
        return snapshot

    def _draft_of(self, item: dict) -> dict | None:
        """The draft invoice an invoice item is on (None when pending). Stripe changes and deletes an
        invoice item only before its invoice is finalized."""
        invoice_id = self.store.get("invoiceitems", item["id"])["invoice"]
        if invoice_id is None:
            return None
        invoice = self.store.get("invoices", invoice_id)
        if invoice["status"] != "draft":
            raise ValueError(f"invoice item {item['id']} is on {invoice['status']} invoice {invoice_id}")
        return invoice

    def _line_of(self, invoice: dict, item: dict) -> dict | None:
        for line in self.store.children("invoice_line_items", invoice["id"]):
            if ((line["parent"] or {}).get("invoice_item_details") or {}).get("invoice_item") == item["id"]:
                return line
        return None

    def _update_invoiceitem(self, item: dict, at: int, **fields: Any) -> dict:
        """No event for the item (the pinned version has no `invoiceitem.updated`); on a draft invoice its
        line follows, and the invoice announces the change (`invoice.updated`)."""
        draft = self._draft_of(item)
        before = self.snapshot_if_recent("invoices", draft, at) if draft else None
        changed = self.change("invoiceitems", item, at, **fields)
        if draft is not None and (line := self._line_of(draft, item)) is not None:
            mirrored = {k: v for k, v in fields.items() if k in ("description", "metadata")}
            if mirrored:
                self.store.patch("invoice_line_items", line["id"], **mirrored)
                self.touch_sub_list("invoices", draft, at, before, "lines")
        return changed

    def _delete_draft_invoiceitem(self, draft: dict, item: dict, at: int) -> dict:
        """`invoiceitem.deleted`, its line leaves the draft, then `invoice.updated`."""
        before = self.snapshot_if_recent("invoices", draft, at)
        if (line := self._line_of(draft, item)) is not None:
            self.store.remove_items("invoice_line_items", draft["id"], [line["id"]])
        self.touched[item["id"]] = at
        self.gone.add(item["id"])
        snapshot = self.store.delete("invoiceitems", item["id"], when=at if self.recent(at) else None)
        self.total_invoice(draft)
        self.touch_sub_list("invoices", draft, at, before, "lines")
        return snapshot

    def cancel_subscription(self, sub: dict, at: int) -> dict:
        """Cancel now: `customer.subscription.deleted` (the subscription stays listed with `status=all`)."""
        return self.change("subscriptions", sub, at, ("deleted",), status="canceled", canceled_at=at, ended_at=at,
                           cancel_at_period_end=False,
                           cancellation_details={"comment": None, "feedback": None, "feedback_option": None,
                                                 "reason": "cancellation_requested"})

    def add_subscription_items(self, sub: dict, n: int, at: int) -> dict:
        """New items (each with its own recurring price): `customer.subscription.updated` with the old `items`."""
        sub = self.store.get("subscriptions", sub["id"])
        items = self.store.children("subscription_items", sub["id"])
        if len(items) + n > 20:
            raise ValueError("Stripe allows at most 20 items on a subscription")
        interval = items[0]["price"]["recurring"]["interval"] if items else "month"
        before = self.snapshot_if_recent("subscriptions", sub, at)
        have = {item["price"]["id"] for item in items}
        fresh = [p for p in self.recurring_prices(sub["currency"], interval, n + len(have), at)
                 if p["id"] not in have][:n]
        while len(fresh) < n:
            fresh.append(self.price(recurring=True, currency=sub["currency"], interval=interval,
                                    created=self.before(at)))
        for price in fresh:
            self.subscription_item(sub, price, at)
        self.touch_sub_list("subscriptions", sub, at, before, "items")
        return self.store.snapshot("subscriptions", sub["id"])

    def remove_subscription_item(self, item_id: str, at: int) -> dict:
        item = self.store.get("subscription_items", item_id)
        sub = self.store.get("subscriptions", item["subscription"])
        before = self.snapshot_if_recent("subscriptions", sub, at)
        self.store.remove_items("subscription_items", sub["id"], [item_id])
        self.touch_sub_list("subscriptions", sub, at, before, "items")
        return self.store.snapshot("subscriptions", sub["id"])

    def add_invoice_lines(self, invoice: dict, n: int, at: int) -> dict:
        """Invoice items added to a draft: `invoiceitem.created` each, then `invoice.updated`."""
        invoice = self.store.get("invoices", invoice["id"])
        if invoice["status"] != "draft":
            raise ValueError("lines can only be added to draft invoices")
        before = self.snapshot_if_recent("invoices", invoice, at)
        customer = self.store.get("customers", invoice["customer"])
        for _ in range(n):
            ii = self.invoiceitem(customer, invoice, created=at)
            self.add("invoice_line_items", self._line_for_invoiceitem(invoice, ii), parent=invoice["id"])
        self.total_invoice(invoice)
        self.touch_sub_list("invoices", invoice, at, before, "lines")
        return self.store.snapshot("invoices", invoice["id"])

    def remove_invoice_lines(self, invoice: dict, at: int) -> dict:
        """Every invoice item of a draft deleted: `invoiceitem.deleted` each, then `invoice.updated`."""
        invoice = self.store.get("invoices", invoice["id"])
        if invoice["status"] != "draft":
            raise ValueError("lines can only be removed from draft invoices")
        before = self.snapshot_if_recent("invoices", invoice, at)
        for line in self.store.remove_items("invoice_line_items", invoice["id"]):
            details = (line["parent"] or {}).get("invoice_item_details")
            if details and details["invoice_item"] in self.store.collections["invoiceitems"].objects:
                self.store.delete("invoiceitems", details["invoice_item"], when=at)
        self.total_invoice(invoice)
        self.touch_sub_list("invoices", invoice, at, before, "lines")
        return self.store.snapshot("invoices", invoice["id"])
