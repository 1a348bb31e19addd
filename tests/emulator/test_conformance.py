"""Every object the emulator serves conforms to stripe-python 16.1's model of API version 2026-10-28.endive.

Walked through the HTTP API as a client sees them: every list page, every sub-list page of a few
parents per kind, single reads, includable fields expanded, the account and balance, and the
`data.object` of every event type the world holds. A missing field, a null where the model
requires a value, a wrong type, a value outside the model's enum or a field the model does not
know is a failure (see `stripe_model.problems`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.objects import BY_NAME, LISTED, OBJECTS, RELATIONS, SUB_LIST_OF

from . import stripe_model
from .conftest import client_for

# Fields the model declares that Stripe's API does not always return (not `required` in Stripe's
# OpenAPI spec): includable ones come only when expanded; the others only in some situations; and
# `deleted` only in the answer to a DELETE. Every other field must be present, null or not.
NOT_ALWAYS_RETURNED: dict[str, set[str]] = {
    "customer": {"cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax", "tax_ids",  # expand
                 "business_name", "individual_name"},  # only for customers created with them (Accounts v2)
    "price": {"currency_options", "tiers"},  # expand
    "plan": {"tiers"},  # expand
    "coupon": {"applies_to", "currency_options"},  # expand
    "invoice": {"payments", "confirmation_secret",  # expand
                "amount_paid_off_stripe", "status_details", "threshold_reason"},  # only when they apply
    "charge": {"refunds",  # expand
               "authorization_code", "level3", "presentment_details", "radar_options", "transfer"},
    "payment_intent": {"allowed_payment_method_types", "hooks", "payment_details", "payment_record",
                       "presentment_details"},
    "refund": {"description", "failure_balance_transaction", "failure_reason", "instructions_email", "next_action",
               "pending_reason", "presentment_details"},
    "dispute": {"intended_submission_method", "network_reason_code"},
    "subscription": {"presentment_details", "status_details"},
    "subscription_item": {"billed_until", "current_trial"},
    "invoiceitem": {"frozen_fields", "invoicing_rules", "proration_details"},
    "product": {"tax_details"},
    "event": {"account", "context"},  # `account` only for a connected account's events
    "account": {"company", "groups", "individual"},
    "balance": {"instant_available", "issuing", "refund_and_dispute_prefunding"},
    "card": {"account", "available_payout_methods", "currency", "default_for_currency", "description", "iin",
             "issuer", "networks", "status"},  # a customer's card: the payout-card fields are an account's
    "tax_code": {"requirements"},
    "payment_method": {"radar_options"},
    # Not in Stripe's example objects (fixtures3): returned only where they apply, `line_items` when expanded
    "checkout.session": {"line_items", "allowed_payment_method_types", "branding_settings",
                         "excluded_payment_method_types", "name_collection", "optional_items", "presentment_details",
                         "redirect_on_completion", "return_url", "tax_id_collection"},
    "payment_link": {"line_items", "name_collection", "optional_items"},
    "setup_intent": {"allowed_payment_method_types", "attach_to_self", "managed_payments"},
    "setup_attempt": {"attach_to_self"},
    "topup": {"payment_method", "payment_method_options"},
    "item": {"discounts", "taxes"},  # expand
    "quote": {"line_items"},  # expand
    "issuing.authorization": {"fraud_challenges", "treasury"},
    "issuing.card": {"cvc", "number",  # expand
                     "financial_account"},  # Treasury only
    "issuing.transaction": {"purchase_details",  # expand
                            "treasury"},
    "issuing.dispute": {"treasury"},
}
# Objects with a `type` carry the sub-object named after it (`card` for a card payment method) and
# not those of the other types.
TYPED = {"payment_method"}


def top_level_problems(obj: dict) -> list[str]:
    """Fields absent at the top level although Stripe always returns them, on top of the model's checks."""
    name = obj.get("object")
    cls = stripe_model.by_object_name()[name]
    optional = NOT_ALWAYS_RETURNED.get(name, set()) | {"deleted"}
    if name in TYPED:
        optional |= {f for f in stripe_model.fields(cls) if f != obj.get("type") and f not in obj
                     and _is_type_value(cls, f)}
    # the model reports its required fields itself; this adds the nullable ones Stripe always sends
    missing = [f"{cls.__name__}.{f}: missing (Stripe always returns it, null or not)"
               for f, annotation in stripe_model.fields(cls).items()
               if f not in obj and f not in optional and stripe_model.optional(annotation)]
    return missing + stripe_model.problems(obj)


def _is_type_value(cls: type, field: str) -> bool:
    return field in re.findall(r"'(\w+)'", repr(stripe_model.fields(cls).get("type")))


def pages(fetch: Callable[..., dict], path: str, **params) -> Iterator[dict]:
    """Every object of a list, page by page (100 a page)."""
    after = None
    while True:
        page = fetch(path, limit=100, **params, **({"starting_after": after} if after else {}))
        yield from page["data"]
        if not page["has_more"]:
            return
        after = page["data"][-1]["id"]


