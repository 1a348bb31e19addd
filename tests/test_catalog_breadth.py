"""The tables beyond the first catalog, table by table: a first load holds every object the emulated
account lists (sub-lists past the ten Stripe embeds, fan-outs past their first parent), and the next
run follows what changed since: creates, updates and deletes, each as Stripe announces it.

One small world, arranged once, loaded with `--resources all` (the fan-outs that are off by default
included), changed, and loaded again; each test then reads what the two runs left.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stripe_emulator import Emulator
from stripe_source.catalog import BY_TABLE, CATALOG, sub_list_of
from tests.conftest import isolated_project
from tests.helpers import expected_objects, run_pipeline

# the tests read the runs of one module-scoped fixture (see conftest: made once)
pytestmark = pytest.mark.shared_load

# Every table of the catalog that is not one of the first ones (those have their own tests).
FIRST_CATALOG = {"charges", "payment_intents", "refunds", "disputes", "balance_transactions", "payouts", "transfers",
                 "invoices", "invoice_line_items", "invoice_items", "credit_notes", "credit_note_line_items",
                 "customers", "subscriptions", "subscription_items", "products", "prices", "plans", "coupons",
                 "promotion_codes", "tax_rates", "events", "account"}
# (The platform's lists of its connected accounts change through those accounts' own events:
# test_connect_tables.py.)
NEW_TABLES = [e.table for e in CATALOG if e.table not in FIRST_CATALOG and not e.singleton
              and not BY_TABLE[e.parent or e.table].connected_events]


@dataclass
class Expect:
    """What the second run must show in one table, on top of holding exactly the emulator's objects."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> column values
    gone: set[str] = field(default_factory=set)
    items: dict[str, int] = field(default_factory=dict)  # parent id -> number of its items


Change = Callable[[Emulator, Any], dict[str, Expect]]


def _parent_of(table: str) -> str:
    return sub_list_of(BY_TABLE[table]).parent_column


# --- the changes between the two runs: (arrange before the first run, change after it)
def arrange_sessions(emu: Emulator) -> str:
    return emu.create("checkout_sessions", status="open", mode="payment", lines=2)["id"]


def change_sessions(emu: Emulator, open_session: str) -> dict[str, Expect]:
    emu.transition("checkout_sessions", open_session, "expired", status="expired", url=None)
    done = emu.create("checkout_sessions", status="complete", mode="payment", lines=12)
    expected = {open_session: {"status": "expired"}, done["id"]: {"status": "complete", "payment_status": "paid"}}
    return {"checkout_sessions": Expect(rows=expected),
            "checkout_session_line_items": Expect(items={done["id"]: 12})}


def arrange_links(emu: Emulator) -> str:
    return emu.create("payment_links", active=True, lines=2)["id"]


def change_links(emu: Emulator, active: str) -> dict[str, Expect]:
    emu.update("payment_links", active, active=False)
    made = emu.create("payment_links", lines=13)
    return {"payment_links": Expect(rows={active: {"active": False}, made["id"]: {"active": made["active"]}}),
            "payment_link_line_items": Expect(items={made["id"]: 13})}


def arrange_setup_intents(emu: Emulator) -> str:
    return emu.create("setup_intents", status="requires_action")["id"]


def change_setup_intents(emu: Emulator, waiting: str) -> dict[str, Expect]:
    emu.transition("setup_intents", waiting, "canceled", status="canceled", cancellation_reason="abandoned")
    made = emu.create("setup_intents", status="succeeded")
    attempts = [a["id"] for a in emu.objects("setup_attempts") if a["setup_intent"] == made["id"]]
    return {"setup_intents": Expect(rows={waiting: {"status": "canceled", "cancellation_reason": "abandoned"},
                                          made["id"]: {"status": "succeeded"}}),
            "setup_attempts": Expect(rows={a: {"setup_intent": made["id"]} for a in attempts})}


def arrange_payment_methods(emu: Emulator) -> tuple[str, str, str]:
    store = emu.store()
    owners = [c["id"] for c in emu.objects("customers") if store.related("customer_payment_methods", c["id"])]
    updated = store.related("customer_payment_methods", owners[0])[0]
    detached = store.related("customer_payment_methods", owners[1])[0]
    return owners[2], updated, detached


