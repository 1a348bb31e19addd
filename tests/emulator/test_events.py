"""Changes made through the in-process API show up as Stripe-shaped events, kept for 30 days."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.objects import BY_NAME, BY_OBJECT, SUB_LIST_OF

from .conftest import client_for


def events(client: stripe.StripeClient, **params) -> list[stripe.Event]:
    return list(client.v1.events.list(params={"limit": 100, **params}).auto_paging_iter())


def test_create_update_delete_record_events(own_world: Emulator):
    client = client_for(own_world)
    customer = own_world.create("customers")
    own_world.update("customers", customer["id"], email="new@example.com", metadata={"tier": "gold"})
    own_world.delete("customers", customer["id"])
    mine = [e for e in events(client, type="customer.*") if e.data.object.id == customer["id"]]
    assert [e.type for e in mine] == ["customer.deleted", "customer.updated", "customer.created"]
    deleted, updated, created = mine
    assert created.data.object.email == customer["email"]
    assert updated.data.object.email == "new@example.com"
    assert updated.data.previous_attributes.to_dict() == {"email": customer["email"], "metadata": {}}
    # the object as it was; Stripe adds no `deleted` flag (that is only in the DELETE answer)
    assert "deleted" not in deleted.data.object and deleted.data.object.email == "new@example.com"
    assert "previous_attributes" not in deleted.data and "previous_attributes" not in created.data
    assert customer["id"] in own_world.deleted_ids("customers")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(customer["id"])
    assert client.v1.events.retrieve(updated.id).type == "customer.updated"


def test_type_wildcard_and_types(own_world: Emulator):
    client = client_for(own_world)
    charge = own_world.create("charges")
    own_world.update("charges", charge["id"], description="refund pending")
    sub = next(s for s in own_world.objects("subscriptions") if s["status"] == "active")
    own_world.cancel_subscription(sub["id"])
    assert {e.type for e in events(client, type="charge.*")} >= {"charge.succeeded", "charge.updated"}
    assert all(e.type.startswith("charge.") for e in events(client, type="charge.*"))
    subs = events(client, type="customer.subscription.*")
    assert subs and all(e.type.startswith("customer.subscription.") for e in subs)
    assert not any(e.type.startswith("customer.subscription") for e in events(client, type="customer.*")
                   if e.type in ("customer.created", "customer.updated"))
    picked = events(client, types=["charge.updated", "customer.subscription.deleted"])
    assert {e.type for e in picked} == {"charge.updated", "customer.subscription.deleted"}
    assert [e.id for e in events(client, type="charge.updated")] == [e.id for e in picked if e.type == "charge.updated"]


def test_events_newest_first_with_created_filters(own_world: Emulator):
    client = client_for(own_world)
    everything = events(client)
    stamps = [e.created for e in everything]
    assert stamps == sorted(stamps, reverse=True)
    middle = stamps[len(stamps) // 2]
    assert [e.id for e in events(client, created={"gte": middle})] == [e.id for e in everything if e.created >= middle]


def test_events_older_than_30_days_vanish(own_world: Emulator):
    client = client_for(own_world)
    own_world.create("customers")
    assert events(client, type="customer.created")
    own_world.advance(days=31)
    assert events(client, type="customer.created") == []
    assert own_world.objects("events") == []
    fresh = own_world.create("customers")
    assert [e.data.object.id for e in events(client, type="customer.created")] == [fresh["id"]]


# Event types of the objects the source follows that a real account's last 30 days hold.
FOLLOWED = {
    "customer.created", "customer.updated", "customer.deleted",
    "product.created", "product.updated", "product.deleted", "price.created", "price.updated", "price.deleted",
    "plan.created", "plan.updated", "plan.deleted", "coupon.created", "coupon.updated", "coupon.deleted",
    "promotion_code.created", "promotion_code.updated", "tax_rate.created", "tax_rate.updated",
    "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
    "invoice.created", "invoice.updated", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded",
    "invoice.payment_failed", "invoice.voided", "invoice.marked_uncollectible", "invoice.deleted",
    "invoiceitem.created", "invoiceitem.deleted", "credit_note.created", "credit_note.updated", "credit_note.voided",
    "payment_intent.created", "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
    "charge.succeeded", "charge.failed", "charge.updated", "charge.refunded", "refund.created", "refund.updated",
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed", "charge.dispute.funds_withdrawn",
    "payout.created", "payout.updated", "payout.paid", "transfer.created", "transfer.updated", "transfer.reversed",
}


@pytest.mark.parametrize(("seed", "scale"), [(7, 1000), (11, 600), (1, 5000)], ids=["tests", "fresh", "demo"])
def test_a_fresh_world_holds_every_kind_of_event_within_its_30_days(seed, scale):
    world = Emulator(seed=seed, scale=scale, connected_accounts=0)
    found = {e["type"] for e in world.objects("events")}
    assert FOLLOWED <= found, sorted(FOLLOWED - found)
    assert all(e["created"] >= world.now() - 30 * 86400 for e in world.objects("events"))


def test_previous_attributes_only_on_updates_and_never_empty(world: Emulator):
    for account in (None, *world.connected_account_ids):
        for event in world.objects("events", account=account):
            if event["type"].endswith(".updated"):
                assert event["data"]["previous_attributes"], event["id"]
            else:
                assert "previous_attributes" not in event["data"], event["type"]


def _own_fields(obj: dict) -> dict:
    """An object without what other objects' changes alter: embedded objects (a subscription's tax rates,
    its items' prices) compare by id, as they change with their own events (`tax_rate.updated`)."""
    def own(value):
        if isinstance(value, dict) and value.get("object") == "list":
            return [own(i) for i in value["data"]]
        if isinstance(value, dict) and "object" in value:
            return value.get("id")
        if isinstance(value, list):
            return [own(i) for i in value]
        return value
    return {k: own(v) for k, v in obj.items()}


