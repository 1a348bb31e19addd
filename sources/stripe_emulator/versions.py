"""`Stripe-Version`: the API versions the emulator renders, and how a 2026 object looks in 2022-11-15.

Stripe renders every response in the version the request asks for (or the account's default).
The emulator keeps its objects in the pinned version (`2026-10-28.endive`, stripe-python 16's)
and renders `2022-11-15` (the version other Stripe connectors pin) by rewriting each object the
way Stripe's changelog describes the changes between the two: e.g. an invoice's `parent` was
`subscription`, its payments were `charge`/`payment_intent`/`paid`; a line's `pricing` and
`parent` were `price`/`plan`/`type`/`subscription_item`/`invoice_item`/`proration`; taxes were
`tax_amounts`. Events keep the version they were created in, whatever the request says.
Any other version is refused the way Stripe refuses one it does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .store import API_VERSION, Store

V2022 = "2022-11-15"
SUPPORTED = (API_VERSION, V2022)

# Fields a 2026 object has that its 2022-11-15 form does not (top level; nested in `NESTED_DROPS`).
DROPS: dict[str, tuple[str, ...]] = {
    "invoice": ("amount_overpaid", "amount_paid_off_stripe", "automatically_finalizes_at", "confirmation_secret",
                "customer_account", "effective_at", "issuer", "parent", "payments", "rendering", "status_details",
                "total_pretax_credit_amounts", "total_taxes"),
    "line_item": ("invoice", "parent", "pretax_credit_amounts", "pricing", "quantity_decimal", "subtotal", "taxes"),
    "invoiceitem": ("customer_account", "net_amount", "parent", "pricing", "proration_details", "quantity_decimal"),
    "charge": ("authorization_code", "level3", "presentment_details", "source"),
    "payment_intent": ("allowed_payment_method_types", "customer_account", "excluded_payment_method_types", "hooks",
                       "managed_payments", "payment_details", "payment_method_configuration_details",
                       "payment_record", "presentment_details", "source"),
    "refund": ("customer", "customer_account", "destination_details", "payment_method", "pending_reason",
               "presentment_details"),
    "dispute": ("enhanced_eligibility_types", "intended_submission_method", "network_reason_code",
                "payment_method_details"),
    "balance_transaction": ("balance_type",),
    "payout": ("application_fee", "application_fee_amount", "payout_method", "trace_id"),
    "credit_note": ("customer_account", "effective_at", "post_payment_amount", "pre_payment_amount",
                    "pretax_credit_amounts", "refunds", "total_taxes"),
    "credit_note_line_item": ("metadata", "pretax_credit_amounts", "taxes"),
    "customer": ("business_name", "customer_account", "individual_name"),
    "subscription": ("billing_cycle_anchor_config", "billing_mode", "billing_schedules", "customer_account",
                     "discounts", "invoice_settings", "managed_payments", "presentment_details", "status_details"),
    "subscription_item": ("billed_until", "current_period_end", "current_period_start", "current_trial", "discounts"),
    "product": ("marketing_features", "tax_details", "type"),
    "plan": ("meter",),
    "promotion_code": ("customer_account", "promotion"),
    "tax_rate": ("flat_amount", "jurisdiction_level", "rate_type"),
    "account": ("groups",),
}
NESTED_DROPS: dict[str, tuple[tuple[str, str], ...]] = {
    "dispute": (("evidence", "enhanced_evidence"), ("evidence_details", "enhanced_eligibility"),
                ("evidence_details", "submission_method")),
}

# Expandable fields that differ in 2022-11-15: (added, removed) per object
EXPANDABLE_2022: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "invoice": (frozenset({"charge", "payment_intent", "subscription", "quote", "total_tax_amounts.tax_rate",
                           "transfer_data.destination"}),
                frozenset({"issuer.account", "parent.subscription_details.subscription",
                           "automatic_tax.liability.account",
                           "total_pretax_credit_amounts.credit_balance_transaction",
                           "total_pretax_credit_amounts.discount"})),
    "line_item": (frozenset({"invoice_item", "subscription", "subscription_item", "tax_amounts.tax_rate"}),
                  frozenset({"pricing.price_details.price", "pretax_credit_amounts.credit_balance_transaction",
                             "pretax_credit_amounts.discount"})),
    "invoiceitem": (frozenset({"subscription", "subscription_item"}),
                    frozenset({"pricing.price_details.price", "proration_details.discount_amounts.discount"})),
    "charge": (frozenset({"invoice"}), frozenset()),
    "payment_intent": (frozenset({"invoice"}), frozenset({"payment_record", "source"})),
    "credit_note": (frozenset({"refund", "tax_amounts.tax_rate"}),
                    frozenset({"refunds.refund", "pretax_credit_amounts.credit_balance_transaction",
                               "pretax_credit_amounts.discount"})),
    "credit_note_line_item": (frozenset({"tax_amounts.tax_rate"}),
                              frozenset({"pretax_credit_amounts.credit_balance_transaction",
                                         "pretax_credit_amounts.discount"})),
    "subscription": (frozenset(), frozenset({"billing_schedules.applies_to.price", "invoice_settings.account_tax_ids",
                                             "invoice_settings.issuer.account", "discounts"})),
    "subscription_item": (frozenset(), frozenset({"discounts"})),
    "promotion_code": (frozenset(), frozenset({"promotion.coupon"})),
    "refund": (frozenset(), frozenset({"customer", "payment_method"})),
}


def expandable(object_name: str, fields: frozenset[str], version: str) -> frozenset[str]:
    if version != V2022 or object_name not in EXPANDABLE_2022:
        return fields
    added, removed = EXPANDABLE_2022[object_name]
    return (fields | added) - removed


def render(store: Store, value: Any, version: str) -> Any:
    """A 2026 object (and every object embedded in it) in `version`'s shape."""
    if version == API_VERSION:
        return value
    if isinstance(value, list):
        return [render(store, item, version) for item in value]
    if not isinstance(value, dict) or value.get("object") == "event":  # events keep their own version
        return value
    value = {key: render(store, item, version) for key, item in value.items()}
    name = value.get("object")
    if name in ADDS:
        value.update(ADDS[name](store, value))
    for field in DROPS.get(name, ()):
        value.pop(field, None)
    for outer, inner in NESTED_DROPS.get(name, ()):
        if isinstance(value.get(outer), dict):
            value[outer] = {k: v for k, v in value[outer].items() if k != inner}
    return value


