"""The property: after any sequence of changes and runs, the dataset equals a fresh full load.

Each seed drives a random sequence of rounds against its own emulated account. A round changes the
account (creates, updates, deletes, payments, sub-lists growing and shrinking, partial events,
several changes in one second, objects created at the last cursor and inside the lookback, clock
jumps, now and then one past the 30 days Stripe keeps events), runs the pipeline on random subsets
of the resources (some runs while the account changes under them), and ends with a run of all of
them. Then a fresh full load of the same account into an empty database must hold exactly the same
rows, column by column; every event Stripe still holds is in `events` once, as Stripe sent it.

STRIPE_EQUIVALENCE_SEEDS / STRIPE_EQUIVALENCE_ROUNDS / STRIPE_EQUIVALENCE_SCALE run it bigger.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from stripe_emulator import Emulator
from stripe_source.catalog import CATALOG
from tests.dataset import differences, snapshot, without_history
from tests.helpers import rows, run_pipeline

SEEDS = int(os.environ.get("STRIPE_EQUIVALENCE_SEEDS", "3"))
ROUNDS = int(os.environ.get("STRIPE_EQUIVALENCE_ROUNDS", "3"))
SCALE = int(os.environ.get("STRIPE_EQUIVALENCE_SCALE", "300"))
ROOTS = [entry.table for entry in CATALOG if entry.parent is None and entry.default]  # what "run all" loads


class Changes:
    """Random changes to an emulated account, each one Stripe could make."""

    def __init__(self, emu: Emulator, rng: random.Random) -> None:
        self.emu, self.rng = emu, rng
        self.last_run_start = emu.now()
        self.log: list[str] = []

    def some(self, n: int) -> None:
        for _ in range(n):
            self.one()

    def one(self) -> None:
        ops: list[Callable[[], str | None]] = [
            self.create, self.create, self.update, self.update, self.delete, self.pay, self.grow_invoice,
            self.empty_invoice, self.grow_subscription, self.shrink_subscription, self.cancel, self.partial_event,
            self.same_second, self.at_the_cursor, self.tick, self.catalog_change, self.catalog_change,
        ]
        op = self.rng.choice(ops)
        try:
            done = op()
        except (KeyError, ValueError) as exc:  # what this world cannot do now (a deleted customer's invoice)
            done = f"{op.__name__}: not possible ({exc})"
        if done:
            self.log.append(done)

    def _pick(self, resource: str, **match: object) -> dict | None:
        found = [o for o in self.emu.objects(resource) if all(o.get(k) == v for k, v in match.items())]
        return self.rng.choice(found) if found else None

    def create(self, created: int | None = None) -> str:
        resource = self.rng.choice(["charges", "customers", "payment_intents", "products", "invoiceitems",
                                    "payouts", "refunds", "checkout_sessions", "setup_intents", "topups"])
        fields: dict = {} if created is None else {"created": created}
        if resource == "refunds":
            charge = self._pick("charges", status="succeeded", refunded=False)
            if charge is None:
                return "no refundable charge"
            fields["charge"] = charge["id"]
        obj = self.emu.create(resource, **fields)
        return f"create {resource} {obj['id']}"

    def update(self) -> str | None:
        resource, fields = self.rng.choice([
            ("customers", {"email": f"u{self.rng.randint(1, 10**6)}@example.com"}),
            ("customers", {"metadata": {"tier": self.rng.choice(["gold", "silver"])}}),
            ("products", {"active": self.rng.random() < 0.5}),
            ("coupons", {"metadata": {"note": str(self.rng.randint(1, 99))}}),
            ("invoiceitems", {"description": f"edited {self.rng.randint(1, 99)}"}),
            ("prices", {"nickname": f"n{self.rng.randint(1, 99)}"}),
        ])
        obj = self._pick(resource)
        if obj is None:
            return None
        self.emu.update(resource, obj["id"], **fields)
        return f"update {resource} {obj['id']} {sorted(fields)}"

    def delete(self) -> str | None:
        resource = self.rng.choice(["customers", "coupons", "invoiceitems", "products", "invoices"])
        obj = self._pick(resource, status="draft") if resource == "invoices" else self._pick(resource)
        if obj is None:
            return None
        self.emu.delete(resource, obj["id"])
        return f"delete {resource} {obj['id']}"

    def pay(self) -> str | None:
        invoice = self._pick("invoices", status="open")
        if invoice is None:
            return None
        self.emu.pay_invoice(invoice["id"])
        return f"pay {invoice['id']}"

    def grow_invoice(self) -> str | None:
        invoice = self._pick("invoices", status="draft")
        if invoice is None:
            return None
        n = self.rng.choice([1, 3, 12])  # 12: beyond the 10 an invoice carries
        self.emu.add_invoice_lines(invoice["id"], n)
        return f"add {n} lines to {invoice['id']}"

    def empty_invoice(self) -> str | None:
        invoice = self._pick("invoices", status="draft")
        if invoice is None:
            return None
        self.emu.remove_invoice_lines(invoice["id"])
        return f"empty {invoice['id']}"

    def grow_subscription(self) -> str | None:
        subscription = self._pick("subscriptions")
        if subscription is None:
            return None
        n = self.rng.choice([1, 11])
        self.emu.add_subscription_items(subscription["id"], n)
        return f"add {n} items to {subscription['id']}"

    def shrink_subscription(self) -> str | None:
        item = self._pick("subscription_items")
        if item is None:
            return None
        self.emu.remove_subscription_item(item["id"])
        return f"remove item {item['id']}"

    def cancel(self) -> str | None:
        subscription = self._pick("subscriptions", status="active")
        if subscription is None:
            return None
        self.emu.cancel_subscription(subscription["id"])
        return f"cancel {subscription['id']}"

    def catalog_change(self) -> str | None:
        """A change to one of the objects beyond payments and invoices, as its own test makes it."""
        emu, rng = self.emu, self.rng
        kind = rng.choice(["fee_refund", "refund_update", "reversal", "setup_intent", "topup", "review", "tax_id",
                           "quote", "schedule", "link", "fraud_warning", "grant", "no_event"])
        if kind == "fee_refund" and (fee := self._pick_where("application_fees",
                                                            lambda f: f["amount_refunded"] < f["amount"])):
            emu.refund_application_fee(fee["id"], rng.choice([1, 11]))  # 11: beyond the ten a fee embeds
            return f"refund fee {fee['id']}"
        if kind == "refund_update" and (refund := self._pick("application_fee_refunds")):
            emu.update("application_fee_refunds", refund["id"], metadata={"n": str(rng.randint(1, 99))})
            return f"update fee refund {refund['id']}"
        if kind == "reversal" and (transfer := self._pick_where("transfers",
                                                               lambda t: t["amount_reversed"] < t["amount"])):
            emu.add_transfer_reversals(transfer["id"], rng.choice([1, 11]))
            return f"reverse transfer {transfer['id']}"
        if kind == "setup_intent":
            if intent := self._pick("setup_intents", status="requires_payment_method"):
                emu.transition("setup_intents", intent["id"], "canceled", status="canceled",
                               cancellation_reason="abandoned")
                return f"cancel setup intent {intent['id']}"
            return f"create setup intent {emu.create('setup_intents', status='requires_payment_method')['id']}"
        if kind == "topup":
            if topup := self._pick("topups", status="pending"):
                emu.transition("topups", topup["id"], "canceled", status="canceled")
                return f"cancel top-up {topup['id']}"
            return f"create top-up {emu.create('topups', status='pending')['id']}"
        if kind == "review" and (review := self._pick("reviews", open=True)):
            emu.close_review(review["id"], "approved")
            return f"close review {review['id']}"
        if kind == "tax_id" and (customer := self._pick("customers")):
            held = emu.store().related("customer_tax_ids", customer["id"])
            if held and rng.random() < 0.5:
                gone = held[0]
                emu.delete_tax_id(gone)
                return f"delete tax id {gone}"
            made = emu.create("tax_ids", customer=customer["id"])
            return f"create tax id {made['id']}"
        if kind == "quote":
            if draft := self._pick("quotes", status="draft"):
                emu.finalize_quote(draft["id"])
                return f"finalize quote {draft['id']}"
            made = emu.create("quotes", status="draft", lines=rng.choice([2, 12]))
            return f"create quote {made['id']}"
        if kind == "schedule":
            if schedule := self._pick("subscription_schedules", status="not_started"):
                emu.transition("subscription_schedules", schedule["id"], "canceled", status="canceled",
                               canceled_at=emu.now())
                return f"cancel schedule {schedule['id']}"
            return f"create schedule {emu.create('subscription_schedules', status='not_started')['id']}"
        if kind == "link":
            if link := self._pick("payment_links", active=True):
                emu.update("payment_links", link["id"], active=False)
                return f"deactivate link {link['id']}"
            return f"create link {emu.create('payment_links', active=True, lines=rng.choice([2, 12]))['id']}"
        if kind == "fraud_warning":
            if warning := self._pick("early_fraud_warnings", actionable=True):
                emu.update("early_fraud_warnings", warning["id"], actionable=False)
                return f"settle fraud warning {warning['id']}"
            return f"create fraud warning {emu.create('early_fraud_warnings')['id']}"
        if kind == "grant":
            if grant := self._pick("credit_grants", voided_at=None):
                emu.update("credit_grants", grant["id"], voided_at=emu.now())
                return f"void grant {grant['id']}"
            return f"create grant {emu.create('credit_grants')['id']}"
        if kind == "no_event":  # changes Stripe announces in no event: the list is read whole each run
            if rate := self._pick("shipping_rates"):
                emu.update("shipping_rates", rate["id"], active=not rate["active"])
                return f"toggle shipping rate {rate['id']}"
        return None

    def _pick_where(self, resource: str, test: Callable[[dict], bool]) -> dict | None:
        found = [o for o in self.emu.objects(resource) if test(o)]
        return self.rng.choice(found) if found else None

    def partial_event(self) -> str | None:
        customer = self._pick("customers")
        if customer is None:
            return None
        # a snapshot missing most fields (an older API version's): must never null the row
        self.emu.emit_event("customer.updated", {"id": customer["id"], "object": "customer",
                                                 "email": customer["email"]})
        return f"partial event for {customer['id']}"

    def same_second(self) -> str:
        done = []
        for _ in range(self.rng.randint(2, 4)):
            logged = len(self.log)
            self.one()
            done.append(self.log.pop() if len(self.log) > logged else "nothing")
        return "same second: " + "; ".join(done)

    def at_the_cursor(self) -> str:
        # created exactly where the last run started, or inside the lookback behind it
        return self.create(created=self.last_run_start - self.rng.choice([0, 1, 120, 299]))

    def tick(self) -> str:
        seconds = self.rng.choice([1, 5, 60, 400])
        self.emu.advance(seconds=seconds)
        return f"advance {seconds}s"


def changing_during(emu: Emulator, changes: Changes, at_request: int) -> None:
    """Make one change when the emulator serves its `at_request`-th request from now."""
    emu.reset_stats()
    count = emu.count_request

    def count_and_change(endpoint: str) -> int:
        number = count(endpoint)
        if number == at_request:
            changes.some(2)
        return number

    emu.count_request = count_and_change  # type: ignore[method-assign]


def marking_the_run_start(emu: Emulator, changes: Changes) -> None:
    """`changes.last_run_start` becomes the emulator's clock at the run's first request: the moment the
    run takes as its start (its cursor), which can be a second or more after the run was launched."""
    count = emu.count_request
    started = False

    def mark_then_count(endpoint: str) -> int:
        nonlocal started
        if not started:
            started = True
            changes.last_run_start = emu.now()
        return count(endpoint)

    emu.count_request = mark_then_count  # type: ignore[method-assign]


def assert_equals_a_fresh_load(emu: Emulator, db: Path, fresh_db: Path, monkeypatch: pytest.MonkeyPatch,
                               log: list[str]) -> None:
    monkeypatch.setenv("SOURCES__STRIPE__FLATTEN_PROCESSES", "0")
    assert run_pipeline(emu, monkeypatch, fresh_db, "--pipeline-name", "fresh_load", "--full-refresh") == 0
    found = differences(without_history(snapshot(db)), without_history(snapshot(fresh_db)))
    assert not found, "\n".join(found[:20]) + "\nafter:\n" + "\n".join(log[-40:])
    events = {e["id"]: e for e in emu.objects("events")}
    stored = {i: orjson.loads(data) for i, data in rows(db, "SELECT id, data FROM stripe.events")}
    for event_id, event in events.items():
        assert stored.get(event_id) == event["data"], f"event {event_id} ({event['type']}) is not as Stripe sent it"


@pytest.mark.parametrize("seed", range(1, SEEDS + 1))
def test_incremental_runs_equal_a_fresh_full_load(seed, monkeypatch, tmp_path):
    rng = random.Random(seed)
    with Emulator(seed=seed, scale=SCALE) as emu:
        changes = Changes(emu, rng)
        db = tmp_path / "incremental.duckdb"
        monkeypatch.setenv("SOURCES__STRIPE__FLATTEN_PROCESSES", str(rng.choice([0, 1])))
        assert run_pipeline(emu, monkeypatch, db) == 0
        for round_ in range(ROUNDS):
            changes.log.append(f"--- round {round_}")
            changes.some(rng.randint(3, 12))
            if rng.random() < 0.2:
                emu.advance(days=31)  # past the events Stripe keeps: only a re-read can see the changes
                changes.log.append("advance 31 days")
            for _ in range(rng.randint(0, 2)):
                subset = rng.sample(ROOTS, rng.randint(1, 4))
                if rng.random() < 0.5:
                    changing_during(emu, changes, rng.randint(1, 8))
                marking_the_run_start(emu, changes)
                assert run_pipeline(emu, monkeypatch, db, "--resources", ",".join(subset)) == 0, changes.log
                emu.count_request = Emulator.count_request.__get__(emu)  # type: ignore[method-assign]
                changes.log.append(f"run {subset}")
                changes.some(rng.randint(0, 4))
            marking_the_run_start(emu, changes)
            assert run_pipeline(emu, monkeypatch, db) == 0, changes.log
            emu.count_request = Emulator.count_request.__get__(emu)  # type: ignore[method-assign]
            changes.log.append("run all")
            assert_equals_a_fresh_load(emu, db, tmp_path / f"fresh_{round_}.duckdb", monkeypatch, changes.log)
