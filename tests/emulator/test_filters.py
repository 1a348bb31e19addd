"""Every documented filter of every served list, probed: a value that matches some objects and one
that matches none, each giving exactly the objects Stripe's documentation says, never the whole list.

The filters to probe come from stripe-python's `<Object>ListParams` (the pinned version's
documented parameters), so a filter the documentation adds and nobody probes fails the last test.
What each filter keeps is written here from Stripe's documentation, independently of the emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
import stripe.params
from stripe._request_options import RequestOptions

from stripe_emulator import Emulator
from stripe_emulator.objects import LISTED

from .conftest import client_for

PAGING = {"limit", "starting_after", "ending_before", "expand", "created"}  # tested in test_lists.py
PARAMS_CLASS = {"invoiceitems": "InvoiceItemListParams", "checkout_sessions": "checkout.SessionListParams",
                "early_fraud_warnings": "radar.EarlyFraudWarningListParams", "meters": "billing.MeterListParams",
                "credit_grants": "billing.CreditGrantListParams",
                "entitlement_features": "entitlements.FeatureListParams",
                "issuing_cardholders": "issuing.CardholderListParams", "issuing_cards": "issuing.CardListParams",
                "issuing_authorizations": "issuing.AuthorizationListParams",
                "issuing_transactions": "issuing.TransactionListParams",
                "issuing_disputes": "issuing.DisputeListParams"}  # the others: <Object>ListParams


def documented_filters(entry) -> set[str]:
    name = PARAMS_CLASS.get(entry.name) or "".join(p.title() for p in entry.object.split("_")) + "ListParams"
    params: Any = stripe.params
    for part in name.split("."):
        params = getattr(params, part)
    return set(params.__annotations__) - set(RequestOptions.__annotations__) - PAGING


def ref(obj: dict, *path: str) -> Any:
    for part in path:
        obj = (obj or {}).get(part)  # type: ignore[assignment]
    return obj.get("id") if isinstance(obj, dict) else obj


def items_of(world: Emulator, sub: dict) -> list[dict]:
    return world.lines_of(sub["id"])


def period(pick: Callable, key: str) -> Callable[[dict, Emulator], int]:
    return lambda sub, world: pick(i[key] for i in items_of(world, sub))


# (list, filter) -> (what Stripe keeps: test(object, value, world), how to find a matching value)
# Values: "id-field" picks a value some objects have; "flag" tries true and false; "range" a window.
def field(*path: str) -> tuple[Callable, Callable]:
    return (lambda o, v, w: ref(o, *path) == v), (lambda objs, w: [ref(o, *path) for o in objs])


def enum(*path: str, values: tuple[str, ...]) -> tuple[Callable, tuple]:
    return (lambda o, v, w: ref(o, *path) == v), ("enum", values)


def flag(name: str) -> tuple[Callable, str]:
    return (lambda o, v, w: o.get(name) is (v == "true")), "flag"


def _email(session: dict) -> str | None:
    return (session["customer_details"] or {}).get("email")


def window(stamp: Callable[[dict, Emulator], int | None]) -> tuple[Callable, tuple]:
    def keeps(o: dict, v: dict, w: Emulator) -> bool:
        t = stamp(o, w)
        return t is not None and int(v["gte"]) <= t < int(v["lt"])
    return keeps, ("range", stamp)


PROBES: dict[tuple[str, str], tuple[Callable, Any]] = {
    ("charges", "customer"): field("customer"),
    ("charges", "payment_intent"): field("payment_intent"),
    ("charges", "transfer_group"): field("transfer_group"),
    ("payment_intents", "customer"): field("customer"),
    ("payment_intents", "customer_account"): field("customer_account"),
    ("refunds", "charge"): field("charge"),
    ("refunds", "payment_intent"): field("payment_intent"),
    ("disputes", "charge"): field("charge"),
    ("disputes", "payment_intent"): field("payment_intent"),
    ("balance_transactions", "currency"): field("currency"),
    ("balance_transactions", "source"): field("source"),
    ("balance_transactions", "type"): field("type"),  # documented as "one of" Stripe's many types
    ("balance_transactions", "payout"): (lambda o, v, w: w.store().settled_by.get(o["id"]) == v,
                                         lambda objs, w: list(w.store().settled_by.values())),
    ("payouts", "arrival_date"): window(lambda o, w: o["arrival_date"]),
    ("payouts", "destination"): field("destination"),
    ("payouts", "status"): enum("status", values=("pending", "paid", "failed", "canceled", "in_transit")),
    ("transfers", "destination"): field("destination"),
    ("transfers", "transfer_group"): field("transfer_group"),
    ("invoices", "collection_method"): enum("collection_method", values=("charge_automatically", "send_invoice")),
    ("invoices", "customer"): field("customer"),
    ("invoices", "customer_account"): field("customer_account"),
    ("invoices", "due_date"): window(lambda o, w: o["due_date"]),
    ("invoices", "status"): enum("status", values=("draft", "open", "paid", "uncollectible", "void")),
    ("invoices", "subscription"): field("parent", "subscription_details", "subscription"),
    ("invoiceitems", "customer"): field("customer"),
    ("invoiceitems", "customer_account"): field("customer_account"),
    ("invoiceitems", "invoice"): field("invoice"),
    ("invoiceitems", "pending"): ((lambda o, v, w: (o["invoice"] is None) is (v == "true")), "flag"),
    ("credit_notes", "customer"): field("customer"),
    ("credit_notes", "customer_account"): field("customer_account"),
    ("credit_notes", "invoice"): field("invoice"),
    ("customers", "email"): field("email"),
    ("customers", "test_clock"): field("test_clock"),
    ("subscriptions", "automatic_tax"): ((lambda o, v, w: o["automatic_tax"]["enabled"] is (v["enabled"] == "true")),
                                         "hash-flag"),
    ("subscriptions", "collection_method"): enum("collection_method",
                                                 values=("charge_automatically", "send_invoice")),
    ("subscriptions", "current_period_end"): window(period(min, "current_period_end")),
    ("subscriptions", "current_period_start"): window(period(max, "current_period_start")),
    ("subscriptions", "customer"): field("customer"),
    ("subscriptions", "customer_account"): field("customer_account"),
    ("subscriptions", "plan"): ((lambda o, v, w: any(i["plan"]["id"] == v for i in items_of(w, o))),
                                lambda objs, w: [i["plan"]["id"] for o in objs for i in items_of(w, o)]),
    ("subscriptions", "price"): ((lambda o, v, w: any(i["price"]["id"] == v for i in items_of(w, o))),
                                 lambda objs, w: [i["price"]["id"] for o in objs for i in items_of(w, o)]),
    ("subscriptions", "status"): ((lambda o, v, w: v == "all" or o["status"] == v or (
        v == "ended" and o["status"] in ("canceled", "incomplete_expired"))),
        ("enum", ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due", "paused",
                  "trialing", "unpaid"))),
    ("subscriptions", "test_clock"): field("test_clock"),
    ("products", "active"): flag("active"),
    ("products", "ids"): ((lambda o, v, w: o["id"] in v), "ids:id"),
    ("products", "shippable"): flag("shippable"),
    ("products", "type"): enum("type", values=("good", "service")),
    ("products", "url"): field("url"),
    ("prices", "active"): flag("active"),
    ("prices", "currency"): field("currency"),
    ("prices", "lookup_keys"): ((lambda o, v, w: o["lookup_key"] in v), "ids:lookup_key"),
    ("prices", "product"): field("product"),
    ("prices", "recurring"): ((lambda o, v, w: bool(o["recurring"]) and o["recurring"]["interval"] == v["interval"]),
                              "hash-interval"),
    ("prices", "type"): enum("type", values=("one_time", "recurring")),
    ("plans", "active"): flag("active"),
    ("plans", "product"): field("product"),
    ("promotion_codes", "active"): flag("active"),
    ("promotion_codes", "code"): ((lambda o, v, w: o["code"].lower() == v.lower()),
                                  lambda objs, w: [o["code"].lower() for o in objs]),  # case-insensitive
    ("promotion_codes", "coupon"): field("promotion", "coupon"),
    ("promotion_codes", "customer"): field("customer"),
    ("promotion_codes", "customer_account"): field("customer_account"),
    ("tax_rates", "active"): flag("active"),
    ("tax_rates", "inclusive"): flag("inclusive"),
    ("checkout_sessions", "customer"): field("customer"),
    ("checkout_sessions", "customer_account"): field("customer_account"),
    ("checkout_sessions", "customer_details"): ((lambda o, v, w: _email(o) == v["email"]), ("hash", "email", _email)),
    ("checkout_sessions", "payment_intent"): field("payment_intent"),
    ("checkout_sessions", "payment_link"): field("payment_link"),
    ("checkout_sessions", "status"): enum("status", values=("complete", "expired", "open")),
    ("checkout_sessions", "subscription"): field("subscription"),
    ("payment_links", "active"): flag("active"),
    ("setup_intents", "attach_to_self"): ((lambda o, v, w: bool(o.get("attach_to_self")) is (v == "true")), "flag"),
    ("setup_intents", "customer"): field("customer"),
    ("setup_intents", "customer_account"): field("customer_account"),
    ("setup_intents", "payment_method"): field("payment_method"),
    ("setup_attempts", "setup_intent"): field("setup_intent"),
    ("early_fraud_warnings", "charge"): field("charge"),
    ("early_fraud_warnings", "payment_intent"): field("payment_intent"),
    ("topups", "amount"): window(lambda o, w: o["amount"]),
    ("topups", "status"): enum("status", values=("canceled", "failed", "pending", "succeeded")),
    ("application_fees", "charge"): field("charge"),
    ("meters", "status"): enum("status", values=("active", "inactive")),
    ("shipping_rates", "active"): flag("active"),
    ("shipping_rates", "currency"): field("fixed_amount", "currency"),
    ("entitlement_features", "archived"): ((lambda o, v, w: (not o["active"]) is (v == "true")), "flag"),
    ("entitlement_features", "lookup_key"): field("lookup_key"),
    ("quotes", "customer"): field("customer"),
    ("quotes", "customer_account"): field("customer_account"),
    ("quotes", "status"): enum("status", values=("accepted", "canceled", "draft", "open")),
    ("quotes", "test_clock"): field("test_clock"),
    ("subscription_schedules", "canceled_at"): window(lambda o, w: o["canceled_at"]),
    ("subscription_schedules", "completed_at"): window(lambda o, w: o["completed_at"]),
    ("subscription_schedules", "customer"): field("customer"),
    ("subscription_schedules", "customer_account"): field("customer_account"),
    ("subscription_schedules", "released_at"): window(lambda o, w: o["released_at"]),
    ("subscription_schedules", "scheduled"): ((lambda o, v, w: (o["status"] == "not_started") is (v == "true")),
                                              "flag"),
    ("credit_grants", "customer"): field("customer"),
    ("credit_grants", "customer_account"): field("customer_account"),
    ("issuing_cardholders", "email"): field("email"),
    ("issuing_cardholders", "phone_number"): field("phone_number"),
    ("issuing_cardholders", "status"): enum("status", values=("active", "blocked", "inactive")),
    ("issuing_cardholders", "type"): enum("type", values=("company", "individual")),
    ("issuing_cards", "cardholder"): field("cardholder"),
    ("issuing_cards", "exp_month"): ((lambda o, v, w: str(o["exp_month"]) == v),
                                     lambda objs, w: [str(o["exp_month"]) for o in objs]),
    ("issuing_cards", "exp_year"): ((lambda o, v, w: str(o["exp_year"]) == v),
                                    lambda objs, w: [str(o["exp_year"]) for o in objs]),
    ("issuing_cards", "last4"): field("last4"),
    ("issuing_cards", "personalization_design"): field("personalization_design"),
    ("issuing_cards", "status"): enum("status", values=("active", "canceled", "inactive")),
    ("issuing_cards", "type"): enum("type", values=("physical", "virtual")),
    ("issuing_authorizations", "card"): field("card"),
    ("issuing_authorizations", "cardholder"): field("cardholder"),
    ("issuing_authorizations", "status"): enum("status", values=("closed", "expired", "pending", "reversed")),
    ("issuing_transactions", "card"): field("card"),
    ("issuing_transactions", "cardholder"): field("cardholder"),
    ("issuing_transactions", "type"): enum("type", values=("capture", "refund")),
    ("issuing_disputes", "status"): enum("status", values=("expired", "lost", "submitted", "unsubmitted", "won")),
    ("issuing_disputes", "transaction"): field("transaction"),
    ("files", "purpose"): field("purpose"),
    ("file_links", "expired"): flag("expired"),
    ("file_links", "file"): field("file"),
    ("invoice_payments", "invoice"): field("invoice"),
    ("invoice_payments", "payment"): ((lambda o, v, w: o["payment"].get("payment_intent") == v["payment_intent"]),
                                      ("hash", "payment_intent", lambda o: o["payment"].get("payment_intent"))),
    ("invoice_payments", "status"): enum("status", values=("canceled", "open", "paid")),
    ("events", "type"): field("type"),
    ("events", "types"): ((lambda o, v, w: o["type"] in v), "ids:type"),
    ("events", "delivery_success"): ((lambda o, v, w: (o["id"] not in w.store().undelivered) is (v == "true")),
                                     "flag"),
}


@pytest.fixture(scope="module")
def arranged() -> Iterator[Emulator]:
    """A seeded world plus what it may lack for a filter to match: objects on a test clock (Stripe
    hides them from lists unless asked) and of a customer an Accounts v2 account represents."""
    with Emulator(seed=3, scale=2500, connected_accounts=0) as emu:
        clocked = emu.create("customers", test_clock="clock_1Probe00000000")
        emu.create("subscriptions", customer=clocked["id"])
        represented = emu.create("customers", customer_account="acct_1ProbeCustomer0")
        emu.create("subscriptions", customer=represented["id"])
        paid = emu.create("invoices", customer=represented["id"], status="paid")
        emu.create("credit_notes", invoice=paid["id"])
        emu.create("invoiceitems", customer=represented["id"])
        emu.create("payment_intents", customer=represented["id"])
        emu.create("promotion_codes", customer=represented["id"])
        emu.create("application_fees")
        emu.create("application_fees")
        emu.create("entitlement_features", active=False)
        emu.create("quotes", customer=represented["id"])
        emu.create("quotes", customer=clocked["id"])
        emu.create("subscription_schedules", customer=represented["id"], status="not_started")
        for days in (300, 320, 340):  # schedules that ran their course
            emu.create("subscription_schedules", status="completed", created=emu.now() - days * 86400)
        emu.create("credit_grants", customer=represented["id"])
        emu.create("setup_intents", customer=represented["id"])
        emu.create("setup_intents", attach_to_self=True)
        emu.create("checkout_sessions", customer=represented["id"], status="open")
        emu.create("products", type="good", shippable=False)
        emu.create("products", type="good", shippable=True)
        yield emu


def visible(world: Emulator, name: str, params: dict) -> list[dict]:
    """What the list shows before filters: subscriptions hide canceled ones, test clocks hide their objects."""
    objects = world.objects(name)
    if name == "subscriptions" and "status" not in params:
        objects = [o for o in objects if o["status"] != "canceled"]
    if name in ("customers", "subscriptions") and "test_clock" not in params and "customer" not in params:
        objects = [o for o in objects if o["test_clock"] is None]
    return objects


def listed(client: stripe.StripeClient, path: str, **params) -> list[str]:
    found, after = [], None
    while True:
        page = client.raw_request("get", path, limit=100, **params, **({"starting_after": after} if after else {}))
        data = page.data["data"]  # type: ignore[attr-defined]
        found += [o["id"] for o in data]
        if not page.data["has_more"]:  # type: ignore[attr-defined]
            return found
        after = data[-1]["id"]


def candidates(kind: Any, objects: list[dict], world: Emulator) -> list[tuple[Any, Any]]:
    """(a value matching some objects, a value matching none) pairs for one filter."""
    if kind == "flag":
        return [("true", None), ("false", None)]
    if kind == "hash-flag":
        return [({"enabled": "true"}, None), ({"enabled": "false"}, None)]
    if kind == "hash-interval":
        return [({"interval": "month"}, {"interval": "week"})]
    if isinstance(kind, tuple) and kind[0] == "enum":  # every documented value, each exact
        return [(value, None) for value in kind[1]]
    if isinstance(kind, tuple) and kind[0] == "hash":  # a hash with one key (`customer_details[email]`)
        values = [v for o in objects if (v := kind[2](o)) is not None]
        return [({kind[1]: max(set(values), key=values.count)}, {kind[1]: "nobody@example.com"})]
    if isinstance(kind, tuple):  # a timestamp window: the middle third of the values
        stamps = sorted(t for o in objects if (t := kind[1](o, world)) is not None)
        return [({"gte": str(stamps[len(stamps) // 3]), "lt": str(stamps[2 * len(stamps) // 3])},
                 {"gte": "1", "lt": "2"})]
    if isinstance(kind, str) and kind.startswith("ids:"):
        key = kind[4:]
        values = sorted({o[key] for o in objects if o[key]})
        return [(values[:2], ["no_such_value"])]
    values = [v for v in kind(objects, world) if v is not None]
    common = max(set(values), key=values.count)  # matches several objects, yet not all (checked below)
    return [(common, None)]


@pytest.mark.parametrize(("name", "param"), sorted(PROBES))
def test_a_filter_keeps_exactly_what_stripe_documents(arranged: Emulator, name: str, param: str):
    world = arranged
    client = client_for(world)
    entry = next(e for e in LISTED if e.name == name)
    keeps, kind = PROBES[(name, param)]
    base = {"status": "all"} if name == "subscriptions" and param != "status" else {}
    everything = visible(world, name, {**base, param: ""})
    enumerated = kind in ("flag", "hash-flag") or (isinstance(kind, tuple) and kind[0] == "enum")
    narrowing: list[bool] = []
    for value, nothing in candidates(kind, everything, world):
        expected = [o["id"] for o in everything if keeps(o, value, world)]
        got = listed(client, entry.path, **base, **{param: value})
        assert got == expected, f"{name}?{param}={value}"
        narrowing.append(bool(expected) and len(expected) < len(everything))
        if enumerated:
            continue
        if nothing is None:
            nothing = _unrelated(world, name, param)
        if nothing is not None:
            assert [o["id"] for o in everything if keeps(o, nothing, world)] == []
            assert listed(client, entry.path, **base, **{param: nothing}) == [], f"{name}?{param}={nothing}"
    if enumerated:  # each value exact; some value narrows the list to some objects, none lists them all
        assert any(narrowing), f"{name}?{param}: no value narrows the list"
    else:
        assert all(narrowing), f"{name}?{param}: the matching value must narrow the list"


def _unrelated(world: Emulator, name: str, param: str) -> Any:
    """An existing object the filter can name that no object of the list refers to (or a well-formed unknown id)."""
    return {"customer": "cus_1Nobody00000000", "payment_intent": "pi_1Nobody00000000",
            "charge": "ch_1Nobody00000000", "invoice": "in_1Nobody00000000", "subscription": "sub_1Nobody0000000",
            "product": "prod_1Nobody0000000", "coupon": "NOBODY00", "source": "ch_1Nobody00000000",
            "destination": "ba_1Nobody00000000", "transfer_group": "ORDER_NONE", "email": "nobody@example.com",
            "customer_account": "acct_1Nobody0000000", "test_clock": "clock_1Nobody00000", "url": "https://none",
            "plan": "price_1Nobody00000", "price": "price_1Nobody00000", "code": "NOCODE",
            "type": "climate_order_purchase" if name == "balance_transactions" else "no.such_type", "currency": "jpy",
            "payout": "po_1Nobody00000000", "payment_link": "plink_1Nobody0000000",
            "setup_intent": "seti_1Nobody0000000", "payment_method": "pm_1Nobody00000000"}.get(param)


def test_every_documented_filter_of_every_served_list_is_probed():
    documented = {(entry.name, f) for entry in LISTED if entry.name != "subscription_items"
                  for f in documented_filters(entry)}
    assert documented == set(PROBES)


def test_subscription_items_list_by_their_subscription_only(arranged: Emulator):
    client = client_for(arranged)
    sub = max(arranged.objects("subscriptions"), key=lambda s: len(arranged.lines_of(s["id"])))
    items = listed(client, "/v1/subscription_items", subscription=sub["id"])
    assert items == [i["id"] for i in arranged.lines_of(sub["id"])] and len(items) > 10
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.raw_request("get", "/v1/subscription_items")
    assert (err.value.code, err.value.param) == ("parameter_missing", "subscription")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.raw_request("get", "/v1/subscription_items", subscription="sub_1Nobody0000000")
    assert (err.value.code, err.value.param) == ("resource_missing", "subscription")


def test_filters_refused_as_stripe_refuses_them(arranged: Emulator):
    client = client_for(arranged)

    def refused(path: str, **params) -> stripe.InvalidRequestError:
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.raw_request("get", path, **params)
        assert err.value.http_status == 400
        return err.value

    assert refused("/v1/invoices", status="archived").user_message == (
        "Invalid status: must be one of draft, open, paid, uncollectible, or void")
    assert refused("/v1/products", active="maybe").param == "active"
    assert refused("/v1/events", type="charge.succeeded", types=["charge.failed"]).code == "parameters_exclusive"
    products = arranged.objects("products")
    assert refused("/v1/products", ids=[products[0]["id"]], starting_after=products[1]["id"]).code == \
        "parameters_exclusive"
    assert refused("/v1/prices", lookup_keys=[f"k{n}" for n in range(11)]).param == "lookup_keys"
    assert refused("/v1/payouts", arrival_date={"after": "1"}).code == "parameter_unknown"
    assert refused("/v1/charges", created="yesterday").code == "parameter_invalid_integer"
    manual = next(p for p in arranged.objects("payouts") if not p["automatic"])
    assert refused("/v1/balance_transactions", payout=manual["id"]).user_message == (
        "Balance transaction history can only be filtered on automatic transfers, not manual.")
    assert refused("/v1/charges", colour="blue").code == "parameter_unknown"
