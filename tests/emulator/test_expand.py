"""`expand[]`: every expandable field the model declares, includable fields, 4 levels, Stripe's refusals."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.objects import OBJECTS

from . import stripe_model


@pytest.mark.parametrize("entry", OBJECTS, ids=[e.name for e in OBJECTS])
def test_the_table_declares_exactly_the_models_expandable_fields(entry):
    assert entry.expandable == stripe_model.expandable_paths(stripe_model.by_object_name()[entry.object])


def test_ids_become_the_objects_they_name(world: Emulator, client):
    page = client.v1.charges.list(params={"limit": 20, "expand": ["data.customer", "data.balance_transaction",
                                                                  "data.payment_intent"]})
    for charge in page.data:
        assert isinstance(charge.customer, stripe.Customer)
        assert charge.customer.to_dict(for_json=True) == world.get("customers", charge.customer.id)
        if charge.balance_transaction:
            assert charge.balance_transaction.source == charge.id
    invoice = next(i for i in world.objects("invoices") if i["parent"] and i["discounts"])
    got = client.v1.invoices.retrieve(invoice["id"], params={
        "expand": ["parent.subscription_details.subscription", "discounts", "total_discount_amounts.discount",
                   "lines.data.discounts"]})
    assert got.parent.subscription_details.subscription.id == invoice["parent"]["subscription_details"]["subscription"]
    assert got.discounts[0].object == "discount" and got.total_discount_amounts[0].discount.object == "discount"
    assert got.lines.data[0].discounts[0].object == "discount"
    # Stripe counts every segment: a line's price expands from the lines endpoint, not from the invoice
    lines = client.v1.invoices.line_items.list(invoice["id"], params={"expand": ["data.pricing.price_details.price"]})
    assert lines.data[0].pricing.price_details.price.object == "price"
    transfer = world.objects("transfers")[0]
    destination = client.v1.transfers.retrieve(transfer["id"], params={"expand": ["destination"]}).destination
    assert destination.object == "account" and destination.id in world.connected_account_ids


def test_includable_fields_come_only_when_asked(world: Emulator, client):
    tiered = next(p for p in world.objects("prices") if p["billing_scheme"] == "tiered")
    assert "tiers" not in tiered
    got = client.v1.prices.retrieve(tiered["id"], params={"expand": ["tiers"]})
    assert [t.up_to for t in got.tiers] == [10, 100, None]
    refunded = next(c for c in world.objects("charges") if c["amount_refunded"])
    got = client.v1.charges.retrieve(refunded["id"], params={"expand": ["refunds"]})
    assert got.refunds.url == f"/v1/charges/{refunded['id']}/refunds"
    assert sum(r.amount for r in got.refunds.data if r.status != "failed") == refunded["amount_refunded"]
    page = client.v1.customers.list(params={"limit": 100, "expand": ["data.tax_ids", "data.sources",
                                                                     "data.subscriptions", "data.cash_balance"]})
    assert any(c.tax_ids.data for c in page.data) and any(c.subscriptions.data for c in page.data)
    assert all(c.cash_balance.object == "cash_balance" for c in page.data)
    items = client.v1.subscription_items.list(params={"subscription": world.objects("subscriptions")[0]["id"],
                                                      "expand": ["data.plan.tiers", "data.price.product"]})
    assert all(hasattr(i.plan, "tiers") and i.price.product.object == "product" for i in items.data)


def test_four_levels_at_most_and_stripe_s_words_for_what_cannot_expand(world: Emulator, client):
    refund = world.objects("refunds")[0]
    deep = client.v1.refunds.list(params={"limit": 1, "charge": refund["charge"],
                                          "expand": ["data.charge.balance_transaction.source"]})
    assert deep.data[0].charge.balance_transaction.source.id == refund["charge"]  # 4 segments, `data` included
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.list(params={"expand": ["data.charge.balance_transaction.source.customer"]})
    assert err.value.user_message == "You cannot expand more than 4 levels of a property."
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.charges.list(params={"expand": ["customer"]})
    assert err.value.user_message == ("This property cannot be expanded (customer). You may want to try expanding "
                                      "'data.customer' instead.")
    for path, field in (("data.metadata", "metadata"), ("data.amount", "amount"), ("data.total_tax_amounts", None)):
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.invoices.list(params={"limit": 1, "expand": [path]})
        assert err.value.user_message == f"This property cannot be expanded ({field or path[5:]})."
        assert err.value.param == "expand"


def test_a_2022_client_expands_what_2022_had(world: Emulator):
    client = stripe.StripeClient(world.api_key, base_addresses={"api": world.api_base}, stripe_version="2022-11-15")
    invoice = next(i for i in world.objects("invoices")
                   if i["total_taxes"] and i["status"] == "paid" and i["amount_paid"])
    got = client.raw_request("get", f"/v1/invoices/{invoice['id']}",
                             expand=["total_tax_amounts.tax_rate", "charge", "payment_intent"]).data  # type: ignore[attr-defined]
    assert got["total_tax_amounts"][0]["tax_rate"]["object"] == "tax_rate"
    assert got["charge"]["object"] == "charge" and got["payment_intent"]["object"] == "payment_intent"
