"""Changes made through the in-process API show up as Stripe-shaped events, kept for 30 days."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator

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