@pytest.fixture(scope="module")
def served(world: Emulator) -> dict[str, list[dict]]:
    """What the API serves, by `object` value: every list, sub-lists, reads, expansions, events."""
    sdk = client_for(world)
    found: dict[str, list[dict]] = defaultdict(list)
    for account in (None, world.connected_account_ids[0]):
        options = {"stripe_account": account} if account else {}

        def get(path: str, **params) -> dict:
            return sdk.raw_request("get", path, **params, **options).data  # type: ignore[attr-defined]  # noqa: B023

        for entry in LISTED:
            if entry.name in SUB_LIST_OF:
                continue  # paged through their parents below
            if entry.rules.required:
                continue  # listed per parent below (setup attempts need their setup intent)
            params = {"status": "all"} if entry.name == "subscriptions" else {}
            objects = list(pages(get, entry.path, **params))
            found[entry.object] += objects
            for sub in entry.sub_lists:
                parents = sorted(objects, key=lambda o: -len(o[sub.field]["data"]))[:4]
                for parent in parents:
                    path, _, query = sub.path.format(id=parent["id"]).partition("?")
                    extra = dict([query.split("=")]) if query else {}
                    found[BY_NAME[sub.item].object] += list(pages(get, path, **extra))
            if entry.retrieve and objects:
                found[entry.object].append(get(entry.retrieve.format(id=objects[0]["id"])))
        for intent in found["setup_intent"][:6]:
            found["setup_attempt"] += list(pages(get, "/v1/setup_attempts", setup_intent=intent["id"]))
        for relation, (resource, url) in RELATIONS.items():  # lists that page one parent's objects
            if "?" in url:
                continue
            store = world.store(account)
            for parent_id in [p for p in store.relations.get(relation, {}) if store.find(p)][:4]:
                found[BY_NAME[resource].object] += list(pages(get, url.format(id=parent_id)))
        for connected in world.connected_account_ids if account is None else ():  # the platform's reads of them
            for listed in ("persons", "external_accounts"):
                for obj in pages(get, f"/v1/accounts/{connected}/{listed}"):
                    found[obj["object"]].append(obj)
        found["account"].append(get("/v1/account"))
        found["balance"].append(get("/v1/balance"))
        # includable fields, and objects only reached through `expand`
        expansions = {"/v1/customers": ["data.sources", "data.subscriptions", "data.tax_ids", "data.cash_balance",
                                        "data.invoice_credit_balance", "data.tax",
                                        "data.invoice_settings.default_payment_method", "data.default_source"],
                      "/v1/prices": ["data.tiers", "data.currency_options"], "/v1/plans": ["data.tiers"],
                      "/v1/coupons": ["data.applies_to", "data.currency_options"],
                      "/v1/charges": ["data.refunds"], "/v1/invoices": ["data.payments", "data.discounts"],
                      "/v1/payouts": ["data.destination"], "/v1/products": ["data.tax_code"],
                      "/v1/payment_intents": ["data.payment_method"], "/v1/transfers": ["data.destination"],
                      "/v1/checkout/sessions": ["data.line_items"], "/v1/payment_links": ["data.line_items"]}
        for path, expand in expansions.items():
            found["expanded"] += get(path, limit=100, expand=expand)["data"]
    return found


def test_every_served_object_conforms_to_the_pinned_model(served: dict[str, list[dict]]):
    problems: dict[str, int] = defaultdict(int)
    for objects in served.values():
        for obj in objects:
            for problem in top_level_problems(obj):
                problems[re.sub(r"\[\d+\]", "[]", problem)] += 1
    assert not problems, "\n".join(f"{n} × {p}" for p, n in sorted(problems.items()))


def test_every_object_type_and_includable_field_was_walked(served: dict[str, list[dict]]):
    kinds = {entry.object for entry in OBJECTS}
    walked = set(served) | {o["object"] for o in served["expanded"]}
    nested = {v["object"] for o in served["expanded"] for v in o.values() if isinstance(v, dict) and "object" in v}
    nested |= {d["object"] for o in served["expanded"] for v in o.values() if isinstance(v, dict)
               for d in v.get("data", []) if isinstance(d, dict)}
    assert kinds - walked - nested <= {"discount", "invoice_payment", "tax_id", "card"} - nested
    for includable in ("tiers", "refunds", "sources", "subscriptions", "tax_ids", "payments", "currency_options"):
        assert any(includable in o for o in served["expanded"]), includable


def test_every_event_type_carries_a_conforming_object(world: Emulator):
    problems: dict[str, set[str]] = defaultdict(set)
    types = set()
    for account in (None, world.connected_account_ids[0]):
        for event in world.objects("events", account=account):
            types.add(event["type"])
            for problem in top_level_problems(event) + top_level_problems(event["data"]["object"]):
                problems[event["type"]].add(re.sub(r"\[\d+\]", "[]", problem))
    assert len(types) > 40
    assert not problems, "\n".join(f"{t}: {sorted(p)[:5]}" for t, p in sorted(problems.items()))


