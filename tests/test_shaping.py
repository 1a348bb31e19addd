"""Stripe objects into table rows (`shaping.py`) and the part of a window a page leaves (`engine.py`)."""

from __future__ import annotations

from stripe_source.catalog import BY_TABLE
from stripe_source.engine import split_rest
from stripe_source.plan import Window
from stripe_source.shaping import PageEdges, shape_objects, shape_sub_page, tombstone_rows

INVOICES = BY_TABLE["invoices"]


def invoice(n: int, lines: int, has_more: bool = False) -> dict:
    data = [{"id": f"il_{n}_{k}", "object": "line_item", "amount": k} for k in range(lines)]
    return {"id": f"in_{n}", "object": "invoice", "created": n,
            "lines": {"object": "list", "data": data, "has_more": has_more, "url": f"/v1/invoices/in_{n}/lines"}}


def test_sub_lists_land_in_their_own_table_and_truncated_ones_are_paged_on():
    tables, follow_ups = shape_objects(INVOICES, [invoice(1, 10, has_more=True), invoice(2, 2)], "acct_1", None)
    assert [row["id"] for row in tables["invoices"]] == ["in_1", "in_2"]
    assert all("lines" not in row and row["stripe_account_id"] == "acct_1" for row in tables["invoices"])
    assert len(tables["invoice_line_items"]) == 12
    assert {row["invoice"] for row in tables["invoice_line_items"]} == {"in_1", "in_2"}  # the parent named
    sub = INVOICES.sub_lists[0]
    assert follow_ups == [(sub, "in_1", "il_1_9")]  # after the last embedded line


def test_merging_an_emptied_sub_list_removes_its_rows():
    tables, _ = shape_objects(INVOICES, [invoice(1, 0)], "acct_1", None, merging=True)
    (removed,) = tables["invoice_line_items"]
    assert removed["invoice"] == "in_1" and removed["deleted"] is True
    tables, _ = shape_objects(INVOICES, [invoice(1, 0)], "acct_1", None, merging=False)  # appending: nothing to remove
    assert "invoice_line_items" not in tables


def test_skipped_objects_and_tables_not_wanted():
    tables, follow_ups = shape_objects(INVOICES, [invoice(1, 3), invoice(2, 11, has_more=True)], "acct_1",
                                       frozenset({"invoice_line_items"}), skip_ids=frozenset({"in_2"}))
    assert set(tables) == {"invoice_line_items"} and len(tables["invoice_line_items"]) == 3
    assert follow_ups == []


def test_a_sub_list_page_and_its_cursor():
    sub = INVOICES.sub_lists[0]
    page = {"data": [{"id": "il_a"}, {"id": "il_b"}], "has_more": True}
    rows, after = shape_sub_page(sub, "in_1", page, "acct_1")
    assert after == "il_b" and [r["invoice"] for r in rows] == ["in_1", "in_1"]
    rows, after = shape_sub_page(sub, "in_1", {"data": [], "has_more": False}, "acct_1", merging=True)
    assert after is None and rows[0]["deleted"] is True


def test_tombstones_reach_the_sub_lists_that_are_wanted():
    tables = tombstone_rows(INVOICES, ["in_1"], "acct_1", frozenset({"invoices"}))
    assert tables == {"invoices": [{"id": "in_1", "deleted": True, "stripe_account_id": "acct_1"}]}
    assert set(tombstone_rows(INVOICES, ["in_1"], "acct_1")) == {"invoices", "invoice_line_items"}


def test_the_rest_of_a_window_is_split_by_how_full_pages_will_be():
    window = Window(0, 10_001)
    dense = PageEdges(True, 100, first_created=10_000, last_created=9_990, last_id="ch_last")
    parts = split_rest(window, dense, idle=7, oldest=0)
    top, after = parts[0]
    assert after == "ch_last" and top == Window(max(w.end for w, _ in parts[1:]), 10_001)  # the top keeps the cursor
    assert len(parts) == 8 and all(after is None for _, after in parts[1:])
    edges = sorted((w.start, w.end) for w, _ in parts)
    assert edges[0][0] == 0 and all(a[1] == b[0] for a, b in zip(edges, edges[1:], strict=False))  # no gap, no overlap
    sparse = PageEdges(True, 100, first_created=10_000, last_created=100, last_id="ch_last")
    assert split_rest(window, sparse, idle=7, oldest=0) == [(window, "ch_last")]  # too few pages left to split
    assert len(split_rest(window, dense, idle=0, oldest=0)) == 1  # no idle slot: go on with the cursor


def test_the_bottom_slice_of_an_open_window_reaches_below_the_oldest_guess():
    """`oldest` (an account's `created`: when it was connected) guides the split only: a Standard
    account connected later holds older objects, and the bottom slice must still read them."""
    dense = PageEdges(True, 100, first_created=10_000, last_created=9_990, last_id="ch_last")
    parts = split_rest(Window(None, 10_001), dense, idle=7, oldest=5_000)
    assert len(parts) > 2
    assert min((w for w, _ in parts), key=lambda w: w.end).start is None
