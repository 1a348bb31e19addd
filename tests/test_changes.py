"""The events feed: order, the last snapshot per object, completeness (`changes.py`)."""

from __future__ import annotations

from stripe_source.catalog import BY_TABLE
from stripe_source.changes import ChangeFeed, group_changes, is_complete, oldest_first

VERSION = "2026-10-28.endive"


def event(n: int, created: int, type_: str, obj: dict, version: str = VERSION) -> dict:
    return {"id": f"evt_{n}", "created": created, "type": type_, "api_version": version, "data": {"object": obj}}


def customer(object_id: str, **fields) -> dict:
    return {"id": object_id, "object": "customer", **fields}


def test_oldest_first_keeps_the_list_order_within_a_second():
    # as /v1/events lists them: newest first; in one second, the later change first (ids say nothing)
    listed = [event(9, 20, "customer.deleted", customer("cus_1")), event(2, 20, "customer.updated", customer("cus_1")),
              event(5, 20, "customer.created", customer("cus_1")), event(7, 10, "customer.created", customer("cus_0"))]
    assert [e["id"] for e in oldest_first(listed)] == ["evt_7", "evt_5", "evt_2", "evt_9"]


def test_the_last_event_per_object_wins():
    events = [
        event(1, 10, "customer.updated", customer("cus_1", email="a")),
        event(2, 11, "customer.deleted", customer("cus_1")),
        event(3, 12, "customer.updated", customer("cus_2", email="b")),
        event(4, 13, "customer.updated", customer("cus_2", email="c")),
        event(5, 14, "customer.discount.created", {"id": "di_1", "object": "discount"}),  # not a table of ours
    ]
    changes = group_changes(events)["customers"]
    assert set(changes.deleted) == {"cus_1"} and changes.updated == {"cus_2": customer("cus_2", email="c")}
    assert "discounts" not in group_changes(events)


def test_a_deleted_event_of_an_object_that_stays_is_an_update():
    # customer.subscription.deleted means canceled: the subscription is still listed
    sub = {"id": "sub_1", "object": "subscription", "status": "canceled"}
    changes = group_changes([event(1, 10, "customer.subscription.deleted", sub)])["subscriptions"]
    assert changes.updated == {"sub_1": sub} and not changes.deleted


def test_a_snapshot_is_complete_only_in_our_version_and_with_every_listed_field():
    entry = BY_TABLE["invoices"]
    known = {"id", "object", "total", "lines"}
    assert is_complete({"id": "in_1", "object": "invoice", "total": 1}, known, VERSION, entry, VERSION)  # lines: paged
    assert not is_complete({"id": "in_1", "object": "invoice"}, known, VERSION, entry, VERSION)
    assert not is_complete({"id": "in_1", "object": "invoice", "total": 1}, known, "2022-11-15", entry, VERSION)


def test_the_feed_reads_once_and_hands_out_copies():
    calls = []

    def fetch(since: int) -> list[dict]:
        calls.append(since)
        return [event(1, 20, "customer.updated", customer("cus_1", address={"city": "B"}))]

    feed = ChangeFeed(fetch, 10)
    first = feed.events(15)
    first[0]["data"]["object"]["address"]["city"] = "changed by a consumer"
    assert feed.changes_for("customers", 10).updated["cus_1"]["address"] == {"city": "B"}
    assert calls == [10]