def test_the_checker_catches_a_missing_field_a_wrong_type_and_a_value_outside_the_enum(world: Emulator):
    invoice = world.objects("invoices")[0]
    assert top_level_problems(invoice) == []
    broken = dict(invoice, status="archived", total="12.00")
    del broken["amount_overpaid"]
    broken["lines"] = dict(invoice["lines"], data=[{k: v for k, v in invoice["lines"]["data"][0].items()
                                                    if k != "period"}])
    found = top_level_problems(broken)
    assert "Invoice.amount_overpaid: missing" in found  # required by the model
    without_footer = {k: v for k, v in invoice.items() if k != "footer"}  # nullable, yet always returned
    assert top_level_problems(without_footer) == ["Invoice.footer: missing (Stripe always returns it, null or not)"]
    assert "Invoice.total: '12.00' is not an integer" in found
    assert any(p.startswith("Invoice.status: 'archived' is not one of") for p in found)
    assert "Invoice.lines.data[0].period: missing" in found
    nullable = dict(invoice, description=None, footer=None)
    assert top_level_problems(nullable) == []
    unknown = dict(invoice, subscription=invoice["id"])  # a 2022-11-15 field: not in this version
    assert top_level_problems(unknown) == ["Invoice.subscription: not in stripe-python's Invoice"]


def test_subscription_items_carry_a_plan_mirroring_their_price(world: Emulator):
    for item in world.objects("subscription_items"):
        plan, price = item["plan"], item["price"]
        assert plan["object"] == "plan" and plan["id"] == price["id"]
        assert (plan["amount"], plan["currency"], plan["interval"], plan["product"], plan["usage_type"]) == (
            price["unit_amount"], price["currency"], price["recurring"]["interval"], price["product"],
            price["recurring"]["usage_type"])


def test_references_name_objects_that_exist(world: Emulator):
    store = world.store()
    items = {i["id"]: i for i in world.objects("subscription_items")}
    invoiceitems = {i["id"]: i for i in world.objects("invoiceitems")}
    for line in world.objects("invoice_line_items"):
        parent = line["parent"]
        if parent["type"] == "subscription_item_details":
            item = items[parent["subscription_item_details"]["subscription_item"]]
            assert item["subscription"] == parent["subscription_item_details"]["subscription"]
            assert line["pricing"]["price_details"]["price"] == item["price"]["id"]
        else:
            invoiceitem = invoiceitems[parent["invoice_item_details"]["invoice_item"]]
            assert invoiceitem["invoice"] == line["invoice"] and invoiceitem["amount"] == line["amount"]
    for txn in world.objects("balance_transactions"):
        assert txn["net"] == txn["amount"] - txn["fee"] == txn["amount"] - sum(f["amount"] for f in txn["fee_details"])
        assert store.find(txn["source"]) is not None, txn["source"]
        if txn["type"] in ("refund", "payout", "transfer", "transfer_refund"):
            assert txn["fee_details"] == [] and txn["fee"] == 0
    customers = {c["id"] for c in world.objects("customers")}
    for charge in world.objects("charges"):
        assert charge["customer"] in customers or charge["customer"] in world.deleted_ids("customers")
    for resource in ("charges", "payment_intents", "refunds", "transfers", "payouts"):
        assert all(o["amount"] > 0 for o in world.objects(resource)), resource  # credits never become payments
    for invoice in world.objects("invoices"):
        assert invoice["amount_due"] >= 0 and invoice["amount_remaining"] >= 0
        lines = world.lines_of(invoice["id"])
        assert invoice["subtotal"] == sum(line["amount"] for line in lines)
        assert invoice["total"] == invoice["subtotal"] - sum(d["amount"] for d in invoice["total_discount_amounts"]) \
            + sum(t["amount"] for t in invoice["total_taxes"])


def test_the_world_has_variety(world: Emulator):
    prices = world.objects("prices")
    assert {"per_unit", "tiered"} <= {p["billing_scheme"] for p in prices}
    assert {"licensed", "metered"} <= {p["recurring"]["usage_type"] for p in prices if p["recurring"]}
    assert {"usd", "eur", "gbp"} <= {c["currency"] for c in world.objects("charges")}
    invoices = world.objects("invoices")
    assert {"draft", "open", "paid", "void", "uncollectible"} <= {i["status"] for i in invoices}
    assert any(i["total_discount_amounts"] for i in invoices) and any(i["total_taxes"] for i in invoices)
    assert any(line["parent"]["invoice_item_details"] and line["parent"]["invoice_item_details"]["proration"]
               for line in world.objects("invoice_line_items"))
    assert {"active", "trialing", "past_due", "canceled", "incomplete", "unpaid"} <= {
        s["status"] for s in world.objects("subscriptions")}
    intents = world.objects("payment_intents")
    assert {"succeeded", "requires_payment_method", "canceled"} <= {p["status"] for p in intents}
    assert {"succeeded", "failed"} <= {c["status"] for c in world.objects("charges")}
    assert {"won", "lost", "needs_response"} <= {d["status"] for d in world.objects("disputes")}
    assert {"paid", "failed"} <= {p["status"] for p in world.objects("payouts")}
    assert any(c["address"] is None for c in world.objects("customers"))
    assert stripe.api_version == "2026-10-28.endive"