def change_payment_methods(emu: Emulator, arranged: tuple[str, str, str]) -> dict[str, Expect]:
    owner, updated, detached = arranged
    attached = emu.create("payment_methods", customer=owner)
    emu.update("payment_methods", updated, metadata={"checked": "yes"})
    emu.detach_payment_method(detached)
    return {"payment_methods": Expect(rows={attached["id"]: {"customer": owner},
                                            updated: {"metadata": {"checked": "yes"}}}, gone={detached})}


def arrange_reviews(emu: Emulator) -> str | None:
    return next((r["id"] for r in emu.objects("reviews") if r["open"]), None)


def change_reviews(emu: Emulator, review: str | None) -> dict[str, Expect]:
    if review is None:
        return {}
    emu.close_review(review, "approved")
    return {"reviews": Expect(rows={review: {"open": False, "closed_reason": "approved"}})}


def arrange_fraud_warnings(emu: Emulator) -> str:
    for _ in range(20):  # some are refunded at once, and no longer actionable
        made = emu.create("early_fraud_warnings")
        if made["actionable"]:
            return made["id"]
    raise AssertionError("no actionable early fraud warning")


def change_fraud_warnings(emu: Emulator, warning: str) -> dict[str, Expect]:
    emu.update("early_fraud_warnings", warning, actionable=False)
    made = emu.create("early_fraud_warnings")
    return {"early_fraud_warnings": Expect(rows={warning: {"actionable": False},
                                                 made["id"]: {"charge": made["charge"]}})}


def arrange_topups(emu: Emulator) -> str:
    return emu.create("topups", status="pending")["id"]


def change_topups(emu: Emulator, pending: str) -> dict[str, Expect]:
    emu.transition("topups", pending, "canceled", status="canceled")
    return {"topups": Expect(rows={pending: {"status": "canceled"}})}


def change_payouts(emu: Emulator, _: None) -> dict[str, Expect]:
    customer = emu.objects("customers")[0]["id"]
    for amount in (1000, 2000, 3000):
        emu.create("charges", customer=customer, amount=amount, currency="usd", status="succeeded")
    emu.advance(days=3)  # available: the next automatic payout pays them out
    payout = emu.create("payouts", automatic=True, currency="usd")
    settled = [t["id"] for t in expected_objects(emu, "payout_balance_transactions") if t["payout"] == payout["id"]]
    assert len(settled) > 1, "the new payout must settle some balance transactions"
    return {"payout_balance_transactions": Expect(rows={t: {"payout": payout["id"]} for t in settled})}


def arrange_reversals(emu: Emulator) -> str:
    return emu.create("transfers", reversals=0)["id"]


def change_reversals(emu: Emulator, transfer: str) -> dict[str, Expect]:
    emu.add_transfer_reversals(transfer, 12)
    return {"transfer_reversals": Expect(items={transfer: 12})}


def arrange_fees(emu: Emulator) -> tuple[str, str]:
    fee = next(f for f in emu.objects("application_fees") if f["refunds"]["has_more"])
    return fee["id"], emu.create("application_fees", refunds=0)["id"]


def change_fees(emu: Emulator, arranged: tuple[str, str]) -> dict[str, Expect]:
    refunded, unrefunded = arranged
    emu.refund_application_fee(unrefunded, 11)
    refund = emu.lines_of(refunded)[-1]["id"]  # beyond the ten the fee embeds
    emu.update("application_fee_refunds", refund, metadata={"reason": "goodwill"})
    return {"application_fees": Expect(rows={unrefunded: {"amount_refunded": emu.get("application_fees",
                                                                                    unrefunded)["amount_refunded"]}}),
            "application_fee_refunds": Expect(rows={refund: {"metadata": {"reason": "goodwill"}}},
                                              items={unrefunded: 11})}


def arrange_customers(emu: Emulator) -> tuple[str, str]:
    store = emu.store()
    many = next(c["id"] for c in emu.objects("customers") if len(store.related("customer_tax_ids", c["id"])) > 10)
    return many, store.related("customer_tax_ids", many)[-1]  # beyond the ten a customer embeds


