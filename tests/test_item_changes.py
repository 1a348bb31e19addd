"""Sub-list items with events of their own: which parents' lists an incremental run reads again."""

from __future__ import annotations

from stripe_source.catalog import BY_TABLE
from stripe_source.item_changes import every_run, item_changes

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
    parents, orphans = item_changes(lambda: events, CUSTOMERS, frozenset({"payment_methods", "customer_tax_ids"}),
                                    frozenset())
    assert parents == [(PAYMENT_METHODS, "cus_A"), (TAX_IDS, "cus_B")] and orphans == {}


def test_parents_that_changed_themselves_or_tables_not_wanted_are_left_alone():
    events = [event("payment_method.attached", {"id": "pm_1", "object": "payment_method", "customer": "cus_A"}),
              event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id", "customer": "cus_B"})]
    parents, _ = item_changes(lambda: events, CUSTOMERS, frozenset({"payment_methods"}), frozenset({"cus_A"}))
    assert parents == []
    asked = []
    item_changes(lambda: asked.append(1) or events, BY_TABLE["invoices"], frozenset({"invoice_line_items"}),
                 frozenset())
    assert asked == []  # no sub-list follows events of its own: the feed is not even read


def test_a_detached_item_names_no_parent_and_is_an_orphan_to_look_up():
    events = [event("payment_method.attached", {"id": "pm_1", "object": "payment_method", "customer": "cus_A"}),
              event("payment_method.detached", {"id": "pm_1", "object": "payment_method", "customer": None})]
    parents, orphans = item_changes(lambda: events, CUSTOMERS, frozenset({"payment_methods"}), frozenset())
    assert parents == [] and orphans == {PAYMENT_METHODS: ["pm_1"]}  # its last event decides


def test_a_sub_list_no_event_announces_is_read_for_every_parent_held():
    products = BY_TABLE["products"]
    held = {("products", "id"): {"prod_1", "prod_2"}, ("product_features", "product"): {"prod_3"}}
    found = every_run(products, frozenset({"product_features"}), lambda t, c: held.get((t, c)), frozenset({"prod_2"}))
    assert [parent for _, parent in found] == ["prod_1", "prod_3"]
    assert every_run(products, frozenset({"products"}), lambda t, c: held.get((t, c)), frozenset()) == []