def test_an_objects_latest_event_shows_it_as_it_is(world: Emulator):
    """Unless something changed it later without an event (a charge becomes `disputed` through its dispute)."""
    latest: dict[str, dict] = {}
    for event in reversed(world.objects("events")):  # oldest first
        latest[event["data"]["object"]["id"]] = event
    checked = 0
    for object_id, event in latest.items():
        resource = BY_OBJECT[event["data"]["object"]["object"]].name
        if object_id not in world.store().collections[resource].objects:  # deleted since
            assert event["type"].endswith(".deleted"), event["type"]
            continue
        now = world.get(resource, object_id)
        if event["data"]["object"]["object"] == "charge" and now["disputed"]:
            now = dict(now, disputed=event["data"]["object"]["disputed"])
        if event["data"]["object"]["object"] == "file":  # a file's links come later, and no event says so
            now = dict(now, links=event["data"]["object"]["links"])
        assert _own_fields(event["data"]["object"]) == _own_fields(now), (event["type"], object_id)
        checked += 1
    assert checked > 100


def test_a_connected_accounts_events_name_it(world: Emulator, client):
    account = world.connected_account_ids[0]
    theirs = client.v1.events.list(params={"limit": 100}, options={"stripe_account": account}).data
    assert theirs and all(e.account == account for e in theirs)
    assert all("account" not in e for e in client.v1.events.list(params={"limit": 100}).data)


def test_an_update_then_a_delete_in_one_second_list_delete_first(own_world: Emulator):
    client = client_for(own_world)
    for _ in range(3):  # the three must fall in one second of the emulator's clock
        start = own_world.now()
        product = own_world.create("products")
        own_world.update("products", product["id"], name="Renamed")
        own_world.delete("products", product["id"])
        if own_world.now() == start:
            break
    mine = [e for e in events(client, created=start) if e.data.object.id == product["id"]]
    assert [e.type for e in mine] == ["product.deleted", "product.updated", "product.created"]
    assert {e.created for e in mine} == {start}


