"""Incremental sync: the emulator's world changes between runs; DuckDB must follow it exactly."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from stripe_source.catalog import BY_TABLE, CATALOG
from tests.dataset import one_connection
from tests.helpers import LOADED_BY_DEFAULT, assert_no_duplicates, expected_objects, ids, rows, run_pipeline

LOOKBACK = 300  # the source's default
# The billing tables: what the column checks below read, and what a change to an invoice's lines or a
# subscription's items reaches (a draft's lines are its invoice items).
BILLING = ("customers", "invoices", "invoice_line_items", "invoice_items", "subscriptions", "subscription_items")


def assert_warehouse_equals_emulator(emu, db: Path, only: tuple[str, ...] | None = None) -> None:
    """Every table loaded by default (`only` these, for runs of some resources, the billing tables
    among them) holds exactly the emulator's objects, and the billing tables' key columns match."""
    assert only is None or set(BILLING) <= set(only)
    with one_connection(db):
        for entry in LOADED_BY_DEFAULT if only is None else [BY_TABLE[table] for table in only]:
            expected = {o["id"]: o for o in expected_objects(emu, entry.table)}
            got = ids(db, entry.table)
            assert_no_duplicates(got)
            if entry.table == "events":  # an append-only log keeps what Stripe has expired
                assert set(expected) <= set(got)
                continue
            assert set(got) == set(expected), f"{entry.table}: {set(got) ^ set(expected)}"
        customers = {o["id"]: o for o in emu.objects("customers")}
        for cid, email, name in rows(db, "SELECT id, email, name FROM stripe.customers"):
            assert (email, name) == (customers[cid].get("email"), customers[cid].get("name")), cid
        invoices = {o["id"]: o for o in emu.objects("invoices")}
        for iid, status, total, paid in rows(db, "SELECT id, status, total, amount_paid FROM stripe.invoices"):
            inv = invoices[iid]
            assert (status, total, paid) == (inv["status"], inv["total"], inv["amount_paid"]), iid
        subscriptions = {o["id"]: o["status"] for o in emu.objects("subscriptions")}
        assert dict(rows(db, "SELECT id, status FROM stripe.subscriptions")) == subscriptions
        lines = Counter(line["invoice"] for line in emu.objects("invoice_line_items"))
        got_lines = dict(rows(db, "SELECT invoice, count(*) FROM stripe.invoice_line_items GROUP BY invoice"))
        assert got_lines == dict(lines)


def _pick(emu, resource: str, **match) -> list[dict]:
    return [o for o in emu.objects(resource) if all(o.get(k) == v for k, v in match.items())]


def change_the_world(emu) -> set[str]:
    """The issue's scenario. Returns ids of objects whose events snapshot cannot be used as is."""
    customers = emu.objects("customers")
    for _ in range(3):
        emu.create("charges", customer=customers[0]["id"], amount=4200, currency="usd")
    open_invoice = _pick(emu, "invoices", status="open")[0]
    emu.pay_invoice(open_invoice["id"])
    drafts = _pick(emu, "invoices", status="draft")
    emu.add_invoice_lines(drafts[0]["id"], 12)  # pushes it past the 10 lines an event carries
    active = _pick(emu, "subscriptions", status="active")[0]
    emu.cancel_subscription(active["id"])
    emu.update("customers", customers[1]["id"], email="new-address@example.com")
    emu.delete("customers", customers[2]["id"])
    emu.delete("invoices", drafts[1]["id"])
    return {inv["id"] for inv in (open_invoice, drafts[0]) if _line_count(emu, inv["id"]) > 10}


def _line_count(emu, invoice_id: str) -> int:
    return sum(1 for line in emu.objects("invoice_line_items") if line["invoice"] == invoice_id)