def _tax_amounts(taxes: list | None) -> list[dict]:
    return [{"amount": t["amount"], "inclusive": t["tax_behavior"] == "inclusive",
             "tax_rate": t["tax_rate_details"]["tax_rate"], "taxability_reason": t["taxability_reason"],
             "taxable_amount": t["taxable_amount"]} for t in taxes or []]


def _invoice_of_payment(store: Store, pi_id: str | None) -> str | None:
    return store.extra(pi_id, "invoice") if pi_id else None


def _invoice(store: Store, invoice: dict) -> dict:
    payments = [store.get("invoice_payments", p) for p in store.related("invoice_payments", invoice["id"])]
    paid = [p for p in payments if p["status"] == "paid"]
    pi_id = paid[-1]["payment"]["payment_intent"] if paid else None
    pi = store.get("payment_intents", pi_id) if pi_id else None
    parent = invoice.get("parent") or {}
    taxes = invoice.get("total_taxes") or []
    first_discount = invoice["discounts"][0] if invoice.get("discounts") else None
    return {
        "application_fee_amount": None, "charge": pi["latest_charge"] if pi else None,
        "discount": store.get("discounts", first_discount) if isinstance(first_discount, str) else first_discount,
        "paid": invoice["status"] == "paid", "paid_out_of_band": False, "payment_intent": pi_id, "quote": None,
        "rendering_options": None,
        "subscription": (parent.get("subscription_details") or {}).get("subscription"),
        "subscription_proration_date": None,
        "tax": sum(t["amount"] for t in taxes) if taxes else None, "total_tax_amounts": _tax_amounts(taxes),
        "transfer_data": None,
    }


