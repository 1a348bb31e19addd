"""What a business agrees with its customers ahead of billing: quotes and their line items,
subscription schedules (phases of prices over time), and billing credit grants.

A quote is drafted, finalized (`quote.finalized`, it gets a number), then accepted (an invoice is
made from it, `quote.accepted`) or canceled. A schedule that has started runs a subscription of its
own; one that has not may be canceled or released. Credit grants give a customer credit for
metered prices, and may be voided.
"""

from __future__ import annotations

from typing import Any

from .fees import Fees

NO_TAXES = {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}


class Contracts(Fees):
    # --- quotes
    def quote(self, customer: dict | None = None, status: str | None = None, created: int | None = None,
              lines: int | None = None, **fields: Any) -> dict:
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or self.when(customer["created"])
        status = status or self.vary("quotes", ["accepted"] * 3 + ["draft", "open", "canceled"])
        currency = customer["currency"] or "usd"
        quote_id = self.ids.new("qt")
        quote = {
            "id": quote_id, "object": "quote", "amount_subtotal": 0, "amount_total": 0, "application": None,
            "application_fee_amount": None, "application_fee_percent": None,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "collection_method": r.choice(["charge_automatically", "send_invoice"]),
            "computed": {"recurring": None, "upfront": {"amount_subtotal": 0, "amount_total": 0,
                                                         "total_details": NO_TAXES}},
            "created": created, "currency": currency, "customer": customer["id"],
            "customer_account": customer["customer_account"], "default_tax_rates": [],
            "description": r.choice([None, "Annual onboarding package"]), "discounts": [],
            "expires_at": created + 30 * 86400, "footer": None, "from_quote": None, "header": None,
            "invoice": None, "invoice_settings": {"days_until_due": None, "issuer": {"type": "self"}},
            "livemode": self.livemode, "metadata": {}, "number": None, "on_behalf_of": None, "status": "draft",
            "status_transitions": {"accepted_at": None, "canceled_at": None, "finalized_at": None},
            "subscription": None,
            "subscription_data": {"billing_mode": {"type": "classic"}, "description": None, "effective_date": None,
                                  "metadata": None, "trial_period_days": None},
            "subscription_schedule": None, "test_clock": customer["test_clock"], "total_details": NO_TAXES,
            "transfer_data": None,
        }
        self.add("quotes", quote, fields)
        n = lines or self.big("quotes", 11, 16) or r.choice([1, 2, 3])
        total = sum(self.line_item(price, r.choice([1, 1, 2, 5]), "quote_line_items", quote_id)["amount_total"]
                    for price in self._sold(currency, False, n, created))
        totals = {"amount_subtotal": total, "amount_total": total,
                  "computed": dict(quote["computed"], upfront={"amount_subtotal": total, "amount_total": total,
                                                               "total_details": NO_TAXES})}
        self.store.patch("quotes", quote_id, **totals)
        quote.update(totals)
        self.remember("quotes", quote)
        self.emit("quote.created", "quotes", quote_id, created)
        if status == "draft":
            return quote
        self.finalize_quote(quote, self.later(quote, within=3 * 86400))
        if status == "accepted":
            self.accept_quote(quote, self.later(quote, within=10 * 86400))
        elif status == "canceled":
            at = self.later(quote, within=10 * 86400)
            self.change("quotes", quote, at, ("canceled",), status="canceled",
                        status_transitions=dict(self.store.get("quotes", quote_id)["status_transitions"],
                                                canceled_at=at))
        return quote

    def finalize_quote(self, quote: dict, at: int) -> dict:
        quote = self.store.get("quotes", quote["id"])
        number = f"QT-{self.rng.randint(1000, 9999)}-{self.rng.randint(1, 99):02d}"
        return self.change("quotes", quote, at, ("finalized",), status="open", number=number,
                           status_transitions=dict(quote["status_transitions"], finalized_at=at))

    def accept_quote(self, quote: dict, at: int) -> dict:
        """Accepted: Stripe makes the quote's invoice (a draft of its lines) and sends `quote.accepted`."""
        quote = self.store.get("quotes", quote["id"])
        customer = self.store.get("customers", quote["customer"])
        lines = len(self.store.related("quote_line_items", quote["id"]))
        invoice = self.invoice(customer, status="draft", created=at, lines=lines)
        return self.change("quotes", quote, at, ("accepted",), status="accepted", invoice=invoice["id"],
                           status_transitions=dict(quote["status_transitions"], accepted_at=at))

    # --- subscription schedules
    def subscription_schedule(self, customer: dict | None = None, status: str | None = None,
                              created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or self.when(customer["created"])
        status = status or self.vary("subscription_schedules", ["active", "active", "not_started", "released",
                                                                 "canceled", "completed"])
        if status == "completed" and created > self.now - 200 * 86400:  # its two phases have not ended yet
            status = "active"
        currency = customer["currency"] or "usd"
        schedule_id = self.ids.new("sub_sched")
        starts = created + (30 * 86400 if status in ("not_started", "canceled") else 0)
        prices = self.recurring_prices(currency, "month", 2, created)
        phases = [self._phase(price, start, start + 90 * 86400, currency)
                  for price, start in zip(prices, (starts, starts + 90 * 86400), strict=True)]
        schedule = {
            "id": schedule_id, "object": "subscription_schedule", "application": None,
            "billing_mode": {"flexible": None, "type": "classic", "updated_at": None}, "canceled_at": None,
            "completed_at": None, "created": created, "current_phase": None, "customer": customer["id"],
            "customer_account": customer["customer_account"],
            "default_settings": {"application_fee_percent": None,
                                 "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
                                 "billing_cycle_anchor": "automatic", "billing_thresholds": None,
                                 "collection_method": "charge_automatically", "default_payment_method": None,
                                 "description": None,
                                 "invoice_settings": {"account_tax_ids": None, "days_until_due": None,
                                                      "issuer": {"type": "self"}},
                                 "on_behalf_of": None, "transfer_data": None},
            "end_behavior": "cancel" if status == "completed" else r.choice(["release", "cancel"]),
            "livemode": self.livemode, "metadata": {},
            "pause_schedules": [], "phases": phases, "released_at": None, "released_subscription": None,
            "status": "not_started", "subscription": None, "test_clock": customer["test_clock"],
        }
        self.add("subscription_schedules", schedule, fields)
        self.remember("subscription_schedules", schedule)
        self.emit("subscription_schedule.created", "subscription_schedules", schedule_id, created)
        if status in ("active", "released", "completed"):
            sub = self.subscription(customer, items=1, status="active", created=starts, price=prices[0],
                                    schedule=schedule_id)
            self.change("subscription_schedules", schedule, starts, ("updated",), status="active",
                        subscription=sub["id"], current_phase={"end_date": phases[0]["end_date"],
                                                               "start_date": phases[0]["start_date"]})
            if status == "completed":  # the last phase ended: the subscription is canceled with it
                at = phases[-1]["end_date"]
                self.cancel_subscription(sub, at)
                self.change("subscription_schedules", schedule, at, ("completed",), status="completed",
                            completed_at=at, current_phase=None)
            elif status == "released":
                at = self.later(schedule, within=60 * 86400)
                self.change("subscription_schedules", schedule, at, ("released",), status="released",
                            released_at=at, released_subscription=sub["id"], subscription=None, current_phase=None)
        elif status == "canceled":
            at = self.later(schedule, within=20 * 86400)
            self.change("subscription_schedules", schedule, at, ("canceled",), status="canceled", canceled_at=at)
        return schedule

    def _phase(self, price: dict, start: int, end: int, currency: str) -> dict:
        return {"add_invoice_items": [], "application_fee_percent": None, "automatic_tax": None,
                "billing_cycle_anchor": None, "billing_thresholds": None, "collection_method": None,
                "currency": currency, "default_payment_method": None, "default_tax_rates": [], "description": None,
                "discounts": [], "end_date": end, "invoice_settings": None,
                "items": [{"billing_thresholds": None, "discounts": [], "metadata": {}, "plan": price["id"],
                           "price": price["id"], "quantity": 1, "tax_rates": []}],
                "metadata": {}, "on_behalf_of": None, "proration_behavior": "create_prorations",
                "start_date": start, "transfer_data": None, "trial_end": None}

    # --- credit grants
    def credit_grant(self, customer: dict | None = None, created: int | None = None, **fields: Any) -> dict:
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or self.when(customer["created"])
        grant = {"id": self.ids.new("credgr"), "object": "billing.credit_grant",
                 "amount": {"monetary": {"currency": customer["currency"] or "usd",
                                         "value": r.choice([1000, 5000, 20000])}, "type": "monetary"},
                 "applicability_config": {"scope": {"price_type": "metered", "prices": None}},
                 "category": r.choice(["paid", "promotional"]), "created": created, "customer": customer["id"],
                 "customer_account": customer["customer_account"], "effective_at": created,
                 "expires_at": created + 365 * 86400 if r.random() < 0.5 else None, "livemode": self.livemode,
                 "metadata": {}, "name": r.choice([None, "Launch credit", "Annual prepaid usage"]), "priority": 50,
                 "test_clock": customer["test_clock"], "updated": created, "voided_at": None}
        self.add("credit_grants", grant, fields)
        self.remember("credit_grants", grant)
        self.emit("billing.credit_grant.created", "credit_grants", grant["id"], created)
        return grant