def change_customers(emu: Emulator, arranged: tuple[str, str]) -> dict[str, Expect]:
    many, last_tax_id = arranged
    emu.delete_tax_id(last_tax_id)
    other = next(c for c in emu.objects("customers") if c["id"] != many)
    added = emu.create("tax_ids", customer=other["id"])
    before = set(emu.store().related("customer_balance_transactions", other["id"]))
    emu.adjust_customer_balance(other["id"], -700)
    credit = next(t for t in emu.store().related("customer_balance_transactions", other["id"]) if t not in before)
    return {"customer_tax_ids": Expect(rows={added["id"]: {"customer": other["id"]}}, gone={last_tax_id}),
            "customer_balance_transactions": Expect(rows={credit: {"amount": -700, "customer": other["id"]}})}


def change_products(emu: Emulator, _: None) -> dict[str, Expect]:
    product = emu.objects("products")[0]["id"]  # announced by no event: every run reads every product's
    feature = emu.attach_product_feature(product)
    return {"product_features": Expect(rows={feature["id"]: {"product": product}})}


def arrange_schedules(emu: Emulator) -> str:
    return emu.create("subscription_schedules", status="not_started")["id"]


def change_schedules(emu: Emulator, waiting: str) -> dict[str, Expect]:
    emu.transition("subscription_schedules", waiting, "canceled", status="canceled", canceled_at=emu.now())
    made = emu.create("subscription_schedules", status="active")
    return {"subscription_schedules": Expect(rows={waiting: {"status": "canceled"},
                                                   made["id"]: {"status": "active"}})}


def arrange_quotes(emu: Emulator) -> str:
    return emu.create("quotes", status="draft", lines=2)["id"]


def change_quotes(emu: Emulator, draft: str) -> dict[str, Expect]:
    emu.finalize_quote(draft)
    accepted = emu.accept_quote(draft)
    made = emu.create("quotes", status="draft", lines=12)
    return {"quotes": Expect(rows={draft: {"status": "accepted", "invoice": accepted["invoice"]},
                                   made["id"]: {"status": "draft"}}),
            "quote_line_items": Expect(items={made["id"]: 12})}


def arrange_invoice_payments(emu: Emulator) -> str:
    invoice = emu.create("invoices", status="open", collection_method="charge_automatically")  # its payment failed
    return next(p["id"] for p in emu.objects("invoice_payments") if p["invoice"] == invoice["id"])


def change_invoice_payments(emu: Emulator, attempt: str) -> dict[str, Expect]:
    invoice = emu.get("invoice_payments", attempt)["invoice"]
    emu.pay_invoice(invoice)
    paid = next(p["id"] for p in emu.objects("invoice_payments") if p["invoice"] == invoice and p["status"] == "paid")
    return {"invoice_payments": Expect(rows={attempt: {"status": "canceled"}, paid: {"invoice": invoice}})}


def arrange_billing_catalog(emu: Emulator) -> tuple[str, str, str]:
    rate = next(r["id"] for r in emu.objects("shipping_rates") if r["active"])
    meter = next(m["id"] for m in emu.objects("meters") if m["status"] == "active")
    return rate, meter, emu.create("credit_grants")["id"]


def change_billing_catalog(emu: Emulator, arranged: tuple[str, str, str]) -> dict[str, Expect]:
    rate, meter, grant = arranged
    emu.update("shipping_rates", rate, active=False)  # no event: the list is read whole each run
    emu.transition("meters", meter, "deactivated", status="inactive")
    emu.update("credit_grants", grant, voided_at=emu.now())
    made = emu.create("credit_grants")
    return {"shipping_rates": Expect(rows={rate: {"active": False}}),
            "billing_meters": Expect(rows={meter: {"status": "inactive"}}),
            "billing_credit_grants": Expect(rows={grant: {"voided_at": _moment(emu.get("credit_grants", grant)
                                                                               ["voided_at"])},
                                                  made["id"]: {"customer": made["customer"]}})}


def arrange_issuing(emu: Emulator) -> tuple[str, str, str, str]:
    holder = emu.create("issuing_cardholders", status="active")
    card = emu.create("issuing_cards", cardholder=holder["id"], status="active")
    held = emu.create("issuing_authorizations", card=card["id"], status="pending")
    dispute = emu.create("issuing_disputes", status="unsubmitted")
    return holder["id"], card["id"], held["id"], dispute["id"]


