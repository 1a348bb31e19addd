"""Radar and top-ups: reviews of risky payments, early fraud warnings from card issuers, and top-ups
that add funds to the balance from a bank account.

Radar opens a review when a rule flags a payment (`review.opened`, the charge and payment intent
name it); it is closed when someone approves or refunds it (`review.closed`). An issuer's early
fraud warning on a charge (`radar.early_fraud_warning.created`) stops being actionable once the
charge is refunded (`.updated`). A top-up settles (`topup.succeeded`, with its balance transaction)
or fails days after it was made.
"""

from __future__ import annotations

from typing import Any

from .checkout import Checkout

FRAUD_TYPES = ("card_never_received", "fraudulent_card_application", "made_with_counterfeit_card",
               "made_with_lost_card", "made_with_stolen_card", "misc", "unauthorized_use_of_card")


class Radar(Checkout):
    # --- reviews (opened with the charge a rule flagged: see `Payments.charge`)
    def review(self, charge: dict, created: int, review_id: str) -> dict:
        r = self.rng
        review = {
            "id": review_id, "object": "review", "billing_zip": charge["billing_details"]["address"].get(
                "postal_code") if charge["billing_details"]["address"] else None,
            "charge": charge["id"], "closed_reason": None, "created": created,
            "ip_address": f"203.0.113.{r.randint(1, 254)}",
            "ip_address_location": {"city": "Dublin", "country": "IE", "latitude": 53.35, "longitude": -6.26,
                                    "region": "L"},
            "livemode": self.livemode, "open": True, "opened_reason": "rule",
            "payment_intent": charge["payment_intent"], "reason": "rule",
            "session": {"browser": "Chrome", "device": "Macintosh", "platform": "Mac OS X", "version": "120.0.0"},
        }
        self.add("reviews", review)
        self.remember("reviews", review)
        self.emit("review.opened", "reviews", review["id"], created)
        return review

    def close_review(self, review: dict, at: int, reason: str | None = None) -> dict:
        reason = reason or self.rng.choice(["approved", "approved", "refunded", "refunded_as_fraud"])
        return self.change("reviews", review, at, ("closed",), open=False, closed_reason=reason, reason=reason)

    # --- early fraud warnings
    def early_fraud_warning(self, charge: dict | None = None, created: int | None = None, **fields: Any) -> dict | None:
        charge = charge or self.pick("charges", lambda c: c["status"] == "succeeded" and c["captured"]
                                     and not c["refunded"] and not c["disputed"])
        if charge is None:
            return None
        charge = self.store.get("charges", charge["id"])
        created = created or self.later(charge, within=30 * 86400)
        warning = {"id": self.ids.new("issfr"), "object": "radar.early_fraud_warning", "actionable": True,
                   "charge": charge["id"], "created": created, "fraud_type": self.rng.choice(FRAUD_TYPES),
                   "livemode": self.livemode, "payment_intent": charge["payment_intent"]}
        self.add("early_fraud_warnings", warning, fields)
        self.remember("early_fraud_warnings", warning)
        self.emit("radar.early_fraud_warning.created", "early_fraud_warnings", warning["id"], created)
        if self.rng.random() < 0.5:  # refunded on the warning: no longer actionable
            if self.refund(charge, amount=charge["amount"] - charge["amount_refunded"], reason="fraudulent",
                           created=self.later(warning, created, within=3 * 86400), status="succeeded"):
                self.change("early_fraud_warnings", warning, self.touched.get(charge["id"], created),
                            actionable=False)
        return warning

    # --- top-ups
    def topup(self, amount: int | None = None, status: str | None = None, created: int | None = None,
              **fields: Any) -> dict:
        r = self.rng
        created = created or self.when()
        status = status or self.vary("topups", ["succeeded"] * 5 + ["failed", "canceled", "pending", "reversed"])
        if status != "pending" and created > self.now - 5 * 86400:
            status = "pending"  # top-ups take days to settle
        amount = amount if amount is not None else r.choice([10_000, 50_000, 100_000, 250_000])
        topup = {
            "id": self.ids.new("tu"), "object": "topup", "amount": amount, "balance_transaction": None,
            "created": created, "currency": "usd", "description": r.choice(["Top-up for payouts", "Reserve funding"]),
            "expected_availability_date": created + 5 * 86400, "failure_code": None, "failure_message": None,
            "initiated_by": None, "livemode": self.livemode, "metadata": {}, "source": None,
            "statement_descriptor": None, "status": "pending", "transfer_group": None,
        }
        self.add("topups", topup, fields)
        self.remember("topups", topup)
        self.emit("topup.created", "topups", topup["id"], created)
        if status == "pending":
            return topup
        at = self.later(topup, created + 4 * 86400, within=86400)
        if status == "canceled":
            self.change("topups", topup, at, ("canceled",), status="canceled")
        elif status == "failed":
            self.change("topups", topup, at, ("failed",), status="failed", failure_code="insufficient_funds",
                        failure_message="The bank account has insufficient funds.")
        else:
            txn = self.balance_transaction(topup["id"], amount, "usd", at, "topup")
            self.change("topups", topup, at, ("succeeded",), status="succeeded", balance_transaction=txn["id"])
            if status == "reversed":
                back = self.later(topup, within=10 * 86400)
                self.balance_transaction(topup["id"], -amount, "usd", back, "topup_reversal")
                self.change("topups", topup, back, ("reversed",), status="reversed")
        return topup