def _line(store: Store, line: dict) -> dict:
    parent = line.get("parent") or {}
    item = parent.get("subscription_item_details")
    invoice_item = parent.get("invoice_item_details")
    price_id = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
    price = store.get("prices", price_id) if isinstance(price_id, str) and price_id in \
        store.collections["prices"].objects else price_id
    plan = store.get("plans", price["id"]) if isinstance(price, dict) and price["id"] in \
        store.collections["plans"].objects else None
    discounts = sum(d["amount"] for d in line.get("discount_amounts") or [])
    excluding = line["amount"] - discounts
    quantity = line.get("quantity") or 1
    return {
        "amount_excluding_tax": excluding,
        "invoice_item": invoice_item["invoice_item"] if invoice_item else None,
        "plan": render(store, plan, V2022), "price": render(store, price, V2022),
        "proration": (item or invoice_item or {}).get("proration", False),
        "proration_details": {"credited_items": None},
        "subscription": (item or invoice_item or {}).get("subscription"),
        "subscription_item": item["subscription_item"] if item else None,
        "tax_amounts": _tax_amounts(line.get("taxes")), "tax_rates": [],
        "type": "subscription" if item else "invoiceitem",
        "unit_amount_excluding_tax": str(excluding // quantity) if quantity else None,
    }


def _invoiceitem(store: Store, item: dict) -> dict:
    price_id = ((item.get("pricing") or {}).get("price_details") or {}).get("price")
    price = store.get("prices", price_id) if isinstance(price_id, str) and price_id in \
        store.collections["prices"].objects else price_id
    details = (item.get("parent") or {}).get("subscription_details") or {}
    quantity = item.get("quantity") or 1
    return {"price": render(store, price, V2022), "plan": None, "subscription": details.get("subscription"),
            "subscription_item": details.get("subscription_item"), "unit_amount": item["amount"] // quantity,
            "unit_amount_decimal": str(item["amount"] // quantity)}


def _subscription(store: Store, sub: dict) -> dict:
    items = store.children("subscription_items", sub["id"])
    first_discount = sub["discounts"][0] if sub.get("discounts") else None
    return {"current_period_end": min((i["current_period_end"] for i in items), default=sub["created"]),
            "current_period_start": max((i["current_period_start"] for i in items), default=sub["created"]),
            "discount": store.get("discounts", first_discount) if isinstance(first_discount, str) else first_discount}


def _credit_note(store: Store, note: dict) -> dict:
    refunds = note.get("refunds") or []
    return {"refund": refunds[0]["refund"] if refunds else None, "tax_amounts": _tax_amounts(note.get("total_taxes"))}


def _credit_line(store: Store, line: dict) -> dict:
    excluding = line["amount"] - line.get("discount_amount", 0)
    return {"amount_excluding_tax": excluding, "tax_amounts": _tax_amounts(line.get("taxes")),
            "unit_amount_excluding_tax": str(excluding // (line.get("quantity") or 1))}


def _promotion_code(store: Store, promo: dict) -> dict:
    coupon = (promo.get("promotion") or {}).get("coupon")
    return {"coupon": store.get("coupons", coupon) if isinstance(coupon, str) and coupon in
            store.collections["coupons"].objects else coupon}


ADDS: dict[str, Callable[[Store, dict], dict]] = {
    "invoice": _invoice,
    "line_item": _line,
    "invoiceitem": _invoiceitem,
    "charge": lambda store, charge: {"invoice": _invoice_of_payment(store, charge.get("payment_intent"))},
    "payment_intent": lambda store, pi: {"invoice": _invoice_of_payment(store, pi.get("id"))},
    "subscription": _subscription,
    "credit_note": _credit_note,
    "credit_note_line_item": _credit_line,
    "plan": lambda store, plan: {"aggregate_usage": None},
    "promotion_code": _promotion_code,
}