CREATES = {  # what Stripe records when each is made (the object's own events)
    "customers": ["customer.created"],
    "products": ["product.created"],
    "prices": ["price.created"],
    "plans": ["plan.created", "price.created"],  # a plan is a recurring price too, with the same id
    "coupons": ["coupon.created"],
    "promotion_codes": ["promotion_code.created"],
    "tax_rates": ["tax_rate.created"],
    "charges": ["charge.succeeded"],
    "payment_intents": ["payment_intent.created", "payment_intent.succeeded"],
    "refunds": ["refund.created"],
    "disputes": ["charge.dispute.created", "charge.dispute.funds_withdrawn"],
    "payouts": ["payout.created"],
    "transfers": ["transfer.created"],
    "invoiceitems": ["invoiceitem.created"],
    "invoices": ["invoice.created"],
    "credit_notes": ["credit_note.created"],
    "subscriptions": ["customer.subscription.created"],
}
ARGS = {"prices": {"recurring": False}, "payment_intents": {"status": "succeeded"}, "charges": {"status": "succeeded"},
        "disputes": {"status": "needs_response"}, "invoices": {"status": "draft"}, "transfers": {"reversals": 0},
        "subscriptions": {"status": "active"}}


@pytest.mark.parametrize("resource", sorted(CREATES))
def test_create_records_the_events_stripe_records(own_world: Emulator, resource: str):
    client = client_for(own_world)
    before = {e["id"] for e in own_world.objects("events")}
    made = own_world.create(resource, **ARGS.get(resource, {}))
    new = [e for e in reversed(own_world.objects("events")) if e["id"] not in before]
    own = [e["type"] for e in new if e["data"]["object"]["id"] == made["id"]]
    assert own == CREATES[resource]
    assert new[-1]["data"]["object"] == client.raw_request(
        "get", f"/v1/events/{new[-1]['id']}").data["data"]["object"]  # type: ignore[attr-defined]
    listed = own_world.objects(resource)
    assert made["id"] in {o["id"] for o in listed}


def test_what_a_change_makes_is_made_now_with_its_events(own_world: Emulator):
    """Supporting objects a change needs (new prices for new subscription items) are created at that
    moment, not back-dated: an incremental reader would never see a back-dated object."""
    before = {p["id"] for p in own_world.objects("prices")}
    start = own_world.now()
    customer = own_world.create("customers", currency="jpy")  # the world has no recurring jpy prices
    sub = own_world.create("subscriptions", customer=customer["id"], items=1, status="active")
    own_world.add_subscription_items(sub["id"], 15)
    new = [p for p in own_world.objects("prices") if p["id"] not in before]
    assert new and all(p["created"] >= start for p in new)
    announced = {e["data"]["object"]["id"] for e in own_world.objects("events") if e["type"] == "price.created"}
    assert {p["id"] for p in new} <= announced


@pytest.mark.parametrize(("seed", "scale"), [(5, 3000), (2, 500)])
def test_an_items_latest_appearance_shows_it_as_it_is(seed, scale):
    """A sub-list item (a fee's refund, an invoice's line) shows in its own events and embedded in its
    parent's: whichever came last shows the item as it is now (its change at some moment shows in
    every parent event after that moment)."""
    with Emulator(seed=seed, scale=scale) as world:
        items = {BY_NAME[name].object for name in SUB_LIST_OF}
        latest: dict[str, tuple[str, dict]] = {}
        for event in reversed(world.objects("events")):  # oldest first
            obj = event["data"]["object"]
            if obj["object"] in items:
                latest[obj["id"]] = (event["id"], obj)
            for value in obj.values():
                if isinstance(value, dict) and value.get("object") == "list":
                    for item in value["data"]:
                        if isinstance(item, dict) and item.get("object") in items:
                            latest[item["id"]] = (event["id"], item)
        checked = 0
        for item_id, (event_id, seen) in latest.items():
            found = world.store().find(item_id)
            if found is None:  # removed since
                continue
            assert _own_fields(seen) == _own_fields(found[1]), (event_id, item_id)
            checked += 1
        assert checked > 50
