"""Money movement: payment methods, payment intents, charges, refunds, disputes, transfers and their
reversals, payouts and the balance transactions behind each, with the events Stripe sends.

Amounts add up: a charge's balance transaction nets its fee (in the account's currency, converted
when the charge is in another), refunds and reversals update what they refund or reverse, and an
automatic payout pays out exactly the balance transactions it settles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .builder import Builder, address, list_object

ACCOUNT_CURRENCY = "usd"
SETTLEMENT = ("usd", "eur")  # the account holds balances (and bank accounts) in these; others convert to usd
FX = {"usd": 1.0, "eur": 1.08, "gbp": 1.27}  # to usd
BRANDS = ("visa", "visa", "mastercard", "amex")
DECLINES = (("card_declined", "generic_decline", "Your card was declined."),
            ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
            ("expired_card", None, "Your card has expired."))


def _fee(amount: int) -> int:
    return int(abs(amount) * 0.029) + 30


class Payments(Builder):
    # --- payment methods (reached through `expand`: a payment intent's or a customer's default)
    def payment_method(self, customer: dict | None = None, created: int | None = None, attach: bool = True,
                       **fields: Any) -> dict:
        """A card payment method, attached to the customer (`payment_method.attached`) unless a setup
        attempt failed with it."""
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or (self.now if self.instant else customer["created"])
        brand = r.choice(BRANDS)
        pm = {
            "id": self.ids.new("pm"), "object": "payment_method",
            "allow_redisplay": r.choice(["unspecified", "always"]),
            "billing_details": {"address": customer["address"] or address(r), "email": customer["email"],
                                "name": customer["name"], "phone": customer["phone"], "tax_id": None},
            "card": {"brand": brand, "checks": {"address_line1_check": None, "address_postal_code_check": None,
                                                "cvc_check": "pass"},
                     "country": r.choice(["US", "DE", "GB"]), "display_brand": brand,
                     "exp_month": r.randint(1, 12), "exp_year": r.randint(2027, 2032),
                     "fingerprint": self.ids.new("fp")[5:21], "funding": r.choice(["credit", "debit"]),
                     "generated_from": None, "last4": f"{r.randint(0, 9999):04d}",
                     "networks": {"available": [brand], "preferred": None}, "regulated_status": "unregulated",
                     "three_d_secure_usage": {"supported": True}, "wallet": None},
            "created": created, "customer": customer["id"] if attach else None,
            "customer_account": customer["customer_account"] if attach else None, "livemode": self.livemode,
            "metadata": {}, "type": "card",
        }
        self.add("payment_methods", pm, fields)
        if attach:
            self.store.relate("customer_payment_methods", customer["id"], pm["id"])
            self.emit("payment_method.attached", "payment_methods", pm["id"], created)
        return pm

    def detach_payment_method(self, pm: dict, at: int) -> dict:
        """Detached from its customer: gone from the customer's list, `payment_method.detached`."""
        pm = self.store.get("payment_methods", pm["id"])
        self.store.unrelate("customer_payment_methods", pm["customer"], pm["id"])
        return self.change("payment_methods", pm, at, ("detached",), customer=None, customer_account=None)

    def payment_method_of(self, customer: dict) -> dict:
        pm_id = customer["invoice_settings"]["default_payment_method"] or self.store.extra(customer["id"], "pm")
        if pm_id:
            return self.store.get("payment_methods", pm_id)
        pm = self.payment_method(customer)
        self.store.set_extra(customer["id"], pm=pm["id"])
        return pm

    # --- balance transactions
    def balance_transaction(self, source: str, amount: int, currency: str, created: int, kind: str,
                            category: str | None = None, fee: int = 0, fee_type: str = "Stripe processing fees",
                            description: str | None = None) -> dict:
        """The balance side of a movement, in a settlement currency; only charges (and disputes) carry fees."""
        settled_in = currency if currency in SETTLEMENT else ACCOUNT_CURRENCY
        rate = FX[currency] if currency != settled_in else None
        converted = round(amount * rate) if rate else amount
        fee_details = [{"amount": fee, "application": None, "currency": settled_in, "description": fee_type,
                        "type": "stripe_fee"}] if fee else []
        available_on = created + 2 * 86400
        txn = {"id": self.ids.new("txn"), "object": "balance_transaction", "amount": converted,
               "available_on": available_on, "balance_type": "payments", "created": created,
               "currency": settled_in, "description": description, "exchange_rate": rate, "fee": fee,
               "fee_details": fee_details, "net": converted - fee, "reporting_category": category or kind,
               "source": source, "status": "available" if available_on <= self.now else "pending", "type": kind}
        self.add("balance_transactions", txn)
        return self.remember("balance_transactions", txn)

    # --- payment intents and charges
    def payment_intent(self, customer: dict | None = None, amount: int | None = None, currency: str | None = None,
                       status: str | None = None, created: int | None = None, description: str | None = None,
                       **fields: Any) -> dict:
        """A payment intent and, when it was confirmed, its charge: Stripe's events in their order."""
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or self.when(customer["created"])
        currency = currency or customer["currency"] or "usd"
        amount = amount if amount is not None else r.choice([500, 1999, 2900, 4900, 12000, 35000])
        status = status or self.vary("payment_intents", ["succeeded"] * 15 + [
            "requires_payment_method", "canceled", "requires_action", "processing", "requires_capture"])
        pm = self.payment_method_of(customer)
        automatic = r.random() < 0.5
        pi = {
            "id": self.ids.new("pi"), "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_details": {"tip": {}}, "amount_received": 0, "application": None, "application_fee_amount": None,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": True} if automatic else None,
            "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic_async",
            "client_secret": None, "confirmation_method": "automatic", "created": created, "currency": currency,
            "customer": customer["id"], "customer_account": customer["customer_account"], "description": description,
            "excluded_payment_method_types": None, "last_payment_error": None, "latest_charge": None,
            "livemode": self.livemode, "metadata": {}, "next_action": None, "on_behalf_of": None,
            "payment_method": None,
            "payment_method_configuration_details": {"id": "pmc_1" + self.ids.new("x")[5:], "parent": None}
            if automatic else None,
            "payment_method_options": {"card": {"installments": None, "mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}},
            "managed_payments": None, "payment_method_types": ["card", "link"] if automatic else ["card"],
            "processing": None,
            "receipt_email": customer["email"] if r.random() < 0.3 else None, "review": None,
            "setup_future_usage": r.choice([None, None, "off_session"]), "shipping": None, "source": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None, "status": "requires_payment_method",
            "transfer_data": None, "transfer_group": None,
        }
        pi["client_secret"] = f"{pi['id']}_secret_{self.ids.new('s')[5:]}"
        self.add("payment_intents", pi, fields)
        self.emit("payment_intent.created", "payment_intents", pi["id"], created)
        self.remember("payment_intents", pi)
        if status == "requires_payment_method" and r.random() < 0.7:  # a failed attempt left its error
            charge = self.charge(customer, pi, created, status="failed", payment_method=pm)
            code, decline, message = self.declined
            self.change("payment_intents", pi, created, ("payment_failed",), latest_charge=charge["id"],
                        last_payment_error={"advice_code": None, "charge": charge["id"], "code": code,
                                            "decline_code": decline, "doc_url": "https://stripe.com/docs/error-codes/"
                                            + code.replace("_", "-"), "message": message,
                                            "network_advice_code": None, "network_decline_code": None,
                                            "param": None, "payment_method": self.store.get("payment_methods",
                                                                                            pm["id"]),
                                            "payment_method_type": "card", "type": "card_error"})
        elif status == "canceled":
            when = self.later(pi)
            self.change("payment_intents", pi, when, ("canceled",), status="canceled", canceled_at=when,
                        cancellation_reason=r.choice(["abandoned", "requested_by_customer", "duplicate"]))
        elif status == "requires_action":
            self.change("payment_intents", pi, created, ("requires_action",), status="requires_action",
                        payment_method=pm["id"],
                        next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                                                                  "stripe_js": ""}})
        elif status == "processing":
            self.change("payment_intents", pi, created, ("processing",), status="processing", payment_method=pm["id"],
                        processing={"card": {"customer_notification": None}, "type": "card"})
        elif status in ("succeeded", "requires_capture"):
            capture = status == "succeeded"
            charge = self.charge(customer, pi, created, payment_method=pm, captured=capture)
            fields_after = {"status": status, "payment_method": pm["id"], "latest_charge": charge["id"],
                            "amount_received": amount if capture else 0, "amount_capturable": 0 if capture else amount,
                            "review": charge["review"]}
            if not capture:
                fields_after["capture_method"] = "manual"
            self.change("payment_intents", pi, created, ("succeeded",) if capture else ("amount_capturable_updated",),
                        **fields_after)
        return pi

    def charge(self, customer: dict | None = None, pi: dict | None = None, created: int | None = None,
               status: str | None = None, payment_method: dict | None = None, captured: bool = True,
               amount: int | None = None, currency: str | None = None, **fields: Any) -> dict:
        """A charge (standalone, or a payment intent's): `charge.succeeded` / `charge.failed` / `charge.pending`."""
        r = self.rng
        customer = customer or self.pick_customer()
        created = created or self.when(customer["created"])
        amount = amount if amount is not None else pi["amount"] if pi else r.choice([500, 1999, 2900, 4900])
        currency = currency or (pi["currency"] if pi else customer["currency"] or "usd")
        status = status or ("succeeded" if pi or r.random() < 0.9 else r.choice(["failed", "failed", "pending"]))
        pm = payment_method or self.payment_method_of(customer)
        card = pm["card"]
        charge_id = self.ids.new("ch")
        paid = status == "succeeded"
        txn = None
        if status != "failed" and captured:
            txn = self.balance_transaction(charge_id, amount, currency, created, "charge",
                                           fee=_fee(amount if currency in SETTLEMENT else round(amount * FX[currency])))
        decline = r.choice(DECLINES) if status == "failed" else None
        risk = r.randint(0, 99)
        # Radar opens a review on some risky payments (a rule flags them): the charge names it from the start
        review = self.ids.new("prv") if status == "succeeded" and risk > 65 and r.random() < 0.3 else None
        charge = {
            "id": charge_id, "object": "charge", "amount": amount,
            "amount_captured": amount if paid and captured else 0,
            "amount_refunded": 0, "application": None, "application_fee": None, "application_fee_amount": None,
            "balance_transaction": txn["id"] if txn else None,
            "billing_details": pm["billing_details"],
            "calculated_statement_descriptor": "EMULATED* SHOP", "captured": paid and captured, "created": created,
            "currency": currency, "customer": customer["id"], "description": pi["description"] if pi else None,
            "disputed": False, "failure_balance_transaction": None,
            "failure_code": decline[0] if decline else None, "failure_message": decline[2] if decline else None,
            "fraud_details": {}, "livemode": self.livemode, "metadata": {}, "on_behalf_of": None,
            "outcome": {"advice_code": "try_again_later" if decline and decline[1] == "insufficient_funds" else None,
                        "network_advice_code": None, "network_decline_code": None,
                        "network_status": "declined_by_network" if decline else "approved_by_network",
                        "reason": decline[1] if decline else None,
                        "risk_level": "elevated" if risk > 65 else "normal", "risk_score": risk,
                        "seller_message": "The bank did not return any further details with this decline."
                        if decline else "Payment complete.", "type": "issuer_declined" if decline else "authorized"},
            "paid": paid, "payment_intent": pi["id"] if pi else None, "payment_method": pm["id"],
            "payment_method_details": {"card": {
                "amount_authorized": amount if status != "failed" else None,
                "authorization_code": f"{r.randint(0, 999999):06d}" if status != "failed" else None,
                "brand": card["brand"], "checks": card["checks"], "country": card["country"],
                "exp_month": card["exp_month"], "exp_year": card["exp_year"],
                "extended_authorization": {"status": "disabled"}, "fingerprint": card["fingerprint"],
                "funding": card["funding"], "incremental_authorization": {"status": "unavailable"},
                "installments": None, "last4": card["last4"], "mandate": None,
                "multicapture": {"status": "unavailable"}, "network": card["brand"],
                "network_token": {"used": False}, "network_transaction_id": f"{r.randint(10**14, 10**15 - 1)}",
                "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                "regulated_status": "unregulated", "three_d_secure": None, "wallet": None},
                "type": "card"},
            "receipt_email": customer["email"] if paid else None, "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{charge_id}" if paid else None,
            "refunded": False, "review": review, "shipping": None, "source": None, "source_transfer": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None, "status": status,
            "transfer_data": None, "transfer_group": fields.pop("transfer_group", None),
        }
        if pi is None and status == "succeeded" and r.random() < 0.1:  # marketplace orders paid out by transfers
            charge["transfer_group"] = f"ORDER_{r.randint(1000, 9999)}"
        self.add("charges", charge, fields)
        if charge["transfer_group"]:
            self.remember("grouped_charges", charge)
        event = {"succeeded": "charge.succeeded", "failed": "charge.failed", "pending": "charge.pending"}[status]
        self.emit(event, "charges", charge_id, created)
        self.declined = decline
        if review:
            self.review(charge, created, review)  # type: ignore[attr-defined]
        return self.remember("charges", charge)

    def pick_customer(self) -> dict:
        return self.pick("customers") or self.customer()  # type: ignore[attr-defined]

    # --- refunds and disputes
    def refund(self, charge: dict | None = None, amount: int | None = None, created: int | None = None,
               reason: str | None = None, status: str | None = None, **fields: Any) -> dict | None:
        """A refund of a succeeded charge: `refund.created`, then `charge.refunded` with the charge's new totals."""
        r = self.rng
        charge = charge or self.pick("charges", lambda c: c["status"] == "succeeded" and c["captured"]
                                     and c["amount_refunded"] < c["amount"])
        if charge is None:
            return None
        charge = self.store.get("charges", charge["id"])
        left = charge["amount"] - charge["amount_refunded"]
        amount = min(left, amount if amount is not None else r.choice([left, left, 500, left // 2 or left]))
        if amount <= 0:
            return None
        created = created or self.later(charge)
        status = status or ("succeeded" if r.random() < 0.9 else r.choice(["pending", "pending", "failed"]))
        refund_id = self.ids.new("re")
        txn = self.balance_transaction(refund_id, -amount, charge["currency"], created, "refund")
        refund = {
            "id": refund_id, "object": "refund", "amount": amount, "balance_transaction": txn["id"],
            "charge": charge["id"], "created": created, "currency": charge["currency"],
            "customer": charge["customer"], "customer_account": None,
            "destination_details": {"card": {"reference": f"{r.randint(10**10, 10**11)}", "reference_status":
                                             "available", "reference_type": "acquirer_reference_number",
                                             "type": "refund"}, "type": "card"},
            "metadata": {}, "payment_intent": charge["payment_intent"], "payment_method": charge["payment_method"],
            "reason": reason or r.choice([None, "requested_by_customer", "duplicate", "fraudulent"]),
            "receipt_number": None, "source_transfer_reversal": None, "status": status, "transfer_reversal": None,
        }
        if status == "failed":
            refund["failure_balance_transaction"] = self.balance_transaction(
                refund_id, amount, charge["currency"], created, "refund_failure")["id"]
            refund["failure_reason"] = "expired_or_canceled_card"
        self.add("refunds", refund, fields)
        self.store.relate("charge_refunds", charge["id"], refund_id)
        self.remember("refunds", refund)
        self.emit("refund.created", "refunds", refund_id, created)
        refunded = charge["amount_refunded"] + (amount if status != "failed" else 0)
        self.change("charges", charge, created, ("refunded",), amount_refunded=refunded,
                    refunded=refunded >= charge["amount"])
        if status == "pending" and created < self.now - 86400 and r.random() < 0.5:  # card refunds settle later
            self.change("refunds", refund, self.later(refund), status="succeeded")
        return refund

    def dispute(self, charge: dict | None = None, created: int | None = None, status: str | None = None,
                **fields: Any) -> dict | None:
        """A dispute and its debit: `charge.dispute.created`, later `closed` (won: funds reinstated)."""
        r = self.rng
        charge = charge or self.pick("charges", lambda c: c["status"] == "succeeded" and not c["disputed"]
                                     and c["captured"])
        if charge is None:
            return None
        charge = self.store.get("charges", charge["id"])
        created = created or self.later(charge, within=60 * 86400)
        status = status or self.vary("disputes", ["won", "lost", "needs_response", "under_review",
                                                  "warning_needs_response", "warning_closed", "won", "lost"])
        dispute_id = self.ids.new("dp")
        inquiry = status.startswith("warning")
        debits = [] if inquiry else [self.balance_transaction(
            dispute_id, -charge["amount"], charge["currency"], created, "adjustment", "dispute", fee=1500,
            fee_type="Dispute fee", description=f"Chargeback withdrawal for {charge['id']}")]
        card = charge["payment_method_details"]["card"]
        dispute = {
            "id": dispute_id, "object": "dispute", "amount": charge["amount"], "balance_transactions": debits,
            "charge": charge["id"], "created": created, "currency": charge["currency"],
            "enhanced_eligibility_types": r.choice([[], [], ["visa_compelling_evidence_3"]]),
            "evidence": {name: None for name in EVIDENCE_FIELDS} | {
                "customer_email_address": charge["billing_details"]["email"],
                "customer_name": charge["billing_details"]["name"], "enhanced_evidence": {}},
            "evidence_details": {"due_by": created + 7 * 86400, "enhanced_eligibility": {}, "has_evidence": False,
                                 "past_due": created + 7 * 86400 < self.now and status == "needs_response",
                                 "submission_count": 0, "submission_method": "not_submitted"},
            "is_charge_refundable": inquiry, "livemode": self.livemode, "metadata": {},
            "payment_intent": charge["payment_intent"],
            "payment_method_details": {"card": {"brand": card["brand"], "case_type": "inquiry" if inquiry
                                                else "chargeback", "network": card["network"],
                                                "network_reason_code": r.choice(["10.4", "13.1", "4853"])},
                                       "type": "card"},
            "reason": r.choice(["fraudulent", "product_not_received", "duplicate", "subscription_canceled",
                                "general"]),
            "status": "warning_needs_response" if inquiry else "needs_response",
        }
        self.add("disputes", dispute, fields)
        self.remember("disputes", dispute)
        self.store.patch("charges", charge["id"], disputed=True)  # Stripe announces it as the dispute's event
        self.emit("charge.dispute.created", "disputes", dispute_id, created)
        if debits:
            self.emit("charge.dispute.funds_withdrawn", "disputes", dispute_id, created)
        if status in ("under_review", "won", "lost", "warning_closed"):
            submitted = self.later(dispute, within=10 * 86400)
            evidence = dict(dispute["evidence"], product_description="Annual plan, delivered by e-mail.",
                            uncategorized_text="Customer used the service after the charge.")
            details = dict(dispute["evidence_details"], has_evidence=True, submission_count=1,
                           submission_method="manual")
            self.change("disputes", dispute, submitted, ("updated",), evidence=evidence, evidence_details=details,
                        status="warning_under_review" if inquiry else "under_review")
        if status in ("won", "lost", "warning_closed"):
            closed = self.later(dispute, within=60 * 86400)
            if status == "won":
                reinstated = self.balance_transaction(
                    dispute_id, charge["amount"], charge["currency"], closed, "adjustment", "dispute_reversal",
                    description=f"Chargeback reversal for {charge['id']}")
                self.change("disputes", dispute, closed, ("closed", "funds_reinstated"), status="won",
                            balance_transactions=[*dispute["balance_transactions"], reinstated])
            else:
                self.change("disputes", dispute, closed, ("closed",), status=status)
        return dispute

    # --- transfers, reversals, payouts
    def transfer(self, amount: int | None = None, created: int | None = None, reversals: int | None = None,
                 **fields: Any) -> dict:
        """A transfer to a connected account; some are reversed in parts (a truncating sub-list)."""
        r = self.rng
        created = created or self.when()
        amount = amount if amount is not None else r.randint(5_000, 80_000)
        transfer_id = self.ids.new("tr")
        txn = self.balance_transaction(transfer_id, -amount, ACCOUNT_CURRENCY, created, "transfer")
        source = self.pick("grouped_charges", lambda c: c["created"] <= created)
        transfer = {
            "id": transfer_id, "object": "transfer", "amount": amount, "amount_reversed": 0,
            "balance_transaction": txn["id"], "created": created, "currency": ACCOUNT_CURRENCY,
            "description": r.choice([None, "Seller payout"]),
            "destination": r.choice(self.destinations) if self.destinations else "acct_1" + self.ids.new("x")[5:21],
            "destination_payment": None, "livemode": self.livemode, "metadata": {}, "reversed": False,
            "source_transaction": source["id"] if source and r.random() < 0.5 else None, "source_type": "card",
            "transfer_group": source["transfer_group"] if source else None,
        }
        self.add("transfers", transfer, fields)
        self.remember("transfers", transfer)
        self.emit("transfer.created", "transfers", transfer_id, created)
        if reversals is None:
            reversals = self.big("transfers", 11, 25) or (r.choice([0, 0, 0, 1, 2]))
        if reversals:
            self.reverse_transfer(transfer, reversals)
        return transfer

    def reverse_transfer(self, transfer: dict, n: int, at: int | None = None) -> list[dict]:
        """`n` partial reversals; each: `transfer.reversed` carrying the transfer with its new totals."""
        def reversal(transfer: dict, amount: int, when: int) -> dict:
            reversal_id = self.ids.new("trr")
            txn = self.balance_transaction(reversal_id, amount, ACCOUNT_CURRENCY, when, "transfer_refund",
                                           "transfer_reversal")
            return {"id": reversal_id, "object": "transfer_reversal", "amount": amount,
                    "balance_transaction": txn["id"], "created": when, "currency": transfer["currency"],
                    "destination_payment_refund": None, "metadata": {}, "source_refund": None,
                    "transfer": transfer["id"]}
        return self.return_in_parts("transfers", transfer, n, at, items="transfer_reversals", verb="reversed",
                                    part=40, within_days=7, make=reversal)

    def return_in_parts(self, resource: str, parent: dict, n: int, at: int | None, *, items: str, verb: str,
                        part: int, within_days: int, make: Callable[[dict, int, int], dict]) -> list[dict]:
        """Give back a parent's amount in `n` parts of 1/`part` of it (a transfer's reversals, a fee's refunds).

        Each part is an item of the parent's sub-list `items`, made by `make(parent, amount, when)` with
        its balance transaction; it adds to the parent's `amount_<verb>` (and sets `<verb>` once all is
        back) and sends `<event prefix>.<verb>` carrying the parent with its new totals.
        """
        made = []
        for _ in range(n):
            parent = self.store.get(resource, parent["id"])
            returned = parent[f"amount_{verb}"]
            left = parent["amount"] - returned
            if left <= 0:
                break
            when = at or self.later(parent, within=within_days * 86400)
            before = self.snapshot_if_recent(resource, parent, when)
            amount = max(1, min(left, parent["amount"] // part or 1))
            made.append(self.add(items, make(parent, amount, when), parent=parent["id"]))
            returned += amount
            self.change(resource, parent, when, (), **{f"amount_{verb}": returned, verb: returned >= parent["amount"]})
            if before is not None:
                self.store.changed(resource, self.store.snapshot(resource, parent["id"]), before, verb, when=when)
        return made

    def bank_account(self, currency: str = ACCOUNT_CURRENCY, **fields: Any) -> dict:
        """One of the account's external accounts (its payouts go there): the first of a currency is its default."""
        r = self.rng
        kind = f"bank_accounts_{currency}"
        bank = {"id": self.ids.new("ba"), "object": "bank_account", "account": self.store.account_id,
                "account_holder_name": self.account_name, "account_holder_type": "company", "account_type": None,
                "available_payout_methods": ["standard", "instant"],
                "bank_name": "STRIPE TEST BANK" if currency == "usd" else "STRIPE TEST BANK EU",
                "country": "US" if currency == "usd" else "DE", "currency": currency, "customer": None,
                "default_for_currency": not self.made.get(kind),
                "fingerprint": self.ids.new("fp")[5:21], "future_requirements": None,
                "last4": f"{r.randint(0, 9999):04d}", "metadata": {}, "requirements": None,
                "routing_number": "110000000" if currency == "usd" else None, "status": "verified"}
        self.add("bank_accounts", bank, fields)
        self.store.relate("account_external_accounts", self.store.account_id, bank["id"])
        return self.remember(kind, bank)

    def payout(self, amount: int | None = None, created: int | None = None, automatic: bool | None = None,
               currency: str | None = None, **fields: Any) -> dict:
        """A payout to one of the account's bank accounts; an automatic one pays out the balance
        transactions that became available since the previous one (`balance_transactions?payout=`)."""
        r = self.rng
        created = created or self.when()
        automatic = self.vary("payouts", [True] * 6 + [False]) if automatic is None else automatic
        currency = currency or r.choice(["usd", "usd", "usd", "eur"])
        banks = self.made.get(f"bank_accounts_{currency}") or [self.bank_account(currency),
                                                                self.bank_account(currency)]
        payout_id = self.ids.new("po")
        settled = self.settle(payout_id, created, currency) if automatic else []
        if amount is None:
            amount = sum(t["net"] for t in settled) if settled else r.randint(10_000, 500_000)
        amount = max(amount, 100)
        txn = self.balance_transaction(payout_id, -amount, currency, created, "payout")
        if automatic:
            self.store.settle(txn["id"], payout_id)
        arrival = created + 2 * 86400
        payout = {
            "id": payout_id, "object": "payout", "amount": amount, "application_fee": None,
            "application_fee_amount": None, "arrival_date": arrival, "automatic": automatic,
            "balance_transaction": txn["id"], "created": created, "currency": currency,
            "description": "STRIPE PAYOUT", "destination": r.choice(banks)["id"], "failure_balance_transaction": None,
            "failure_code": None, "failure_message": None, "livemode": self.livemode, "metadata": {},
            "method": "standard" if automatic or r.random() < 0.7 else "instant", "original_payout": None,
            "payout_method": None, "reconciliation_status": "completed" if automatic else "not_applicable",
            "reversed_by": None, "source_type": "card",
            "statement_descriptor": None, "status": "pending",
            "trace_id": {"status": "pending", "value": None}, "type": "bank_account",
        }
        self.add("payouts", payout, fields)
        self.remember("payouts", payout)
        self.emit("payout.created", "payouts", payout_id, created)
        if created < self.now - 3600:
            self.change("payouts", payout, self.later(payout, created + 600, within=3000), ("updated",),
                        status="in_transit")
        if arrival <= self.now:
            arrival = max(arrival, self.touched.get(payout_id, arrival))
            if self.vary("payout_outcome", ["paid", "failed"] + ["paid"] * 18) == "failed":
                failed = self.balance_transaction(payout_id, amount, currency, arrival, "payout_failure")
                self.change("payouts", payout, arrival, ("failed", "updated"), status="failed",
                            failure_balance_transaction=failed["id"], failure_code="account_closed",
                            failure_message="The bank account has been closed.",
                            trace_id={"status": "unsupported", "value": None})
            else:
                self.change("payouts", payout, arrival, ("paid", "updated"), status="paid",
                            trace_id={"status": "supported", "value": f"{r.randint(10**14, 10**15 - 1)}"})
        return payout

    def settle(self, payout_id: str, at: int, currency: str) -> list[dict]:
        """The balance transactions available by `at` that no payout has paid out yet: this payout's.

        Payouts are made in time order (see `WorldBuilder.build`); the transactions are sorted once.
        """
        queue = self.made.get(f"_unsettled_{currency}")
        if queue is None:  # on a built world (`Emulator.create`): what no payout has paid out yet
            made = self.made.get("balance_transactions") or self.existing("balance_transactions")
            queue = sorted((t for t in made if t["type"] != "payout" and t["currency"] == currency
                            and t["id"] not in self.store.settled_by), key=lambda t: t["available_on"], reverse=True)
            self.made[f"_unsettled_{currency}"] = queue
        settled = []
        while queue and queue[-1]["available_on"] <= at:
            txn = queue.pop()
            settled.append(txn)
            self.store.settle(txn["id"], payout_id)
        return settled


EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation", "duplicate_charge_explanation",
    "duplicate_charge_id", "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
    "refund_refusal_explanation", "service_date", "service_documentation", "shipping_address", "shipping_carrier",
    "shipping_date", "shipping_documentation", "shipping_tracking_number", "uncategorized_file",
    "uncategorized_text",
)

__all__ = ["Payments", "list_object"]