def change_issuing(emu: Emulator, arranged: tuple[str, str, str, str]) -> dict[str, Expect]:
    holder, card, held, dispute = arranged
    emu.update("issuing_cardholders", holder, email="moved@example.com")
    emu.update("issuing_cards", card, status="canceled", cancellation_reason="lost")
    closed = emu.capture_issuing_authorization(held)
    emu.transition("issuing_disputes", dispute, "submitted", status="submitted")
    capture = closed["transactions"][-1]["id"]
    return {"issuing_cardholders": Expect(rows={holder: {"email": "moved@example.com"}}),
            "issuing_cards": Expect(rows={card: {"status": "canceled", "cancellation_reason": "lost"}}),
            "issuing_authorizations": Expect(rows={held: {"status": "closed"}}),
            "issuing_transactions": Expect(rows={capture: {"authorization": held, "type": "capture"}}),
            "issuing_disputes": Expect(rows={dispute: {"status": "submitted"}})}


def arrange_documents(emu: Emulator) -> str:
    return emu.objects("file_links")[0]["id"]


def change_documents(emu: Emulator, link: str) -> dict[str, Expect]:
    upload = emu.create("files", links=0)
    shared = emu.create("file_links", file=upload["id"])
    emu.update("file_links", link, metadata={"shared_with": "auditor"})  # no event: read whole each run
    return {"files": Expect(rows={upload["id"]: {"purpose": upload["purpose"]}}),
            "file_links": Expect(rows={shared["id"]: {"file": upload["id"]},
                                       link: {"metadata": {"shared_with": "auditor"}}})}


def _moment(seconds: int) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC)


CHANGES: list[tuple[Callable[[Emulator], Any] | None, Change]] = [
    (arrange_sessions, change_sessions), (arrange_links, change_links),
    (arrange_setup_intents, change_setup_intents), (arrange_payment_methods, change_payment_methods),
    (arrange_reviews, change_reviews), (arrange_fraud_warnings, change_fraud_warnings), (arrange_topups, change_topups),
    (None, change_payouts), (arrange_reversals, change_reversals), (arrange_fees, change_fees),
    (arrange_customers, change_customers), (None, change_products), (arrange_schedules, change_schedules),
    (arrange_quotes, change_quotes), (arrange_invoice_payments, change_invoice_payments),
    (arrange_billing_catalog, change_billing_catalog), (arrange_issuing, change_issuing),
    (arrange_documents, change_documents),
]


@dataclass
class Runs:
    first: dict[str, dict[str, dict]]  # table -> id -> row, after the first run
    first_expected: dict[str, list[dict]]  # table -> what the emulator listed then
    second: dict[str, dict[str, dict]]
    second_expected: dict[str, list[dict]]
    expectations: dict[str, list[Expect]]
    requests: dict[str, int]  # requests per endpoint of the second run
    parents: dict[str, int]  # table -> parents of the first run (what a whole fan-out reads)
    touched: dict[str, set]  # table -> ids the events of the changes name (parents among them)
    balances: list[tuple]


