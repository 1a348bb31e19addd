"""A seeded, consistent Stripe business: every reference points at an object that exists.

Objects are shaped like Stripe's own examples (API version below) with generated values; the
amounts add up (invoice total = sum of its lines, balance transaction net = amount - fee).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

API_VERSION = "2026-10-28.endive"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Share of `scale` per top-level kind of object; dependent objects (lines, items, balance
# transactions, events) come on top in proportion. Weights sum to ~1 with the dependents.
WEIGHTS = {
    "customers": 0.08,
    "products": 0.01,
    "prices": 0.02,
    "plans": 0.01,
    "coupons": 0.004,
    "promotion_codes": 0.004,
    "tax_rates": 0.002,
    "subscriptions": 0.04,
    "invoices": 0.05,
    "invoiceitems": 0.03,
    "credit_notes": 0.01,
    "payment_intents": 0.09,
    "charges": 0.10,
    "refunds": 0.02,
    "disputes": 0.005,
    "payouts": 0.01,
    "transfers": 0.01,
}

SUBSCRIPTION_STATUSES = ("active", "active", "active", "trialing", "past_due", "canceled", "canceled")
INVOICE_STATUSES = ("paid", "paid", "paid", "paid", "open", "open", "draft", "draft", "void", "uncollectible")
CURRENCIES = ("usd", "usd", "usd", "eur", "gbp")


@dataclass
class Ids:
    rng: random.Random
    tag: str

    def new(self, prefix: str) -> str:
        body = "".join(self.rng.choices(_ALPHABET, k=14))
        return f"{prefix}_1{self.tag}{body}"


def _list(data: list, url: str) -> dict:
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


def _address(rng: random.Random) -> dict:
    return {
        "city": rng.choice(["Berlin", "Dublin", "Austin", "Lisbon", None]),
        "country": rng.choice(["DE", "IE", "US", "PT"]),
        "line1": f"{rng.randint(1, 200)} Main St",
        "line2": None,
        "postal_code": f"{rng.randint(10000, 99999)}",
        "state": None,
    }


class WorldBuilder:
    """Builds one account's objects into a `Store` (see store.py), oldest to newest."""

    def __init__(
        self,
        store,
        *,
        seed: int,
        scale: int,
        span_days: int,
        now: int,
        livemode: bool,
        tag: str,
        counts: dict[str, int] | None = None,
    ) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.ids = Ids(random.Random(seed * 7919 + 1), tag)
        self.now = now
        self.start = now - span_days * 86400
        self.livemode = livemode
        if counts is not None:
            self.counts = {name: counts.get(name, 0) for name in WEIGHTS}
        else:
            self.counts = {name: max(2, int(scale * w)) for name, w in WEIGHTS.items()}

    def when(self, after: int | None = None) -> int:
        low = max(self.start, after or self.start)
        return self.rng.randint(low, max(low, self.now - 60))

    def base(self, prefix: str, obj: str, created: int | None = None) -> dict:
        return {
            "id": self.ids.new(prefix),
            "object": obj,
            "created": created if created is not None else self.when(),
            "livemode": self.livemode,
            "metadata": {},
        }

    # --- catalog
    def build(self) -> None:
        r = self.rng
        c = self.counts
        customers = [self.customer() for _ in range(c["customers"])] or [self.customer()]
        products = [self.product() for _ in range(c["products"])] or [self.product()]
        prices = [self.price(r.choice(products)) for _ in range(c["prices"])] or [self.price(products[0])]
        recurring = [p for p in prices if p["type"] == "recurring"] or [self.price(products[0], recurring=True)]
        for _ in range(c["plans"]):
            self.plan(r.choice(products))
        coupons = [self.coupon() for _ in range(c["coupons"])]
        for _ in range(c["promotion_codes"]):
            if coupons:
                self.promotion_code(r.choice(coupons), r.choice(customers))
        for _ in range(c["tax_rates"]):
            self.tax_rate()
        subscriptions = [self.subscription(r.choice(customers), recurring) for _ in range(c["subscriptions"])]
        invoices = []
        for _ in range(c["invoices"]):
            sub = r.choice(subscriptions) if subscriptions and r.random() < 0.6 else None
            customer = self.store.get("customers", sub["customer"]) if sub else r.choice(customers)
            invoices.append(self.invoice(customer, sub, prices))
        drafts = [i for i in invoices if i["status"] == "draft"]
        for _ in range(c["invoiceitems"]):
            target = r.choice(drafts) if drafts and r.random() < 0.3 else None
            self.invoiceitem(r.choice(customers), target, r.choice(prices))
        paid = [i for i in invoices if i["status"] == "paid"]
        for _ in range(c["credit_notes"]):
            if paid:
                self.credit_note(r.choice(paid))
        charges = []
        for _ in range(c["payment_intents"]):
            pi, ch = self.payment(r.choice(customers))
            if ch:
                charges.append(ch)
        for _ in range(max(0, c["charges"] - len(charges))):
            charges.append(self.charge(r.choice(customers), None))
        succeeded = [ch for ch in charges if ch["status"] == "succeeded"]
        for _ in range(c["refunds"]):
            if succeeded:
                self.refund(r.choice(succeeded))
        for _ in range(c["disputes"]):
            if succeeded:
                self.dispute(r.choice(succeeded))
        for _ in range(c["payouts"]):
            self.payout()
        for _ in range(c["transfers"]):
            self.transfer()

    def customer(self) -> dict:
        r = self.rng
        obj = self.base("cus", "customer")
        n = r.randint(1, 10**6)
        obj.update(
            address=_address(r),
            balance=0,
            currency=r.choice(CURRENCIES),
            default_source=None,
            delinquent=False,
            description=None,
            discount=None,
            email=f"customer{n}@example.com",
            invoice_prefix=f"{n:06X}"[:8],
            invoice_settings={"custom_fields": None, "default_payment_method": None, "footer": None,
                              "rendering_options": None},
            name=r.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"]) + f" {n}",
            next_invoice_sequence=1,
            phone=None,
            preferred_locales=[],
            shipping=None,
            tax_exempt="none",
            test_clock=None,
        )
        if r.random() < 0.3:
            obj["metadata"] = {"plan_tier": r.choice(["gold", "silver"]), "crm_id": str(n)}
        return self.store.add("customers", obj)

    def product(self) -> dict:
        r = self.rng
        obj = self.base("prod", "product")
        obj.update(active=r.random() < 0.9, default_price=None, description=None, images=[],
                   marketing_features=[], name=f"Product {r.randint(1, 9999)}", package_dimensions=None,
                   shippable=None, statement_descriptor=None, tax_code=None, type="service", unit_label=None,
                   updated=obj["created"], url=None)
        return self.store.add("products", obj)

    def price(self, product: dict, recurring: bool | None = None) -> dict:
        r = self.rng
        obj = self.base("price", "price", self.when(product["created"]))
        recurring = r.random() < 0.6 if recurring is None else recurring
        amount = r.choice([500, 900, 1500, 2900, 4900, 9900])
        obj.update(
            active=True, billing_scheme="per_unit", currency="usd", custom_unit_amount=None, lookup_key=None,
            nickname=None, product=product["id"],
            recurring={"interval": r.choice(["month", "year"]), "interval_count": 1, "meter": None,
                       "trial_period_days": None, "usage_type": "licensed"} if recurring else None,
            tax_behavior="unspecified", tiers_mode=None, transform_quantity=None,
            type="recurring" if recurring else "one_time", unit_amount=amount, unit_amount_decimal=str(amount),
        )
        return self.store.add("prices", obj)

    def plan(self, product: dict) -> dict:
        r = self.rng
        obj = self.base("plan", "plan", self.when(product["created"]))
        amount = r.choice([900, 1900, 4900])
        obj.update(active=True, amount=amount, amount_decimal=str(amount), billing_scheme="per_unit",
                   currency="usd", interval=r.choice(["month", "year"]), interval_count=1, meter=None,
                   nickname=None, product=product["id"], tiers_mode=None, transform_usage=None,
                   trial_period_days=None, usage_type="licensed")
        return self.store.add("plans", obj)

    def coupon(self) -> dict:
        r = self.rng
        obj = self.base("co", "coupon")
        percent = r.random() < 0.7
        obj.update(amount_off=None if percent else 500, currency=None if percent else "usd",
                   duration=r.choice(["once", "forever", "repeating"]), duration_in_months=None,
                   max_redemptions=None, name=f"Promo {r.randint(1, 99)}", percent_off=r.choice([10, 20, 25])
                   if percent else None, redeem_by=None, times_redeemed=r.randint(0, 50), valid=True)
        return self.store.add("coupons", obj)

    def promotion_code(self, coupon: dict, customer: dict) -> dict:
        r = self.rng
        obj = self.base("promo", "promotion_code", self.when(coupon["created"]))
        obj.update(active=True, code=f"SAVE{r.randint(100, 99999)}", customer=None, customer_account=None,
                   expires_at=None, max_redemptions=None,
                   promotion={"coupon": coupon["id"], "type": "coupon"},
                   restrictions={"currency_options": {}, "first_time_transaction": False,
                                 "minimum_amount": None, "minimum_amount_currency": None},
                   times_redeemed=0)
        return self.store.add("promotion_codes", obj)

    def tax_rate(self) -> dict:
        r = self.rng
        obj = self.base("txr", "tax_rate")
        pct = r.choice([7.0, 19.0, 20.0, 23.0])
        obj.update(active=True, country=r.choice(["DE", "FR", "IE"]), description=None, display_name="VAT",
                   effective_percentage=pct, flat_amount=None, inclusive=False, jurisdiction="EU",
                   jurisdiction_level=None, percentage=pct, rate_type="percentage", state=None, tax_type="vat")
        return self.store.add("tax_rates", obj)

    def subscription(self, customer: dict, prices: list[dict]) -> dict:
        r = self.rng
        created = self.when(customer["created"])
        obj = self.base("sub", "subscription", created)
        status = r.choice(SUBSCRIPTION_STATUSES)
        canceled_at = self.when(created) if status == "canceled" else None
        obj.update(
            application=None, application_fee_percent=None,
            automatic_tax={"disabled_reason": None, "enabled": False, "liability": None},
            billing_cycle_anchor=created, cancel_at=None, cancel_at_period_end=False, canceled_at=canceled_at,
            cancellation_details={"comment": None, "feedback": None,
                                  "reason": "cancellation_requested" if canceled_at else None},
            collection_method="charge_automatically", currency="usd", customer=customer["id"],
            days_until_due=None, default_payment_method=None, default_source=None, default_tax_rates=[],
            description=None, discounts=[], ended_at=canceled_at, latest_invoice=None,
            start_date=created, status=status, trial_end=None, trial_start=None,
        )
        self.store.add("subscriptions", obj)
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            self.subscription_item(obj, r.choice(prices))
        return obj

    def subscription_item(self, sub: dict, price: dict) -> dict:
        obj = self.base("si", "subscription_item", sub["created"])
        del obj["livemode"]  # Stripe's subscription_item has no livemode
        obj.update(current_period_start=sub["created"], current_period_end=sub["created"] + 30 * 86400,
                   discounts=[], plan=None, price=dict(price), quantity=self.rng.randint(1, 5),
                   subscription=sub["id"], tax_rates=[])
        return self.store.add("subscription_items", obj)

    def invoice(self, customer: dict, sub: dict | None, prices: list[dict]) -> dict:
        r = self.rng
        created = self.when((sub or customer)["created"])
        obj = self.base("in", "invoice", created)
        status = r.choice(INVOICE_STATUSES)
        # Most invoices have a few lines; one in sixteen has more than the 10 Stripe embeds.
        n_lines = r.randint(11, 40) if r.random() < 0.0625 else r.randint(1, 6)
        lines = []
        for _ in range(n_lines):
            price = r.choice(prices)
            qty = r.randint(1, 3)
            line_id = self.ids.new("il")
            amount = (price["unit_amount"] or 0) * qty
            lines.append({
                "id": line_id, "object": "line_item", "amount": amount, "currency": "usd",
                "description": f"{qty} × item", "discount_amounts": [], "discountable": True, "discounts": [],
                "invoice": obj["id"], "livemode": self.livemode, "metadata": {},
                "parent": {"type": "subscription_item_details" if sub else "invoice_item_details",
                           "subscription_item_details": {"subscription": sub["id"]} if sub else None,
                           "invoice_item_details": None if sub else {"invoice_item": None}},
                "period": {"end": created + 30 * 86400, "start": created},
                "pretax_credit_amounts": [], "pricing": {"price_details": {"price": price["id"],
                                                                           "product": price["product"]},
                                                         "type": "price_details",
                                                         "unit_amount_decimal": str(price["unit_amount"])},
                "quantity": qty, "subtotal": amount, "taxes": [],
            })
        total = sum(line["amount"] for line in lines)
        paid = status == "paid"
        finalized = None if status == "draft" else created + 60
        obj.update(
            account_country="US", account_name="Emulated Inc.", amount_due=total if status != "void" else 0,
            amount_paid=total if paid else 0, amount_remaining=0 if paid or status == "void" else total,
            amount_shipping=0, attempt_count=1 if paid else 0, attempted=paid, auto_advance=status == "draft",
            billing_reason="subscription_cycle" if sub else "manual", collection_method="charge_automatically",
            currency="usd", customer=customer["id"], customer_email=customer["email"],
            customer_name=customer["name"], default_payment_method=None, description=None, discounts=[],
            due_date=None, effective_at=finalized, ending_balance=0 if finalized else None, footer=None,
            hosted_invoice_url=None, invoice_pdf=None, issuer={"type": "self"}, next_payment_attempt=None,
            number=None if status == "draft" else f"{customer['invoice_prefix']}-{r.randint(1, 9999):04d}",
            parent={"quote_details": None, "subscription_details": {"metadata": {}, "subscription": sub["id"]},
                    "type": "subscription_details"} if sub else None,
            period_end=created, period_start=created - 30 * 86400 if sub else created,
            status=status,
            status_transitions={"finalized_at": finalized, "marked_uncollectible_at": created + 86400
                                if status == "uncollectible" else None, "paid_at": created + 120 if paid else None,
                                "voided_at": created + 86400 if status == "void" else None},
            subtotal=total, subtotal_excluding_tax=total, total=total, total_discount_amounts=[],
            total_excluding_tax=total, total_taxes=[], webhooks_delivered_at=created,
        )
        self.store.add("invoices", obj, lines=lines)
        return obj

    def invoiceitem(self, customer: dict, invoice: dict | None, price: dict) -> dict:
        r = self.rng
        obj = self.base("ii", "invoiceitem", self.when((invoice or customer)["created"]))
        qty = r.randint(1, 3)
        amount = (price["unit_amount"] or 0) * qty
        obj.update(amount=amount, currency="usd", customer=invoice["customer"] if invoice else customer["id"],
                   date=obj["created"], description="One-off item", discountable=True, discounts=[],
                   invoice=invoice["id"] if invoice else None, net_amount=amount, parent=None,
                   period={"end": obj["created"], "start": obj["created"]},
                   pricing={"price_details": {"price": price["id"], "product": price["product"]},
                            "type": "price_details", "unit_amount_decimal": str(price["unit_amount"])},
                   proration=False, quantity=qty, tax_rates=[], test_clock=None)
        del obj["created"]  # Stripe's invoiceitem has `date`, not `created` (its list filters on it)
        return self.store.add("invoiceitems", obj)

    def credit_note(self, invoice: dict) -> dict:
        r = self.rng
        obj = self.base("cn", "credit_note", self.when(invoice["created"]))
        lines = []
        for _ in range(r.randint(1, 3)):
            amount = r.choice([100, 250, 500])
            lines.append({"id": self.ids.new("cnli"), "object": "credit_note_line_item", "amount": amount,
                          "description": "Credit", "discount_amount": 0, "discount_amounts": [],
                          "invoice_line_item": None, "livemode": self.livemode, "metadata": {},
                          "pretax_credit_amounts": [], "quantity": 1, "tax_rates": [], "taxes": [],
                          "type": "custom_line_item", "unit_amount": amount, "unit_amount_decimal": str(amount)})
        total = sum(line["amount"] for line in lines)
        obj.update(amount=total, amount_shipping=0, currency="usd", customer=invoice["customer"],
                   customer_balance_transaction=None, discount_amount=0, discount_amounts=[],
                   effective_at=obj["created"], invoice=invoice["id"], memo=None,
                   number=f"CN-{r.randint(1, 99999)}", out_of_band_amount=None, pdf="", reason=None,
                   refunds=[], status="issued", subtotal=total, subtotal_excluding_tax=total, total=total,
                   total_excluding_tax=total, total_taxes=[], type="post_payment", voided_at=None)
        self.store.add("credit_notes", obj, lines=lines)
        return obj

    def balance_transaction(self, source: str, amount: int, created: int, kind: str) -> dict:
        fee = max(0, int(abs(amount) * 0.029) + 30) if kind == "charge" else 0
        obj = self.base("txn", "balance_transaction", created)
        del obj["livemode"], obj["metadata"]  # not on balance transactions
        obj.update(amount=amount, available_on=created + 2 * 86400, balance_type="payments", currency="usd",
                   description=None, exchange_rate=None, fee=fee,
                   fee_details=[{"amount": fee, "application": None, "currency": "usd",
                                 "description": "Stripe processing fees", "type": "stripe_fee"}] if fee else [],
                   net=amount - fee, reporting_category=kind, source=source,
                   status="available" if created < self.now - 2 * 86400 else "pending", type=kind)
        return self.store.add("balance_transactions", obj)

    def payment(self, customer: dict, created: int | None = None) -> tuple[dict, dict | None]:
        r = self.rng
        created = created or self.when(customer["created"])
        pi = self.base("pi", "payment_intent", created)
        amount = r.choice([500, 1999, 2900, 4900, 12000])
        status = r.choice(["succeeded"] * 8 + ["requires_payment_method", "canceled"])
        pi.update(amount=amount, amount_capturable=0, amount_details={"tip": {}}, application=None,
                  application_fee_amount=None, amount_received=amount if status == "succeeded" else 0,
                  automatic_payment_methods=None, canceled_at=created + 60 if status == "canceled" else None,
                  cancellation_reason=None, capture_method="automatic", client_secret=None,
                  confirmation_method="automatic", currency="usd", customer=customer["id"], description=None,
                  last_payment_error=None, latest_charge=None, next_action=None, on_behalf_of=None,
                  payment_method=None, payment_method_types=["card"], processing=None, receipt_email=None,
                  review=None, setup_future_usage=None, shipping=None, statement_descriptor=None,
                  statement_descriptor_suffix=None, status=status, transfer_data=None, transfer_group=None)
        self.store.add("payment_intents", pi)
        charge = None
        if status == "succeeded":
            charge = self.charge(customer, pi, created)
            self.store.patch("payment_intents", pi["id"], latest_charge=charge["id"])
        return pi, charge

    def charge(self, customer: dict, pi: dict | None, created: int | None = None) -> dict:
        r = self.rng
        created = created or self.when(customer["created"])
        obj = self.base("ch", "charge", created)
        amount = pi["amount"] if pi else r.choice([500, 1999, 2900, 4900])
        status = "succeeded" if pi or r.random() < 0.9 else "failed"
        txn = self.balance_transaction(obj["id"], amount, created, "charge") if status == "succeeded" else None
        obj.update(
            amount=amount, amount_captured=amount if status == "succeeded" else 0, amount_refunded=0,
            application=None, application_fee=None, application_fee_amount=None,
            balance_transaction=txn["id"] if txn else None,
            billing_details={"address": _address(r), "email": customer["email"], "name": customer["name"],
                             "phone": None, "tax_id": None},
            calculated_statement_descriptor="EMULATED", captured=status == "succeeded", currency="usd",
            customer=customer["id"], description=None, disputed=False, failure_balance_transaction=None,
            failure_code=None if status == "succeeded" else "card_declined",
            failure_message=None if status == "succeeded" else "Your card was declined.",
            fraud_details={}, on_behalf_of=None,
            outcome={"network_status": "approved_by_network" if status == "succeeded" else "declined_by_network",
                     "reason": None, "risk_level": "normal", "risk_score": r.randint(0, 60),
                     "seller_message": "Payment complete.", "type": "authorized"},
            paid=status == "succeeded", payment_intent=pi["id"] if pi else None,
            payment_method=self.ids.new("pm"),
            payment_method_details={"card": {"brand": r.choice(["visa", "mastercard", "amex"]), "country": "US",
                                             "exp_month": r.randint(1, 12), "exp_year": 2030,
                                             "funding": "credit", "last4": f"{r.randint(0, 9999):04d}"},
                                    "type": "card"},
            receipt_email=customer["email"], receipt_number=None, receipt_url=None, refunded=False,
            review=None, shipping=None, source=None, source_transfer=None, statement_descriptor=None,
            statement_descriptor_suffix=None, status=status, transfer_data=None, transfer_group=None,
        )
        return self.store.add("charges", obj)

    def refund(self, charge: dict) -> dict:
        r = self.rng
        created = self.when(charge["created"])
        obj = self.base("re", "refund", created)
        del obj["livemode"]
        amount = min(charge["amount"] - charge["amount_refunded"], r.choice([500, charge["amount"]]))
        if amount <= 0:
            return obj
        txn = self.balance_transaction(obj["id"], -amount, created, "refund")
        obj.update(amount=amount, balance_transaction=txn["id"], charge=charge["id"], currency="usd",
                   customer=charge["customer"], destination_details=None, payment_intent=charge["payment_intent"],
                   payment_method=charge["payment_method"], reason="requested_by_customer", receipt_number=None,
                   source_transfer_reversal=None, status="succeeded", transfer_reversal=None)
        self.store.add("refunds", obj)
        refunded = charge["amount_refunded"] + amount
        self.store.patch("charges", charge["id"], amount_refunded=refunded, refunded=refunded >= charge["amount"])
        return obj

    def dispute(self, charge: dict) -> dict:
        r = self.rng
        created = self.when(charge["created"])
        obj = self.base("dp", "dispute", created)
        obj.update(amount=charge["amount"], balance_transactions=[], charge=charge["id"], currency="usd",
                   enhanced_eligibility_types=[], evidence={"customer_email_address": charge["receipt_email"]},
                   evidence_details={"due_by": created + 7 * 86400, "has_evidence": False, "past_due": False,
                                     "submission_count": 0},
                   is_charge_refundable=False, payment_intent=charge["payment_intent"],
                   reason=r.choice(["fraudulent", "product_not_received", "duplicate"]),
                   status=r.choice(["needs_response", "under_review", "won", "lost"]))
        self.store.add("disputes", obj)
        self.store.patch("charges", charge["id"], disputed=True)
        return obj

    def payout(self) -> dict:
        r = self.rng
        created = self.when()
        obj = self.base("po", "payout", created)
        amount = r.randint(10_000, 500_000)
        txn = self.balance_transaction(obj["id"], -amount, created, "payout")
        obj.update(amount=amount, application_fee=None, application_fee_amount=None, arrival_date=created + 2 * 86400,
                   automatic=True, balance_transaction=txn["id"], currency="usd", description="STRIPE PAYOUT",
                   destination=self.ids.new("ba"), failure_balance_transaction=None, failure_code=None,
                   failure_message=None, method="standard", original_payout=None, reconciliation_status="completed",
                   reversed_by=None, source_type="card", statement_descriptor=None,
                   status="paid" if created < self.now - 3 * 86400 else "in_transit", trace_id=None,
                   type="bank_account")
        return self.store.add("payouts", obj)

    def transfer(self) -> dict:
        r = self.rng
        created = self.when()
        obj = self.base("tr", "transfer", created)
        amount = r.randint(1_000, 50_000)
        txn = self.balance_transaction(obj["id"], -amount, created, "transfer")
        obj.update(amount=amount, amount_reversed=0, balance_transaction=txn["id"], currency="usd",
                   description=None, destination=self.ids.new("acct"), destination_payment=None,
                   reversals=_list([], "/v1/transfers/x/reversals"), reversed=False, source_transaction=None,
                   source_type="card", transfer_group=None)
        return self.store.add("transfers", obj)


Factory = Callable[..., dict]
