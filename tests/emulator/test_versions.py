"""`Stripe-Version`: the pinned version by default, 2022-11-15 shapes on request, others refused."""

from __future__ import annotations

import pytest
import requests
import stripe

from stripe_emulator import API_VERSION, Emulator


def get(emu: Emulator, path: str, version: str | None = None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {emu.api_key}", **({"Stripe-Version": version} if version else {})}
    return requests.get(emu.api_base + path, params=params, headers=headers, timeout=10)


def test_responses_say_the_version_they_are_in(world: Emulator):
    assert get(world, "/v1/customers").headers["Stripe-Version"] == API_VERSION == "2026-10-28.endive"
    assert get(world, "/v1/customers", "2022-11-15").headers["Stripe-Version"] == "2022-11-15"
    assert get(world, "/v1/customers", API_VERSION).headers["Stripe-Version"] == API_VERSION


def test_an_unknown_version_is_refused_as_stripe_refuses_it(world: Emulator):
    answer = get(world, "/v1/customers", "2099-01-01.zebra")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["message"] == "Invalid Stripe API version: 2099-01-01.zebra"
    assert error["type"] == "invalid_request_error"
    client = stripe.StripeClient(world.api_key, base_addresses={"api": world.api_base}, stripe_version="2023-08-16")
    with pytest.raises(stripe.InvalidRequestError, match="Invalid Stripe API version: 2023-08-16"):
        client.v1.customers.list()


def test_2022_invoices_have_their_subscription_payment_and_taxes_at_the_top(world: Emulator):
    paid = next(i for i in world.objects("invoices") if i["status"] == "paid" and i["parent"] and i["total_taxes"]
                and i["amount_paid"])
    old = get(world, f"/v1/invoices/{paid['id']}", "2022-11-15").json()
    assert old["subscription"] == paid["parent"]["subscription_details"]["subscription"]
    assert old["paid"] is True and old["paid_out_of_band"] is False
    pi = world.get("payment_intents", old["payment_intent"])
    assert pi["amount_received"] == paid["amount_paid"] and old["charge"] == pi["latest_charge"]
    assert old["tax"] == sum(t["amount"] for t in paid["total_taxes"])
    assert old["total_tax_amounts"][0]["tax_rate"] == paid["total_taxes"][0]["tax_rate_details"]["tax_rate"]
    for field in ("parent", "total_taxes", "issuer", "amount_overpaid", "effective_at", "rendering"):
        assert field not in old
    for key in ("id", "status", "total", "amount_paid", "customer", "lines"):
        assert old[key] == paid[key] if key != "lines" else old[key]["url"] == paid[key]["url"]


def test_2022_lines_carry_price_plan_type_and_their_item(world: Emulator):
    invoice = next(i for i in world.objects("invoices") if i["parent"])
    old = get(world, f"/v1/invoices/{invoice['id']}/lines", "2022-11-15").json()["data"]
    new = world.lines_of(invoice["id"])
    for line, current in zip(old, new, strict=False):
        details = current["parent"]["subscription_item_details"] or current["parent"]["invoice_item_details"]
        assert line["type"] == ("subscription" if current["parent"]["subscription_item_details"] else "invoiceitem")
        assert line["price"]["object"] == "price"
        assert line["price"]["id"] == current["pricing"]["price_details"]["price"]
        assert line["proration"] is details["proration"] and line["subscription"] == details["subscription"]
        if line["type"] == "subscription":
            assert line["subscription_item"] == details["subscription_item"]
            assert line["plan"]["object"] == "plan" and line["plan"]["id"] == line["price"]["id"]
        else:
            assert line["invoice_item"] == details["invoice_item"]
        for field in ("parent", "pricing", "taxes", "pretax_credit_amounts", "subtotal"):
            assert field not in line


def test_2022_subscriptions_payment_intents_and_charges(world: Emulator):
    sub = world.objects("subscriptions")[0]
    old = get(world, f"/v1/subscriptions/{sub['id']}", "2022-11-15").json()
    items = world.lines_of(sub["id"])
    assert old["current_period_start"] == max(i["current_period_start"] for i in items)
    assert "billing_mode" not in old and "invoice_settings" not in old and "current_period_end" not in \
        old["items"]["data"][0]
    invoice = next(i for i in world.objects("invoices") if i["status"] == "paid" and i["total"])
    pi_id = get(world, f"/v1/invoices/{invoice['id']}", "2022-11-15").json()["payment_intent"]
    assert get(world, f"/v1/payment_intents/{pi_id}", "2022-11-15").json()["invoice"] == invoice["id"]
    charge = get(world, "/v1/charges", "2022-11-15", payment_intent=pi_id).json()["data"][0]
    assert charge["invoice"] == invoice["id"] and "refunds" not in charge  # not auto-expanded since 2022-11-15


def test_events_keep_the_version_they_were_made_in(world: Emulator):
    event = get(world, "/v1/events", "2022-11-15", limit=1, type="invoice.*").json()["data"][0]
    assert event["api_version"] == API_VERSION
    assert "parent" in event["data"]["object"] and "subscription" not in event["data"]["object"]
