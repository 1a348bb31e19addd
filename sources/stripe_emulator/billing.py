"""Billing: subscriptions and their items, invoices with their lines, invoice items, credit notes,
and the lifecycle Stripe runs on them (finalize, pay, void, mark uncollectible) with its events.

Consistency Stripe guarantees and tests rely on: an invoice's totals add up from its lines; a line
from a subscription names the real subscription item, one from an invoice item the real invoice
item; a subscription item's `plan` mirrors its `price` (every recurring price is also a plan, with
the same id); a paid invoice has a payment intent, a charge and an invoice payment.
"""

from __future__ import annotations

from typing import Any

from .catalog import Catalog
from .objects import EMBED_LIMIT

SUBSCRIPTION_STATUSES = ("active",) * 9 + ("trialing", "trialing", "past_due", "canceled", "canceled", "canceled",
                                           "unpaid", "incomplete", "incomplete_expired", "paused")
INVOICE_STATUSES = ("paid",) * 6 + ("open", "open", "draft", "draft", "void", "uncollectible")


class Billing(Catalog):
    # --- subscriptions
    def recurring_prices(self, currency: str, interval: str, n: int, created: int) -> list[dict]:
        """`n` distinct recurring prices in one currency and interval (Stripe refuses mixing them or
        repeating a price in a subscription); makes more for the catalog when it has too few."""
        kind = f"recurring_{currency}_{interval}"
        if kind not in self.made:
            self.made[kind] = self.existing(kind)
        pool = [p for p in self.rng.sample(self.made[kind], min(len(self.made[kind]), 3 * n + 10))
                if p["active"] and p["created"] <= created and p["id"] not in self.gone]
        pool = list({p["id"]: p for p in pool}.values())
        while len(pool) < n:
            pool.append(self.price(recurring=True, currency=currency, interval=interval,
                                   created=self.before(created)))
        return pool[:n]

    def subscription(self, customer: dict | None = None, items: int | None = None, status: str | None = None,
                     created: int | None = None, price: dict | None = None, **fields: Any) -> dict:
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or self.when(customer["created"])
        status = status or self.vary("subscriptions", SUBSCRIPTION_STATUSES)
        currency = price["currency"] if price else customer["currency"] or "usd"
        if customer["currency"] is None:
            customer["currency"] = currency
            self.store.patch("customers", customer["id"], currency=currency)
        interval = price["recurring"]["interval"] if price else r.choice(["month", "month", "month", "year"])
        n = items or self.big("subscriptions", 11, 20) or r.choice([1, 1, 1, 1, 2, 2, 3, 4])
        prices = [price] if price else []
        prices += self.recurring_prices(currency, interval, n - len(prices), created)
        trial = status == "trialing" or (status != "incomplete" and r.random() < 0.1)
        trial_end = created + 14 * 86400 if trial else None
        send_invoice = r.random() < 0.15
        pm = customer["invoice_settings"]["default_payment_method"]
        sub_id = self.ids.new("sub")
        discounts = []
        coupon = self.pick("coupons") if r.random() < 0.15 else None
        if coupon:
            discounts.append(self.discount(coupon, customer, created, subscription=sub_id)["id"])
        tax_rate = self.pick("tax_rates", lambda t: t["active"]) if r.random() < 0.2 else None
        sub = {
            "id": sub_id, "object": "subscription", "application": None, "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": r.random() < 0.1, "liability": None},
            "billing_cycle_anchor": trial_end or created, "billing_cycle_anchor_config": None,
            "billing_mode": {"flexible": {"proration_discounts": "included"}, "type": "flexible",
                             "updated_at": created} if r.random() < 0.4 else {"flexible": None, "type": "classic",
                                                                               "updated_at": None},
            "billing_schedules": [], "billing_thresholds": None, "cancel_at": None, "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "feedback_option": None, "reason": None},
            "collection_method": "send_invoice" if send_invoice else "charge_automatically", "created": created,
            "currency": currency, "customer": customer["id"], "customer_account": customer["customer_account"],
            "days_until_due": 30 if send_invoice else None, "default_payment_method": pm, "default_source": None,
            "default_tax_rates": [self.store.get("tax_rates", tax_rate["id"])] if tax_rate else [],
            "description": r.choice([None, None, "Team plan"]), "discounts": discounts, "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}}, "latest_invoice": None,
            "managed_payments": None,
            "livemode": self.livemode, "metadata": {}, "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None, "pending_setup_intent": None, "pending_update": None,
            "schedule": None, "start_date": created, "status": "incomplete" if status == "incomplete" else
            ("trialing" if trial else "active"), "test_clock": customer["test_clock"], "transfer_data": None,
            "trial_end": trial_end, "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": created if trial else None,
        }
        self.add("subscriptions", sub, fields)
        self.store.relate("customer_subscriptions", customer["id"], sub_id)
        for each in prices:
            self.subscription_item(sub, each, created)
        self.remember("subscriptions", sub)
        self.emit("customer.subscription.created", "subscriptions", sub_id, created)
        self.settle_subscription(sub, status)
        return sub

    def subscription_item(self, sub: dict, price: dict, created: int, quantity: int | None = None) -> dict:
        period = 365 * 86400 if price["recurring"]["interval"] == "year" else 30 * 86400
        start = sub["billing_cycle_anchor"]
        while start + period < min(self.now, created + 10 * period) and start + period <= self.now:
            start += period
        metered = price["recurring"]["usage_type"] == "metered"
        item = {
            "id": self.ids.new("si"), "object": "subscription_item", "billing_thresholds": None, "created": created,
            "current_period_end": start + period, "current_period_start": start, "discounts": [], "metadata": {},
            "plan": self.plan_of(price), "price": self.store.get("prices", price["id"]),
            "quantity": None if metered else (quantity or self.rng.choice([1, 1, 1, 2, 3, 5, 10])),
            "subscription": sub["id"], "tax_rates": [],
        }
        return self.add("subscription_items", item, parent=sub["id"])

    def settle_subscription(self, sub: dict, status: str) -> None:
        """Move a new subscription to its status, the way time would have (with Stripe's events)."""
        r = self.rng
        if status in ("past_due", "unpaid", "paused"):
            self.change("subscriptions", sub, self.later(sub, within=120 * 86400), status=status,
                        pause_collection={"behavior": "keep_as_draft", "resumes_at": None} if status == "paused"
                        else None)
        elif status == "incomplete_expired":
            self.change("subscriptions", sub, self.later(sub, sub["created"] + 82800), status="incomplete_expired")
        elif status == "canceled":
            when = self.later(sub, within=365 * 86400)
            reason = r.choice(["cancellation_requested", "cancellation_requested", "payment_failed"])
            self.change("subscriptions", sub, when, ("deleted",), status="canceled", canceled_at=when, ended_at=when,
                        cancellation_details={"comment": None, "feedback": r.choice([None, "too_expensive", "unused"]),
                                              "feedback_option": None, "reason": reason})
        elif status == "active" and not self.instant and r.random() < 0.08:  # set to end, some time after
            when = self.later(sub)
            self.change("subscriptions", sub, when, cancel_at_period_end=True,
                        cancel_at=max(i["current_period_end"] for i in self.store.children("subscription_items",
                                                                                             sub["id"])))

    def big(self, kind: str, low: int, high: int) -> int | None:
        """A count beyond the 10 Stripe embeds for the first few parents of a kind, then for some."""
        done = self.made.setdefault(f"_big_{kind}", [])
        if len(done) < 3 or self.rng.random() < 0.06:
            done.append(1)
            return self.rng.randint(low, high)
        return None

    # --- invoices
    def invoice(self, customer: dict | None = None, subscription: dict | None = None, status: str | None = None,
                created: int | None = None, lines: int | None = None, **fields: Any) -> dict:
        """An invoice (a subscription's, or one-off from invoice items), taken through its lifecycle to `status`."""
        r = self.rng
        if subscription is None and customer is None and r.random() < 0.6:
            subscription = self.pick("subscriptions", lambda s: s["status"] not in ("incomplete_expired",))
        if subscription is not None:
            customer = self.store.get("customers", subscription["customer"])
        customer = customer or self.pick_customer()
        created = created or self.when((subscription or customer)["created"])
        currency = subscription["currency"] if subscription else customer["currency"] or "usd"
        status = status or self.vary("invoices", INVOICE_STATUSES)
        invoice_id = self.ids.new("in")
        send_invoice = (subscription or {}).get("collection_method") == "send_invoice" or (
            subscription is None and r.random() < 0.3)
        items = self.store.children("subscription_items", subscription["id"]) if subscription else []
        invoice = {
            "id": invoice_id, "object": "invoice", "account_country": "US", "account_name": self.account_name,
            "account_tax_ids": None, "amount_due": 0, "amount_overpaid": 0, "amount_paid": 0, "amount_remaining": 0,
            "amount_shipping": 0, "application": None, "attempt_count": 0, "attempted": False,
            "auto_advance": status != "draft" or r.random() < 0.5,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "provider": None,
                              "status": None},
            "automatically_finalizes_at": created + 3600 if subscription else None,
            "billing_reason": (r.choice(["subscription_cycle", "subscription_cycle", "subscription_create",
                                         "subscription_update"]) if subscription else "manual"),
            "collection_method": "send_invoice" if send_invoice else "charge_automatically", "created": created,
            "currency": currency, "custom_fields": None, "customer": customer["id"],
            "customer_account": customer["customer_account"], "customer_address": customer["address"],
            "customer_email": customer["email"], "customer_name": customer["name"], "customer_phone": customer["phone"],
            "customer_shipping": customer["shipping"], "customer_tax_exempt": customer["tax_exempt"],
            "customer_tax_ids": [{"type": t["type"], "value": t["value"]} for t in
                                 (self.store.get("tax_ids", i) for i in self.store.related("customer_tax_ids",
                                                                                             customer["id"]))],
            "default_payment_method": None, "default_source": None,
            "default_tax_rates": [], "description": r.choice([None, None, "Thanks for your business!"]),
            "discounts": [], "due_date": None, "effective_at": None, "ending_balance": None,
            "footer": None, "from_invoice": None, "hosted_invoice_url": None, "invoice_pdf": None,
            "issuer": {"type": "self"}, "last_finalization_error": None, "latest_revision": None,
            "livemode": self.livemode, "metadata": {}, "next_payment_attempt": None, "number": None,
            "on_behalf_of": None,
            "parent": {"quote_details": None, "subscription_details": {"metadata": subscription["metadata"],
                                                                       "subscription": subscription["id"]},
                       "type": "subscription_details"} if subscription else None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": created, "period_start": created - 30 * 86400 if subscription else created,
            "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0, "receipt_number": None,
            "rendering": {"amount_tax_display": None, "pdf": {"page_size": "auto"}, "template": None,
                          "template_version": None},
            "shipping_cost": None, "shipping_details": None, "starting_balance": 0, "statement_descriptor": None,
            "status": "draft",
            "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None,
                                   "voided_at": None},
            "subtotal": 0, "subtotal_excluding_tax": 0, "test_clock": customer["test_clock"], "total": 0,
            "total_discount_amounts": [], "total_excluding_tax": 0, "total_pretax_credit_amounts": [],
            "total_taxes": [], "webhooks_delivered_at": created,
        }
        if r.random() < 0.12 and self.made.get("coupons"):
            coupon = self.rng.choice(self.made["coupons"])
            invoice["discounts"] = [self.discount(coupon, customer, created, invoice=invoice_id)["id"]]
        rate = self.pick("tax_rates", lambda t: t["active"] and not t["inclusive"]) if r.random() < 0.2 else None
        if rate:
            invoice["default_tax_rates"] = [self.store.get("tax_rates", rate["id"])]
        self.add("invoices", invoice, fields)
        new_lines = []
        for item in items:  # one line per subscription item for the period
            new_lines.append(self._line_for_item(invoice, subscription, item))
        if subscription and invoice["billing_reason"] == "subscription_update" and items:
            for item in items[:2]:  # prorations come as invoice items of the subscription
                ii = self.invoiceitem(customer, invoice, item["price"], proration=True, subscription=subscription,
                                      subscription_item=item, created=created)
                new_lines.append(self._line_for_invoiceitem(invoice, ii))
        if not subscription:
            n = lines or self.big("invoices", 11, 40) or r.randint(1, 6)
            for _ in range(n):
                price = self.pick(f"one_time_{currency}") or \
                    self.price(recurring=False, currency=currency, created=self.before(created))
                ii = self.invoiceitem(customer, invoice, price, created=created)
                new_lines.append(self._line_for_invoiceitem(invoice, ii))
        for line in new_lines:
            self.add("invoice_line_items", line, parent=invoice_id)
        self.total_invoice(invoice)
        self.remember("invoices", invoice)
        if len(new_lines) > EMBED_LIMIT:
            self.remember("big_invoices", invoice)
        if subscription and created >= self.touched.get(subscription["id"], subscription["created"]):
            self.change("subscriptions", subscription, created, latest_invoice=invoice_id)
        self.emit("invoice.created", "invoices", invoice_id, created)
        self.advance_invoice(invoice, status)
        return invoice

    def _line_for_item(self, invoice: dict, sub: dict, item: dict) -> dict:
        price = item["price"]
        quantity = item["quantity"] if item["quantity"] is not None else self.rng.randint(0, 200)  # metered usage
        length = 365 * 86400 if price["recurring"]["interval"] == "year" else 30 * 86400
        return self._line(invoice, price, quantity, {
            "invoice_item_details": None,
            "subscription_item_details": {"invoice_item": None, "proration": False, "proration_details":
                                          {"credited_items": None}, "subscription": sub["id"],
                                          "subscription_item": item["id"]},
            "type": "subscription_item_details"},
            (invoice["created"], invoice["created"] + length), sub["id"])

    def _line_for_invoiceitem(self, invoice: dict, ii: dict) -> dict:
        price = self.store.get("prices", ii["pricing"]["price_details"]["price"])
        sub = (ii["parent"] or {}).get("subscription_details", {}) or {}
        line = self._line(invoice, price, ii["quantity"], {
            "invoice_item_details": {"invoice_item": ii["id"], "proration": ii["proration"],
                                     "proration_details": {"credited_items": None},
                                     "subscription": sub.get("subscription")},
            "subscription_item_details": None, "type": "invoice_item_details"},
            (ii["period"]["start"], ii["period"]["end"]), sub.get("subscription"), amount=ii["amount"])
        line["description"] = ii["description"]
        return line

    def _line(self, invoice: dict, price: dict, quantity: int, parent: dict, period: tuple[int, int],
              subscription: str | None, amount: int | None = None) -> dict:
        amount = self.amount_for(price, quantity) if amount is None else amount
        product = self.store.get("products", price["product"]) if price["product"] in \
            self.store.collections["products"].objects else {"name": "Item"}
        return {
            "id": self.ids.new("il"), "object": "line_item", "amount": amount, "currency": invoice["currency"],
            "description": f"{quantity} × {product['name']}", "discount_amounts": [], "discountable": True,
            "discounts": [], "invoice": invoice["id"], "livemode": self.livemode, "metadata": {}, "parent": parent,
            "period": {"end": period[1], "start": period[0]}, "pretax_credit_amounts": [],
            "pricing": {"price_details": {"price": price["id"], "product": price["product"]}, "type": "price_details",
                        "unit_amount_decimal": price["unit_amount_decimal"]},
            "quantity": quantity, "quantity_decimal": str(quantity), "subscription": subscription,
            "subtotal": amount, "taxes": [],
        }

    def amount_for(self, price: dict, quantity: int) -> int:
        """What a quantity costs: per unit (with transform_quantity), or by graduated/volume tiers."""
        if price["billing_scheme"] == "per_unit":
            units = quantity
            transform = price["transform_quantity"]
            if transform:
                units = -(-quantity // transform["divide_by"]) if transform["round"] == "up" else \
                    quantity // transform["divide_by"]
            return (price["unit_amount"] or 0) * units
        tiers = self.store.extra(price["id"], "tiers") or []
        if price["tiers_mode"] == "volume":
            tier = next((t for t in tiers if t["up_to"] is None or quantity <= t["up_to"]), tiers[-1])
            return (tier["unit_amount"] or 0) * quantity + (tier["flat_amount"] or 0)
        total, below = 0, 0
        for tier in tiers:  # graduated: each tier prices the units that fall in it
            top = tier["up_to"] if tier["up_to"] is not None else quantity
            units = max(0, min(quantity, top) - below)
            if units:
                total += (tier["unit_amount"] or 0) * units + (tier["flat_amount"] or 0)
            below = top
            if quantity <= top:
                break
        return total

    def total_invoice(self, invoice: dict) -> dict:
        """Discounts and taxes on each line, and the invoice totals they add up to."""
        inv_id = invoice["id"]
        discount = self.store.get("discounts", invoice["discounts"][0]) if invoice["discounts"] else None
        coupon = self.store.get("coupons", discount["source"]["coupon"]) if discount and \
            discount["source"]["coupon"] in self.store.collections["coupons"].objects else None
        rate = invoice["default_tax_rates"][0] if invoice["default_tax_rates"] else None
        subtotal = discount_total = tax_total = taxable_total = 0
        lines = self.store.children("invoice_line_items", inv_id)
        for line in lines:
            off = 0
            if coupon and coupon["percent_off"]:
                off = int(line["amount"] * coupon["percent_off"] / 100)
            changes: dict[str, Any] = {}
            if discount:
                changes["discount_amounts"] = [{"amount": off, "discount": discount["id"]}]
                changes["discounts"] = [discount["id"]]
            taxable = line["amount"] - off
            if rate:
                tax = round(taxable * rate["percentage"] / 100)
                changes["taxes"] = [{"amount": tax, "tax_behavior": "exclusive",
                                     "tax_rate_details": {"tax_rate": rate["id"]},
                                     "taxability_reason": "standard_rated", "taxable_amount": taxable,
                                     "type": "tax_rate_details"}]
                tax_total += tax
                taxable_total += taxable
            if changes:
                self.store.patch("invoice_line_items", line["id"], **changes)
            subtotal += line["amount"]
            discount_total += off
        if coupon and coupon["amount_off"] and coupon["currency"] == invoice["currency"]:
            discount_total = min(subtotal, coupon["amount_off"])
        excluding = subtotal - discount_total
        total = excluding + tax_total
        totals = {"subtotal": subtotal, "subtotal_excluding_tax": subtotal, "total_excluding_tax": excluding,
                  # a credit (prorations beyond the charges) is due as nothing: it goes to the customer's balance
                  "total": total, "amount_due": max(total, 0), "amount_remaining": max(total, 0),
                  "total_discount_amounts": [{"amount": discount_total, "discount": discount["id"]}]
                  if discount else [],
                  "total_taxes": [{"amount": tax_total, "tax_behavior": "exclusive",
                                   "tax_rate_details": {"tax_rate": rate["id"]}, "taxability_reason": "standard_rated",
                                   "taxable_amount": taxable_total, "type": "tax_rate_details"}] if rate else []}
        invoice.update(totals)
        return self.store.patch("invoices", inv_id, **totals)

    def invoiceitem(self, customer: dict | None = None, invoice: dict | None = None, price: dict | None = None,
                    proration: bool = False, subscription: dict | None = None, subscription_item: dict | None = None,
                    created: int | None = None, quantity: int | None = None, **fields: Any) -> dict:
        """An invoice item: pending (no invoice yet) or one of an invoice's lines."""
        r = self.rng
        customer = customer or (self.store.get("customers", invoice["customer"]) if invoice else self.pick_customer())
        currency = invoice["currency"] if invoice else customer["currency"] or "usd"
        price = price or self.pick(f"one_time_{currency}") or self.price(recurring=False, currency=currency)
        date = created or self.when(max(customer["created"], price["created"]))
        quantity = quantity or r.randint(1, 3)
        amount = self.amount_for(price, quantity)
        if proration:
            amount = -amount // 2 if r.random() < 0.5 else amount // 3  # credit for unused time, or a top-up
        item = {
            "id": self.ids.new("ii"), "object": "invoiceitem", "amount": amount, "currency": currency,
            "customer": customer["id"], "customer_account": customer["customer_account"], "date": date,
            "description": (f"Remaining time on {quantity} × item" if proration else r.choice(
                ["One-off item", "Setup fee", "Consulting hours", "Hardware"])),
            "discountable": not proration, "discounts": [], "invoice": invoice["id"] if invoice else None,
            "livemode": self.livemode, "metadata": {}, "net_amount": amount,
            "parent": {"subscription_details": {"subscription": subscription["id"],
                                                "subscription_item": subscription_item["id"] if subscription_item
                                                else None},
                       "type": "subscription_details"} if subscription else None,
            "period": {"end": date + (30 * 86400 if proration else 0), "start": date},
            "pricing": {"price_details": {"price": price["id"], "product": price["product"]}, "type": "price_details",
                        "unit_amount_decimal": price["unit_amount_decimal"]},
            "proration": proration, "quantity": quantity, "quantity_decimal": str(quantity),
            "tax_rates": [], "test_clock": customer["test_clock"],
        }
        self.add("invoiceitems", item, fields)
        self.remember("invoiceitems", item)
        self.emit("invoiceitem.created", "invoiceitems", item["id"], date)
        return item

    # --- the invoice lifecycle (also what `Emulator.pay_invoice` & co. run)
    def advance_invoice(self, invoice: dict, status: str, at: int | None = None) -> dict:
        """Take a draft through finalization to `status`, each step at its own time with its events."""
        if status == "draft":
            return invoice
        self.finalize_invoice(invoice, at)
        if self.store.get("invoices", invoice["id"])["status"] == "paid":  # nothing was due
            return invoice
        if status == "paid":
            self.pay(invoice, at)
        elif status == "void":
            self.void_invoice(invoice, at)
        elif status == "uncollectible":
            self.mark_uncollectible(invoice, at)
        elif status == "open" and invoice["collection_method"] == "charge_automatically" and invoice["amount_due"]:
            self.fail_payment(invoice, at)
        return invoice

    def finalize_invoice(self, invoice: dict, at: int | None = None) -> dict:
        at = at or self.later(invoice, invoice["created"] + 3600 if invoice["parent"] else None)
        customer = self.store.get("customers", invoice["customer"])
        number = f"{customer['invoice_prefix']}-{self.rng.randint(1, 9999):04d}"
        fields: dict[str, Any] = {
            "status": "open", "number": number, "effective_at": at, "ending_balance": min(invoice["total"], 0),
            "auto_advance": True,
            "automatically_finalizes_at": None,
            "hosted_invoice_url": f"https://invoice.stripe.com/i/{self.store.account_id}/test_{invoice['id']}",
            "invoice_pdf": f"https://pay.stripe.com/invoice/{self.store.account_id}/test_{invoice['id']}/pdf",
            "status_transitions": dict(invoice["status_transitions"], finalized_at=at),
        }
        if invoice["collection_method"] == "send_invoice":
            fields["due_date"] = at + 30 * 86400
        if invoice["amount_due"] == 0:  # nothing to collect: paid on finalization
            fields.update(status="paid", status_transitions=dict(fields["status_transitions"], paid_at=at))
            return self.change("invoices", invoice, at, ("updated", "finalized", "paid"), **fields)
        return self.change("invoices", invoice, at, ("updated", "finalized"), **fields)

    def pay(self, invoice: dict, at: int | None = None) -> dict:
        """Collect an open invoice: a payment intent and charge, an invoice payment, then the invoice's events."""
        invoice = self.store.get("invoices", invoice["id"])
        at = at or self.later(invoice, invoice["status_transitions"]["finalized_at"])
        customer = self.store.get("customers", invoice["customer"])
        due = invoice["amount_remaining"]
        pi = self.payment_intent(customer, amount=due, currency=invoice["currency"], status="succeeded", created=at,
                                 description=f"Payment for Invoice {invoice['number']}")
        pi = self.store.get("payment_intents", pi["id"])
        self.store.set_extra(pi["id"], invoice=invoice["id"])  # what 2022-11-15 shows as `payment_intent.invoice`
        payment = {"id": self.ids.new("inpay"), "object": "invoice_payment", "amount_paid": due,
                   "amount_requested": due, "created": at, "currency": invoice["currency"], "invoice": invoice["id"],
                   "is_default": True, "livemode": self.livemode,
                   "payment": {"payment_intent": pi["id"], "type": "payment_intent"},
                   "status": "paid", "status_transitions": {"canceled_at": None, "paid_at": at}}
        self._cancel_open_payments(invoice, at)
        self.add("invoice_payments", payment)
        self.store.relate("invoice_payments", invoice["id"], payment["id"])
        self.emit("invoice_payment.paid", "invoice_payments", payment["id"], at)
        return self.change("invoices", invoice, at, ("updated", "paid", "payment_succeeded"), status="paid",
                           amount_paid=invoice["amount_paid"] + due, amount_remaining=0, attempted=True,
                           attempt_count=invoice["attempt_count"] + 1, auto_advance=False,
                           next_payment_attempt=None,
                           status_transitions=dict(invoice["status_transitions"], paid_at=at))

    def _cancel_open_payments(self, invoice: dict, at: int) -> None:
        """A failed attempt's payment ends when the invoice is paid otherwise, voided or written off."""
        for earlier in self.store.related_objects("invoice_payments", invoice["id"]):
            if earlier["status"] == "open":
                self.store.patch("invoice_payments", earlier["id"], status="canceled", is_default=False,
                                 status_transitions=dict(earlier["status_transitions"], canceled_at=at))

    def fail_payment(self, invoice: dict, at: int | None = None) -> dict:
        invoice = self.store.get("invoices", invoice["id"])
        at = at or self.later(invoice)
        customer = self.store.get("customers", invoice["customer"])
        pi = self.payment_intent(customer, amount=invoice["amount_remaining"], currency=invoice["currency"],
                                 status="requires_payment_method", created=at,
                                 description=f"Payment for Invoice {invoice['number']}")
        self.store.set_extra(pi["id"], invoice=invoice["id"])
        if not self.store.related("invoice_payments", invoice["id"]):  # the attempt's payment, still open
            payment = {"id": self.ids.new("inpay"), "object": "invoice_payment", "amount_paid": None,
                       "amount_requested": invoice["amount_remaining"], "created": at, "currency": invoice["currency"],
                       "invoice": invoice["id"], "is_default": True, "livemode": self.livemode,
                       "payment": {"payment_intent": pi["id"], "type": "payment_intent"}, "status": "open",
                       "status_transitions": {"canceled_at": None, "paid_at": None}}
            self.add("invoice_payments", payment)
            self.store.relate("invoice_payments", invoice["id"], payment["id"])
        return self.change("invoices", invoice, at, ("updated", "payment_failed"), attempted=True,
                           attempt_count=invoice["attempt_count"] + 1, next_payment_attempt=at + 3 * 86400)

    def void_invoice(self, invoice: dict, at: int | None = None) -> dict:
        invoice = self.store.get("invoices", invoice["id"])
        at = at or self.later(invoice)
        self._cancel_open_payments(invoice, at)
        return self.change("invoices", invoice, at, ("updated", "voided"), status="void", amount_remaining=0,
                           auto_advance=False, next_payment_attempt=None,
                           status_transitions=dict(invoice["status_transitions"], voided_at=at))

    def mark_uncollectible(self, invoice: dict, at: int | None = None) -> dict:
        invoice = self.store.get("invoices", invoice["id"])
        at = at or self.later(invoice)
        self._cancel_open_payments(invoice, at)
        return self.change("invoices", invoice, at, ("updated", "marked_uncollectible"), status="uncollectible",
                           auto_advance=False, next_payment_attempt=None,
                           status_transitions=dict(invoice["status_transitions"], marked_uncollectible_at=at))

    # --- credit notes
    def _creditable(self, invoice: dict) -> bool:
        """Paid or open, with an amount not credited yet."""
        if invoice["status"] not in ("paid", "open") or invoice["total"] <= 0:
            return False
        now = self.store.get("invoices", invoice["id"])
        if now["status"] == "paid":
            return now["amount_paid"] - now["post_payment_credit_notes_amount"] > 0
        return now["status"] == "open" and now["amount_remaining"] > 0

    def credit_note(self, invoice: dict | None = None, created: int | None = None, lines: int | None = None,
                    **fields: Any) -> dict | None:
        """A credit note on a paid (post-payment: refunded or out of band) or open (pre-payment) invoice."""
        r = self.rng
        n_big = None
        if invoice is None:
            n_big = self.big("credit_notes", 11, 40)
            if n_big:
                invoice = self.pick("big_invoices", self._creditable)
            invoice = invoice or self.pick("invoices", self._creditable)
        if invoice is None:
            return None
        invoice = self.store.get("invoices", invoice["id"])
        created = created or self.later(invoice, invoice["status_transitions"]["finalized_at"])
        post = invoice["status"] == "paid"
        room = (invoice["amount_paid"] - invoice["post_payment_credit_notes_amount"]) if post else \
            invoice["amount_remaining"]
        if room <= 0:
            return None
        note_id = self.ids.new("cn")
        invoice_lines = self.store.children("invoice_line_items", invoice["id"])
        picked = invoice_lines if (n_big or lines) else r.sample(invoice_lines, min(len(invoice_lines),
                                                                                   r.randint(1, 3)))
        note_lines, total = [], 0
        for line in picked[: lines or len(picked)]:
            amount = min(max(0, line["amount"]) // 2, room - total)
            if amount <= 0 and not (n_big or lines):
                continue
            total += amount
            note_lines.append(self._credit_line(line, max(amount, 0)))
        if not note_lines or total <= 0:
            note_lines = [self._credit_line(None, min(500, room))]
            total = note_lines[0]["amount"]
        refund = None
        if post and r.random() < 0.6:
            pi_id = next((p["payment"]["payment_intent"] for p in
                          self.store.related_objects("invoice_payments", invoice["id"]) if p["status"] == "paid"), None)
            pi = self.store.get("payment_intents", pi_id) if pi_id else None
            if pi and pi["latest_charge"]:
                refund = self.refund(self.store.get("charges", pi["latest_charge"]), amount=total, created=created,
                                     reason="requested_by_customer")
        note = {
            "id": note_id, "object": "credit_note", "amount": total, "amount_shipping": 0, "created": created,
            "currency": invoice["currency"], "customer": invoice["customer"],
            "customer_account": invoice["customer_account"], "customer_balance_transaction": None,
            "discount_amount": 0, "discount_amounts": [], "effective_at": created, "invoice": invoice["id"],
            "livemode": self.livemode, "memo": r.choice([None, "Service outage credit", "Duplicate charge"]),
            "metadata": {}, "number": f"{invoice['number']}-CN-{r.randint(1, 9):02d}",
            "out_of_band_amount": total if post and refund is None else None,
            "pdf": f"https://pay.stripe.com/credit_notes/{self.store.account_id}/test_{note_id}/pdf",
            "post_payment_amount": total if post else 0, "pre_payment_amount": 0 if post else total,
            "pretax_credit_amounts": [], "reason": r.choice([None, "duplicate", "order_change",
                                                             "product_unsatisfactory"]),
            "refunds": [{"amount_refunded": refund["amount"], "payment_record_refund": None, "refund": refund["id"],
                         "type": "refund"}] if refund else [],
            "shipping_cost": None, "status": "issued", "subtotal": total, "subtotal_excluding_tax": total,
            "total": total, "total_excluding_tax": total, "total_taxes": [], "type": "post_payment" if post
            else "pre_payment", "voided_at": None,
        }
        self.add("credit_notes", note, fields)
        for line in note_lines:
            self.add("credit_note_line_items", line, parent=note_id)
        self.remember("credit_notes", note)
        self.emit("credit_note.created", "credit_notes", note_id, created)
        if post:
            self.change("invoices", invoice, created, post_payment_credit_notes_amount=invoice[
                "post_payment_credit_notes_amount"] + total)
        else:
            self.change("invoices", invoice, created, pre_payment_credit_notes_amount=invoice[
                "pre_payment_credit_notes_amount"] + total, amount_due=invoice["amount_due"] - total,
                amount_remaining=invoice["amount_remaining"] - total)
        return note

    def _credit_line(self, line: dict | None, amount: int) -> dict:
        return {"id": self.ids.new("cnli"), "object": "credit_note_line_item", "amount": amount,
                "description": line["description"] if line else "Service credit", "discount_amount": 0,
                "discount_amounts": [], "invoice_line_item": line["id"] if line else None,
                "livemode": self.livemode, "metadata": {}, "pretax_credit_amounts": [], "quantity": 1,
                "tax_rates": [], "taxes": [], "type": "invoice_line_item" if line else "custom_line_item",
                "unit_amount": None if line else amount, "unit_amount_decimal": None if line else str(amount)}