def test_second_run_follows_creates_updates_cancels_and_deletes(fresh_emulator, monkeypatch, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "inc.duckdb"
    run1_start = emu.now()
    assert run_pipeline(emu, monkeypatch, db) == 0
    events_before = {e["id"] for e in emu.objects("events")}

    incomplete = change_the_world(emu)
    emu.reset_stats()
    assert run_pipeline(emu, monkeypatch, db) == 0
    assert_warehouse_equals_emulator(emu, db)

    # Cost: the events pages, one request per object whose snapshot is not enough, and a small
    # constant per resource (its list of new objects, the connection check).
    new_events = [e for e in emu.objects("events") if e["created"] >= run1_start - LOOKBACK]
    resources = sum(1 for entry in CATALOG if entry.parent is None)
    bound = math.ceil(len(new_events) / 100) + len(incomplete) + 2 * resources
    made = emu.stats()["requests_total"]
    assert made <= bound, f"{made} requests > {bound}: {emu.stats()['requests']}"

    # the events table is an append-only log: everything from both runs, once
    event_ids = ids(db, "events")
    assert_no_duplicates(event_ids)
    assert events_before <= set(event_ids)


def test_an_event_missing_fields_never_nulls_them(fresh_emulator, monkeypatch, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "partial.duckdb"
    assert run_pipeline(emu, monkeypatch, db, "--resources", "customers") == 0
    customer = emu.objects("customers")[0]
    assert customer.get("name")
    # An event whose snapshot lacks most fields (e.g. rendered by an older API version).
    emu.emit_event("customer.updated", {"id": customer["id"], "object": "customer", "email": customer["email"]})
    assert run_pipeline(emu, monkeypatch, db, "--resources", "customers") == 0
    (name,) = rows(db, f"SELECT name FROM stripe.customers WHERE id = '{customer['id']}'")[0]
    assert name == customer["name"]


def test_a_gap_longer_than_the_events_retention_rereads_everything(fresh_emulator, monkeypatch, tmp_path, caplog):
    emu = fresh_emulator
    db = tmp_path / "gap.duckdb"
    assert run_pipeline(emu, monkeypatch, db) == 0
    change_the_world(emu)
    emu.advance(days=31)  # the events of those changes have expired
    assert not [e for e in emu.objects("events") if e["created"] < emu.now() - 30 * 86400]
    with caplog.at_level("WARNING"):
        assert run_pipeline(emu, monkeypatch, db) == 0
    assert "30 days" in caplog.text
    assert_warehouse_equals_emulator(emu, db)


def test_an_object_created_at_the_cursor_boundary_loads_exactly_once(fresh_emulator, monkeypatch, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "edge.duckdb"
    boundary = emu.now()
    assert run_pipeline(emu, monkeypatch, db, "--resources", "charges") == 0
    late = emu.create("charges", created=boundary, amount=777, currency="usd",
                      customer=emu.objects("customers")[0]["id"])
    assert run_pipeline(emu, monkeypatch, db, "--resources", "charges") == 0
    got = ids(db, "charges")
    assert_no_duplicates(got)
    assert got.count(late["id"]) == 1
    assert set(got) == {c["id"] for c in emu.objects("charges")}


@pytest.mark.parametrize("flag", ["--full-refresh"])
def test_full_refresh_reads_everything_again(fresh_emulator, monkeypatch, tmp_path, flag):
    emu = fresh_emulator
    db = tmp_path / "refresh.duckdb"
    assert run_pipeline(emu, monkeypatch, db, "--resources", "products,prices") == 0
    emu.reset_stats()
    assert run_pipeline(emu, monkeypatch, db, "--resources", "products,prices", flag) == 0
    pages = emu.stats()["requests"]
    assert pages.get("GET /v1/products", 0) >= math.ceil(len(emu.objects("products")) / 100)
    assert set(ids(db, "products")) == {p["id"] for p in emu.objects("products")}


def test_a_sub_list_emptied_since_the_last_run_leaves_no_rows(fresh_emulator, monkeypatch, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "emptied.duckdb"
    billing = ("--resources", ",".join(BILLING))
    assert run_pipeline(emu, monkeypatch, db, *billing) == 0
    draft = next(i for i in _pick(emu, "invoices", status="draft") if _line_count(emu, i["id"]))
    emu.remove_invoice_lines(draft["id"])
    subscription = next(s for s in emu.objects("subscriptions")
                        if len([i for i in emu.objects("subscription_items") if i["subscription"] == s["id"]]) == 1)
    (only_item,) = [i["id"] for i in emu.objects("subscription_items") if i["subscription"] == subscription["id"]]
    emu.remove_subscription_item(only_item)
    emu.advance(seconds=10)
    assert run_pipeline(emu, monkeypatch, db, *billing) == 0
    assert rows(db, f"SELECT count(*) FROM stripe.invoice_line_items WHERE invoice = '{draft['id']}'") == [(0,)]
    assert only_item not in ids(db, "subscription_items")
    assert_warehouse_equals_emulator(emu, db, only=BILLING)
    assert sorted(ids(db, "subscription_items")) == sorted(i["id"] for i in emu.objects("subscription_items"))


def test_loading_a_parent_alone_leaves_its_sub_list_to_be_caught_up(fresh_emulator, monkeypatch, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "subset.duckdb"
    billing = ("--resources", ",".join(BILLING))  # the parent, its sub-list, and the rest of billing
    assert run_pipeline(emu, monkeypatch, db, *billing) == 0
    draft = _pick(emu, "invoices", status="draft")[0]
    emu.add_invoice_lines(draft["id"], 3)
    emu.advance(seconds=LOOKBACK + 100)  # beyond the lookback: only the cursor can bring the lines
    assert run_pipeline(emu, monkeypatch, db, "--resources", "invoices") == 0
    assert run_pipeline(emu, monkeypatch, db, *billing) == 0
    assert_warehouse_equals_emulator(emu, db, only=BILLING)


def test_a_subset_run_after_a_gap_does_not_break_the_next_full_run(fresh_emulator, monkeypatch, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "gap_subset.duckdb"
    assert run_pipeline(emu, monkeypatch, db) == 0
    emu.advance(days=31)
    assert run_pipeline(emu, monkeypatch, db, "--resources", "customers") == 0
    change_the_world(emu)
    assert run_pipeline(emu, monkeypatch, db) == 0
    assert_warehouse_equals_emulator(emu, db)


def test_a_backfill_window_loads_its_window_whatever_the_cursor(fresh_emulator, monkeypatch, tmp_path):
    emu = fresh_emulator
    db = tmp_path / "window.duckdb"
    created = sorted(c["created"] for c in emu.objects("charges"))
    middle = created[len(created) // 2]
    assert run_pipeline(emu, monkeypatch, db, "--resources", "charges", "--start-date", str(middle)) == 0
    assert set(ids(db, "charges")) == {c["id"] for c in emu.objects("charges") if c["created"] >= middle}
    assert run_pipeline(emu, monkeypatch, db, "--resources", "charges", "--start-date", str(created[0]),
                        "--end-date", str(middle)) == 0
    assert set(ids(db, "charges")) == {c["id"] for c in emu.objects("charges")}


def test_a_connected_account_and_the_platform_share_a_dataset(fresh_emulator, monkeypatch, tmp_path):
    # each account keeps its own cursors, and a first or full load of one never wipes the other's rows
    emu = fresh_emulator
    account = emu.connected_account_ids[0]
    db = tmp_path / "shared.duckdb"
    resources = ("--resources", "charges,customers")

    def run(connected: bool, *args: str) -> None:
        if connected:
            monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__STRIPE_ACCOUNT", account)
        else:
            monkeypatch.delenv("SOURCES__STRIPE__CREDENTIALS__STRIPE_ACCOUNT", raising=False)
        assert run_pipeline(emu, monkeypatch, db, *resources, *args) == 0

    def expected(table: str) -> set[str]:
        return {o["id"] for o in emu.objects(table)} | {o["id"] for o in emu.objects(table, account=account)}

    run(connected=False)
    run(connected=True)
    for table in ("charges", "customers"):
        assert set(ids(db, table)) == expected(table)
    platform_customer = emu.objects("customers")[0]["id"]
    emu.update("customers", platform_customer, email="moved@example.com")
    emu.advance(seconds=10)
    run(connected=True)  # must not move the platform's events cursor past that change
    run(connected=False)
    assert rows(db, f"SELECT email FROM stripe.customers WHERE id = '{platform_customer}'") == [("moved@example.com",)]
    run(True, "--full-refresh")
    for table in ("charges", "customers"):
        assert set(ids(db, table)) == expected(table)
        assert_no_duplicates(ids(db, table))


def test_cursors_written_before_they_were_kept_per_account_belong_to_the_account_that_wrote_them():
    from stripe_source.cursors import cursors_of, save_cursors
    from stripe_source.plan import Cursors

    tables = ("invoices", "invoice_line_items")
    state = {"created_cursor": 1000, "events_cursor": 900, "known_fields": ["id"]}  # the older form
    assert cursors_of(state, "acct_A", ["invoices"], legacy_account="acct_A") == Cursors(1000, 900)
    assert cursors_of(state, "acct_B", ["invoices"], legacy_account="acct_A") == Cursors()
    save_cursors(state, "acct_B", ["invoices"], 2000, 1900, tables, legacy_account="acct_A")
    assert "created_cursor" not in state and state["known_fields"] == ["id"]
    assert cursors_of(state, "acct_A", tables, legacy_account="acct_A") == Cursors(1000, 900)
    assert cursors_of(state, "acct_B", ["invoices"], legacy_account="acct_A") == Cursors(2000, 1900)
    assert cursors_of(state, "acct_B", tables, legacy_account="acct_A") == Cursors()  # lines never loaded


def test_a_deletion_seen_again_after_the_table_emptied_adds_no_row(fresh_emulator, monkeypatch, tmp_path):
    # Deleting every coupon empties the table; the next run appends (it holds no rows), and its
    # lookback still sees the `coupon.deleted` events: they must not land as rows.
    emu = fresh_emulator
    db = tmp_path / "emptied_table.duckdb"
    assert run_pipeline(emu, monkeypatch, db, "--resources", "coupons") == 0
    for coupon in emu.objects("coupons"):
        emu.delete("coupons", coupon["id"])
    emu.advance(seconds=10)
    assert run_pipeline(emu, monkeypatch, db, "--resources", "coupons") == 0
    assert ids(db, "coupons") == []
    emu.advance(seconds=10)  # the deletions are still inside the next run's lookback
    assert run_pipeline(emu, monkeypatch, db, "--resources", "coupons") == 0
    assert ids(db, "coupons") == []


def test_balance_transactions_that_settled_since_the_last_run_are_available(fresh_emulator, monkeypatch, tmp_path):
    # Stripe makes a pending balance transaction available on its `available_on` and announces that in
    # no event: a run reads the list again from the oldest row that should have settled since
    emu = fresh_emulator
    db = tmp_path / "settled.duckdb"
    assert run_pipeline(emu, monkeypatch, db, "--resources", "balance_transactions") == 0
    assert rows(db, "SELECT count(*) FROM stripe.balance_transactions WHERE status = 'pending'")[0][0] > 0
    emu.advance(days=3)
    expected = {t["id"]: t["status"] for t in emu.objects("balance_transactions")}
    assert "pending" not in expected.values()
    emu.reset_stats()
    assert run_pipeline(emu, monkeypatch, db, "--resources", "balance_transactions") == 0
    assert dict(rows(db, "SELECT id, status FROM stripe.balance_transactions")) == expected
    assert emu.stats()["requests"]["GET /v1/balance_transactions"] <= 2  # the last days' page or two, not all
    emu.reset_stats()
    assert run_pipeline(emu, monkeypatch, db, "--resources", "balance_transactions") == 0
    assert emu.stats()["requests"]["GET /v1/balance_transactions"] == 1  # nothing left to settle: the cursor's page