def loaded(db: Path) -> dict[str, dict[str, dict]]:
    found = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in NEW_TABLES:
            cursor = con.execute(f"SELECT * FROM stripe.{table}")
            header = [d[0] for d in cursor.description]
            found[table] = {row["id"]: row for row in (dict(zip(header, r, strict=True)) for r in cursor.fetchall())}
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("breadth")
    with pytest.MonkeyPatch.context() as monkeypatch, Emulator(seed=21, scale=300) as emu:
        project = isolated_project(root, monkeypatch)
        next(project)
        try:
            db = root / "breadth.duckdb"
            arranged = [arrange(emu) if arrange else None for arrange, _ in CHANGES]
            assert run_pipeline(emu, monkeypatch, db, "--resources", "all") == 0
            first = loaded(db)
            first_expected = {t: expected_objects(emu, t) for t in NEW_TABLES}
            parents = {t: len(emu.objects(BY_TABLE[t].parent)) for t in NEW_TABLES if BY_TABLE[t].parent}
            emu.advance(seconds=10)
            changed_from = emu.now()
            expectations: dict[str, list[Expect]] = {}
            for (_, change), state in zip(CHANGES, arranged, strict=True):
                for table, expect in change(emu, state).items():
                    expectations.setdefault(table, []).append(expect)
            emu.advance(seconds=2)
            emu.reset_stats()
            assert run_pipeline(emu, monkeypatch, db, "--resources", "all") == 0
            requests = emu.stats()["requests"]
            second = loaded(db)
            second_expected = {t: expected_objects(emu, t) for t in NEW_TABLES}
            named = [e["data"]["object"] for e in emu.objects("events") if e["created"] >= changed_from]
            touched = {t: {o.get(_parent_of(t)) if o["object"] == BY_TABLE[t].object else o["id"] for o in named}
                       for t in NEW_TABLES if BY_TABLE[t].parent}
            with duckdb.connect(str(db), read_only=True) as con:
                balances = con.execute("SELECT id, read_at FROM stripe.balance ORDER BY read_at").fetchall()
            yield Runs(first, first_expected, second, second_expected, expectations, requests, parents, touched,
                       balances)
        finally:
            project.close()


def _ids(objects: list[dict]) -> set[str]:
    return {o["id"] for o in objects}


@pytest.mark.parametrize("table", NEW_TABLES)
def test_a_first_load_holds_every_object_stripe_lists(runs: Runs, table: str):
    expected = runs.first_expected[table]
    assert expected, f"the emulated world has no {table}: the test would prove nothing"
    assert set(runs.first[table]) == _ids(expected)
    entry = BY_TABLE[table]
    if entry.parent and not sub_list_of(entry).fan_out:  # past the ten items Stripe embeds, for some parents
        column = _parent_of(table)
        per_parent = Counter(o[column] for o in expected)
        assert max(per_parent.values()) > 10, f"{table}: no parent with more than 10 items"
        assert Counter(row[column] for row in runs.first[table].values()) == per_parent


@pytest.mark.parametrize("table", NEW_TABLES)
def test_the_next_run_follows_creates_updates_and_deletes(runs: Runs, table: str):
    got = runs.second[table]
    assert set(got) == _ids(runs.second_expected[table])
    for expect in runs.expectations.get(table, []):
        for object_id, values in expect.rows.items():
            assert object_id in got, f"{table}: {object_id} was not loaded"
            assert {k: _value(got[object_id][k]) for k in values} == values, object_id
        assert not expect.gone & set(got), f"{table}: {expect.gone & set(got)} still there"
        if expect.items:
            counts = Counter(row[_parent_of(table)] for row in got.values())
            assert {p: counts[p] for p in expect.items} == expect.items


def _value(loaded: Any) -> Any:
    return json.loads(loaded) if isinstance(loaded, str) and loaded.startswith("{") else loaded


def test_every_new_table_has_a_change_to_follow(runs: Runs):
    # so that the test above proves something for each (reviews: when the world holds an open one)
    assert set(NEW_TABLES) - set(runs.expectations) <= {"reviews"}


@pytest.mark.parametrize("table", [t for t in NEW_TABLES if BY_TABLE[t].parent and sub_list_of(BY_TABLE[t]).fan_out
                                   and BY_TABLE[BY_TABLE[t].parent].path])
def test_after_the_first_load_a_fan_out_reads_the_parents_events_name(runs: Runs, table: str):
    sub = sub_list_of(BY_TABLE[table])
    endpoint = f"GET {sub.path}"
    if endpoint == "GET /v1/balance_transactions":  # shared with the list itself: counted there
        return
    made = runs.requests.get(endpoint, 0)
    if sub.every_run:  # no event says when it changes: read again for every parent, each run
        assert made >= runs.parents[table]
        return
    assert 0 < made <= len(runs.touched[table]), f"{endpoint}: {made} requests"
    assert made < runs.parents[table], f"{endpoint}: read for every {BY_TABLE[table].parent} again"


def test_the_balance_is_a_row_per_run(runs: Runs):
    assert len(runs.balances) == 2 and runs.balances[0][1] < runs.balances[1][1]
