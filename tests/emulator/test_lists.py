"""List semantics through the official SDK: order, cursors, `created`, `limit`, filters, expand, sub-lists."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator

# Each list with the service that pages it and the field it orders and filters by.
LISTS = [
    ("customers", "created"),
    ("charges", "created"),
    ("invoices", "created"),
    ("balance_transactions", "created"),
    ("invoiceitems", "date"),  # invoice items carry `date`, not `created`
]


def service(client: stripe.StripeClient, resource: str):
    return getattr(client.v1, "invoice_items" if resource == "invoiceitems" else resource)


def newest_first(objects: list[dict], field: str) -> bool:
    """Newest first (objects made in the same second list in the order they were made, the later first)."""
    return all(a[field] >= b[field] for a, b in zip(objects, objects[1:], strict=False))


@pytest.mark.parametrize(("resource", "field"), LISTS)
def test_auto_pagination_returns_every_object_once_newest_first(world: Emulator, client, resource, field):
    expected = world.objects(resource)
    assert len(expected) > 40
    seen = list(service(client, resource).list(params={"limit": 17}).auto_paging_iter())
    assert [o.id for o in seen] == [o["id"] for o in expected] and newest_first(expected, field)
    assert seen[0].to_dict(for_json=True) == expected[0]


def test_ending_before_walks_back(world: Emulator, client):
    expected = [c["id"] for c in world.objects("customers")]
    anchor = expected[57]
    page = client.v1.customers.list(params={"limit": 20, "ending_before": anchor})
    assert [c.id for c in page.data] == expected[37:57]
    assert page.has_more
    # The SDK walks backwards from an `ending_before` start, yielding pages reversed.
    walked = [c.id for c in client.v1.customers.list(params={"limit": 10, "ending_before": anchor}).auto_paging_iter()]
    assert walked == list(reversed(expected[:57]))
    first = client.v1.customers.list(params={"limit": 20, "ending_before": expected[5]})
    assert [c.id for c in first.data] == expected[:5] and not first.has_more


def test_starting_after_continues_after_the_cursor(world: Emulator, client):
    expected = [c["id"] for c in world.objects("charges")]
    page = client.v1.charges.list(params={"limit": 7, "starting_after": expected[10]})
    assert [c.id for c in page.data] == expected[11:18] and page.has_more
    last = client.v1.charges.list(params={"limit": 100, "starting_after": expected[-3]})
    assert [c.id for c in last.data] == expected[-2:] and not last.has_more


def window(objects: list[dict], field: str, low=None, high=None, low_inclusive=True, high_inclusive=False):
    def inside(v: int) -> bool:
        return ((low is None or (v >= low if low_inclusive else v > low))
                and (high is None or (v <= high if high_inclusive else v < high)))
    return [o["id"] for o in objects if inside(o[field])]


@pytest.mark.parametrize(("resource", "field"), [("charges", "created"), ("invoiceitems", "date")])
def test_created_filters_select_exactly_the_window(world: Emulator, client, resource, field):
    objects = world.objects(resource)
    stamps = sorted({o[field] for o in objects})
    low, high = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]

    def listed(created) -> list[str]:
        params = {"limit": 100, "created": created}
        return [o.id for o in service(client, resource).list(params=params).auto_paging_iter()]

    assert listed({"gte": low, "lt": high}) == window(objects, field, low, high)
    assert listed({"gt": low, "lte": high}) == window(objects, field, low, high, False, True)
    assert listed({"gte": low}) == window(objects, field, low)
    assert listed({"lte": high}) == window(objects, field, None, high, high_inclusive=True)
    assert listed(low) == [o["id"] for o in objects if o[field] == low] != []
    assert listed({"gt": stamps[-1]}) == []


def test_limit_default_and_bounds(client, raw):
    assert len(client.v1.customers.list().data) == 10
    assert len(client.v1.customers.list(params={"limit": 100}).data) == 100
    for bad, wording in ((101, "less than or equal to 100"), (0, "greater than or equal to 1")):
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.customers.list(params={"limit": bad})
        assert err.value.http_status == 400 and err.value.param == "limit" and wording in err.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as err:
        raw("/v1/customers", limit="ten")
    assert err.value.http_status == 400 and err.value.param == "limit"


def test_both_cursors_refused(world: Emulator, client):
    ids = [c["id"] for c in world.objects("customers")[:3]]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.list(params={"starting_after": ids[0], "ending_before": ids[2]})
    assert err.value.http_status == 400


@pytest.mark.parametrize("cursor", ["starting_after", "ending_before"])
def test_unknown_cursor_id_is_resource_missing(client, cursor):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.list(params={cursor: "cus_doesnotexist"})
    assert err.value.code == "resource_missing" and err.value.param == cursor
    assert "No such customer: 'cus_doesnotexist'" in err.value.user_message


def test_created_refused_where_stripe_refuses_it(world: Emulator, client):
    invoice = world.objects("invoices")[0]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.line_items.list(invoice["id"], params={"created": {"gte": 1}})  # type: ignore[typeddict-unknown-key]
    assert err.value.http_status == 400 and "created" in err.value.user_message
    sub = world.objects("subscriptions")[0]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscription_items.list(params={"subscription": sub["id"], "created": {"gte": 1}})  # type: ignore[typeddict-unknown-key]
    assert err.value.http_status == 400 and err.value.param and err.value.param.startswith("created")


def test_unknown_parameter_refused(raw):
    with pytest.raises(stripe.InvalidRequestError) as err:
        raw("/v1/customers", colour="blue")
    assert err.value.http_status == 400 and err.value.param == "colour"
    assert err.value.user_message == "Received unknown parameter: colour"


def test_unknown_id_and_unknown_url(client, raw):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve("cus_nope")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as err:
        raw("/v1/no_such_things")
    assert err.value.http_status == 404 and "Unrecognized request URL" in err.value.user_message


def test_subscriptions_hide_canceled_unless_status_all(world: Emulator, client):
    everything = world.objects("subscriptions")
    canceled = {s["id"] for s in everything if s["status"] == "canceled"}
    assert canceled
    default = [s.id for s in client.v1.subscriptions.list(params={"limit": 100}).auto_paging_iter()]
    assert default == [s["id"] for s in everything if s["id"] not in canceled]
    listed = [s.id for s in client.v1.subscriptions.list(params={"limit": 100, "status": "all"}).auto_paging_iter()]
    assert listed == [s["id"] for s in everything]
    only = [s.id for s in client.v1.subscriptions.list(params={"limit": 100, "status": "canceled"}).auto_paging_iter()]
    assert set(only) == canceled


def test_subscription_items_need_their_subscription(world: Emulator, client, raw):
    with pytest.raises(stripe.InvalidRequestError) as err:
        raw("/v1/subscription_items")
    assert err.value.http_status == 400 and err.value.param == "subscription"
    sub = max(world.objects("subscriptions"), key=lambda s: len(world.lines_of(s["id"])))
    listed = client.v1.subscription_items.list(params={"subscription": sub["id"]})
    assert [i.id for i in listed.data] == [i["id"] for i in sub["items"]["data"]]
    assert all(i.subscription == sub["id"] for i in listed.data)


def test_filters_by_reference(world: Emulator, client):
    charge = next(c for c in world.objects("charges") if c["status"] == "succeeded")
    refunds = [r.id for r in client.v1.refunds.list(params={"charge": charge["id"]}).auto_paging_iter()]
    assert refunds == [r["id"] for r in world.objects("refunds") if r["charge"] == charge["id"]]
    customer = world.objects("invoices")[0]["customer"]
    listed = [i.id for i in client.v1.invoices.list(params={"customer": customer, "limit": 100}).auto_paging_iter()]
    assert listed == [i["id"] for i in world.objects("invoices") if i["customer"] == customer] != []


def test_expand_on_lists_and_retrieve(world: Emulator, client):
    page = client.v1.charges.list(params={"limit": 5, "expand": ["data.customer", "data.balance_transaction"]})
    for charge in page.data:
        assert isinstance(charge.customer, stripe.Customer)
        assert charge.customer.to_dict(for_json=True) == world.get("customers", charge.customer.id)
    charge = next(c for c in world.objects("charges") if c["balance_transaction"])
    got = client.v1.charges.retrieve(charge["id"], params={"expand": ["customer", "balance_transaction"]})
    assert got.customer.id == charge["customer"] and got.balance_transaction.id == charge["balance_transaction"]
    # Four levels is the most Stripe expands.
    refund = world.objects("refunds")[0]
    deep = client.v1.refunds.list(params={"limit": 1, "charge": refund["charge"],
                                          "expand": ["data.charge.customer"]}).data[0]
    assert deep.charge.customer.id == refund["customer"]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.list(params={"expand": ["data.charge.balance_transaction.source.customer"]})
    assert err.value.http_status == 400 and "4 levels" in err.value.user_message
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.charges.list(params={"expand": ["customer"]})  # lists need the `data.` prefix


def test_truncated_invoice_lines_complete_through_the_lines_endpoint(world: Emulator, client):
    invoices = [i for i in world.objects("invoices") if i["lines"]["has_more"]]
    assert invoices
    for invoice in invoices[:5]:
        lines = world.lines_of(invoice["id"])
        assert len(lines) > 10
        embedded = client.v1.invoices.retrieve(invoice["id"]).lines
        assert len(embedded.data) == 10 and embedded.has_more
        assert embedded.url == f"/v1/invoices/{invoice['id']}/lines"
        paged = [line.id for line in client.v1.invoices.line_items.list(invoice["id"]).auto_paging_iter()]
        assert paged == [line["id"] for line in lines]
        assert sum(line["amount"] for line in lines) == invoice["subtotal"]


def test_invoice_with_35_lines(own_world: Emulator):
    invoice = next(i for i in own_world.objects("invoices") if i["status"] == "draft")
    have = len(own_world.lines_of(invoice["id"]))
    own_world.add_invoice_lines(invoice["id"], 35 - have)
    client = stripe.StripeClient(own_world.api_key, base_addresses={"api": own_world.api_base})
    assert client.v1.invoices.retrieve(invoice["id"]).lines.has_more
    lines = list(client.v1.invoices.line_items.list(invoice["id"], params={"limit": 10}).auto_paging_iter())
    assert len(lines) == 35 == len({line.id for line in lines})
    back = client.v1.invoices.line_items.list(invoice["id"], params={"ending_before": lines[20].id, "limit": 5})
    assert [line.id for line in back.data] == [line.id for line in lines[15:20]]


def test_credit_note_lines(world: Emulator, client):
    note = world.objects("credit_notes")[0]
    lines = [line.id for line in client.v1.credit_notes.line_items.list(note["id"]).auto_paging_iter()]
    assert lines == [line["id"] for line in world.lines_of(note["id"])]
    assert sum(line["amount"] for line in world.lines_of(note["id"])) == note["total"]


def test_account_and_balance(world: Emulator, client):
    assert client.v1.accounts.retrieve_current().id == world.account_id
    assert client.v1.balance.retrieve().object == "balance"


def test_references_point_at_objects_that_exist(world: Emulator):
    customers = {c["id"] for c in world.objects("customers")}
    txns = {t["id"] for t in world.objects("balance_transactions")}
    for charge in world.objects("charges"):
        assert charge["customer"] in customers
        if charge["balance_transaction"]:
            assert charge["balance_transaction"] in txns
    assert all(i["customer"] in customers for i in world.objects("invoices"))
    for txn in world.objects("balance_transactions"):
        assert txn["net"] == txn["amount"] - txn["fee"]


def test_a_recurring_price_and_its_plan_stay_two_objects_after_a_change(own_world: Emulator):
    client = stripe.StripeClient(own_world.api_key, base_addresses={"api": own_world.api_base})
    price = next(p for p in own_world.objects("prices") if p["type"] == "recurring")
    own_world.update("prices", price["id"], nickname="Renamed")
    assert client.v1.prices.retrieve(price["id"]).object == "price"
    plan = client.v1.plans.retrieve(price["id"])
    assert plan.object == "plan" and plan.nickname == "Renamed" and plan.amount == price["unit_amount"]
    assert [p.object for p in client.v1.plans.list(params={"limit": 100}).data] == ["plan"] * len(
        client.v1.plans.list(params={"limit": 100}).data)
