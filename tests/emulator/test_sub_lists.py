"""Truncating sub-lists: every parent embeds its first 10 items and `has_more`; the rest page at the
sub-list's own endpoint, in the same order, with cursors both ways."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.objects import EMBED_LIMIT, OBJECTS

from .conftest import client_for

SUB_LISTS = [(entry, sub) for entry in OBJECTS for sub in entry.sub_lists]
IDS = [f"{entry.name}.{sub.field}" for entry, sub in SUB_LISTS]


def page_through(client: stripe.StripeClient, path: str, limit: int = 7, **params) -> list[str]:
    found, after = [], None
    while True:
        page = client.raw_request("get", path, limit=limit, **params, **({"starting_after": after} if after else {}))
        found += [o["id"] for o in page.data["data"]]  # type: ignore[attr-defined]
        if not page.data["has_more"]:  # type: ignore[attr-defined]
            return found
        after = found[-1]


def endpoint(sub, parent_id: str) -> tuple[str, dict]:
    path, _, query = sub.path.format(id=parent_id).partition("?")
    return path, dict([query.split("=")]) if query else {}


@pytest.mark.parametrize(("seed", "scale"), [(7, 1000), (11, 600)], ids=["source_shared_world", "source_fresh_world"])
@pytest.mark.parametrize(("entry", "sub"), SUB_LISTS, ids=IDS)
def test_several_parents_go_beyond_the_ten_embedded_at_the_source_tests_scales(seed, scale, entry, sub):
    world = Emulator(seed=seed, scale=scale)  # not started: only its objects are read
    sizes = [len(world.lines_of(parent["id"])) for parent in world.objects(entry.name)]
    assert sum(size > EMBED_LIMIT for size in sizes) >= 3, sorted(sizes)[-5:]
    assert max(sizes) <= (sub.maximum or 10**6)


@pytest.mark.parametrize(("entry", "sub"), SUB_LISTS, ids=IDS)
def test_the_rest_pages_at_the_sub_list_endpoint_like_invoice_lines(world: Emulator, client, entry, sub):
    parents = [p for p in world.objects(entry.name) if p[sub.field]["has_more"]][:3]
    assert parents
    for parent in parents:
        items = [item["id"] for item in world.lines_of(parent["id"])]
        embedded = parent[sub.field]
        assert [i["id"] for i in embedded["data"]] == items[:EMBED_LIMIT] and embedded["has_more"]
        path, params = endpoint(sub, parent["id"])
        assert embedded["url"] == sub.path.format(id=parent["id"])  # items: /v1/subscription_items?subscription=
        assert page_through(client, path, **params) == items
        back = client.raw_request("get", path, limit=4, ending_before=items[9], **params).data  # type: ignore[attr-defined]
        assert [i["id"] for i in back["data"]] == items[5:9] and back["has_more"]
        after = client.raw_request("get", path, limit=100, starting_after=items[-2], **params).data  # type: ignore[attr-defined]
        assert [i["id"] for i in after["data"]] == items[-1:] and not after["has_more"]
    with pytest.raises(stripe.InvalidRequestError) as err:
        path, params = endpoint(sub, parents[0]["id"])
        client.raw_request("get", path, starting_after="il_1unknown000000", **params)
    assert (err.value.code, err.value.param) == ("resource_missing", "starting_after")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.raw_request("get", path, created={"gte": 1}, **params)
    assert err.value.code == "parameter_unknown"  # sub-lists have no `created` filter


def test_a_parent_that_is_not_there_is_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.raw_request("get", "/v1/transfers/tr_1nothere0000000/reversals")
    assert (err.value.http_status, err.value.code) == (404, "resource_missing")
    assert err.value.user_message == "No such transfer: 'tr_1nothere0000000'"


def test_a_reversal_reads_alone_and_through_the_sdk(world: Emulator, client):
    transfer = next(t for t in world.objects("transfers") if t["reversals"]["has_more"])
    reversals = world.lines_of(transfer["id"])
    listed = list(client.v1.transfers.reversals.list(transfer["id"], params={"limit": 5}).auto_paging_iter())
    assert [r.id for r in listed] == [r["id"] for r in reversals]
    one = client.v1.transfers.reversals.retrieve(transfer["id"], reversals[11]["id"])
    assert one.to_dict(for_json=True) == reversals[11]
    assert transfer["amount_reversed"] == sum(r["amount"] for r in reversals)


def test_adding_items_past_ten_truncates_and_the_events_say_so(own_world: Emulator):
    client = client_for(own_world)
    sub = own_world.create("subscriptions", items=2, status="active")
    before = len(own_world.lines_of(sub["id"]))
    updated = own_world.add_subscription_items(sub["id"], 12)
    assert len(own_world.lines_of(sub["id"])) == before + 12 and updated["items"]["has_more"]
    prices = [item["price"]["id"] for item in own_world.lines_of(sub["id"])]
    assert len(set(prices)) == len(prices)  # Stripe refuses a price twice in one subscription
    with pytest.raises(ValueError, match="20 items"):
        own_world.add_subscription_items(sub["id"], 20 - len(prices) + 1)
    event = client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
    assert event.data.object.id == sub["id"]
    assert event.data.previous_attributes["items"]["data"][0]["id"] == sub["items"]["data"][0]["id"]
    assert len(event.data.previous_attributes["items"]["data"]) == before

    own_world.add_subscription_items(sub["id"], 1)  # beyond the embedded ten: announced all the same
    event = client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1}).data[0]
    assert event.data.object.id == sub["id"] and "items" in event.data.previous_attributes

    transfer = own_world.create("transfers", reversals=0, amount=40_000)
    own_world.add_transfer_reversals(transfer["id"], 13)
    assert [e.type for e in client.v1.events.list(params={"limit": 14}).data].count("transfer.reversed") == 13
    reversed_transfer = own_world.get("transfers", transfer["id"])
    assert reversed_transfer["reversals"]["has_more"] and len(own_world.lines_of(transfer["id"])) == 13
    assert reversed_transfer["amount_reversed"] == sum(r["amount"] for r in own_world.lines_of(transfer["id"]))


def test_credit_notes_can_credit_every_line_of_a_long_invoice(own_world: Emulator):
    invoice = own_world.create("invoices", lines=24, status="paid")
    note = own_world.create("credit_notes", invoice=invoice["id"], lines=24)
    lines = own_world.lines_of(note["id"])
    assert len(lines) == 24 and note["lines"]["has_more"]
    assert {line["invoice_line_item"] for line in lines} == {line["id"] for line in own_world.lines_of(invoice["id"])}
    assert note["total"] == sum(line["amount"] for line in lines)
    assert own_world.get("invoices", invoice["id"])["post_payment_credit_notes_amount"] == note["total"]


def test_items_read_alone_at_their_own_path(world: Emulator, client):
    sub = world.objects("subscriptions")[0]
    item = world.lines_of(sub["id"])[0]
    assert client.v1.subscription_items.retrieve(item["id"]).to_dict(for_json=True) == item
    transfer = next(t for t in world.objects("transfers") if t["reversals"]["data"])
    other = next(t for t in world.objects("transfers") if t["id"] != transfer["id"])
    with pytest.raises(stripe.InvalidRequestError) as err:  # a reversal is read through its own transfer
        client.v1.transfers.reversals.retrieve(other["id"], transfer["reversals"]["data"][0]["id"])
    assert err.value.code == "resource_missing"


def test_a_subscription_item_carries_its_price_as_it_is_now():
    # Stripe renders an item's `price` (and `plan`) when the item is read, so a price's change shows
    # in every item using it, though Stripe announces it only as `price.updated` / `plan.updated`.
    with Emulator(seed=3, scale=300) as emu:
        item = emu.objects("subscription_items")[0]
        emu.update("prices", item["price"]["id"], nickname="renamed")
        client = client_for(emu)
        subscription = client.raw_request("get", f"/v1/subscriptions/{item['subscription']}").data
        embedded = next(i for i in subscription["items"]["data"] if i["id"] == item["id"])
        listed = client.raw_request("get", f"/v1/subscription_items/{item['id']}").data
        assert embedded["price"]["nickname"] == embedded["plan"]["nickname"] == "renamed"
        assert listed["price"]["nickname"] == listed["plan"]["nickname"] == "renamed"
