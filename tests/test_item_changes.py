"""Sub-list items with events of their own: which parents' lists an incremental run reads again."""

from __future__ import annotations

import orjson

from stripe_source.catalog import BY_TABLE
from stripe_source.item_changes import every_run, item_changes
from tests.helpers import rows, run_pipeline

CUSTOMERS = BY_TABLE["customers"]
PAYMENT_METHODS = next(s for s in CUSTOMERS.sub_lists if s.table == "payment_methods")
TAX_IDS = next(s for s in CUSTOMERS.sub_lists if s.table == "customer_tax_ids")


def event(kind: str, obj: dict, previous: dict | None = None) -> dict:
    data = {"object": obj} | ({"previous_attributes": previous} if previous else {})
    return {"type": kind, "data": data, "created": 1}


def test_an_items_event_reads_its_parents_list_again_once():
    events = [event("payment_method.attached", {"id": "pm_1", "object": "payment_method", "customer": "cus_A"}),
              event("payment_method.updated", {"id": "pm_2", "object": "payment_method", "customer": "cus_A"}),
              event("customer.tax_id.deleted", {"id": "txi_1", "object": "tax_id", "customer": "cus_B"})]
    found = item_changes(lambda: events, CUSTOMERS, frozenset({"payment_methods", "customer_tax_ids"}), frozenset())
    assert found.reread == [(PAYMENT_METHODS, "cus_A"), (TAX_IDS, "cus_B")]
    assert found.orphans == {} and found.refetch == set()


def test_parents_that_changed_themselves_are_fetched_again_and_tables_not_wanted_left_alone():
    events = [event("payment_method.attached", {"id": "pm_1", "object": "payment_method", "customer": "cus_A"}),
              event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id", "customer": "cus_B"})]
    found = item_changes(lambda: events, CUSTOMERS, frozenset({"payment_methods"}), frozenset({"cus_A"}))
    assert found.reread == [] and found.refetch == {"cus_A"}  # its own snapshot may predate pm_1's event
    asked = []
    item_changes(lambda: asked.append(1) or events, BY_TABLE["invoices"], frozenset({"invoice_line_items"}),
                 frozenset())
    assert asked == []  # no sub-list follows events of its own: the feed is not even read


def test_a_detached_item_names_no_parent_and_is_an_orphan_to_look_up():
    events = [event("payment_method.attached", {"id": "pm_1", "object": "payment_method", "customer": "cus_A"}),
              event("payment_method.detached", {"id": "pm_1", "object": "payment_method", "customer": None})]
    found = item_changes(lambda: events, CUSTOMERS, frozenset({"payment_methods"}), frozenset())
    assert found.reread == [] and found.orphans == {PAYMENT_METHODS: ["pm_1"]}  # its last event decides


def test_a_sub_list_no_event_announces_is_read_for_every_parent_held():
    products = BY_TABLE["products"]
    held = {("products", "id"): {"prod_1", "prod_2"}, ("product_features", "product"): {"prod_3"}}
    found = every_run(products, frozenset({"product_features"}), lambda t, c: held.get((t, c)), frozenset({"prod_2"}))
    assert [parent for _, parent in found] == ["prod_1", "prod_3"]
    assert every_run(products, frozenset({"products"}), lambda t, c: held.get((t, c)), frozenset()) == []


def test_an_items_own_event_newer_than_its_parents_snapshot_wins(fresh_emulator, monkeypatch, tmp_path):
    # A fee refunded (its event embeds its refunds as they were), then one of its refunds updated: the
    # fee's snapshot is older than the refund's own event, so the refund's new metadata must land.
    emu = fresh_emulator
    db = tmp_path / "fees.duckdb"
    fee = next(f for f in emu.objects("application_fees") if 0 < len(f["refunds"]["data"]) < 10)
    assert run_pipeline(emu, monkeypatch, db, "--resources", "application_fees,application_fee_refunds") == 0
    emu.advance(seconds=5)
    emu.refund_application_fee(fee["id"], 1)
    emu.advance(seconds=1)
    refund = fee["refunds"]["data"][0]["id"]
    emu.update("application_fee_refunds", refund, metadata={"reason": "goodwill"})
    emu.advance(seconds=1)
    assert run_pipeline(emu, monkeypatch, db, "--resources", "application_fees,application_fee_refunds") == 0
    got = dict(rows(db, "SELECT id, metadata FROM stripe.application_fee_refunds"))
    assert orjson.loads(got[refund]) == {"reason": "goodwill"}
    assert set(got) == {r["id"] for r in emu.objects("application_fee_refunds")}
