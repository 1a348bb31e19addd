"""Loading into a real PostgreSQL server (tests/postgres.py starts one): what lands equals the
emulator, on a first load and after an incremental run with creates, updates and deletes."""

from __future__ import annotations

import pytest

from stripe_emulator import Emulator
from tests.dataset import differences, snapshot
from tests.helpers import assert_equals_emulator, main


def run_into_postgres(emu: Emulator, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("STRIPE_API_KEY", emu.api_key)
    return main(["run", "--api-base", emu.api_base, "--destination", "postgres", *args])


def change(emu: Emulator) -> None:
    """Creates, updates (an invoice paid, a subscription canceled, a customer edited) and deletes."""
    customers = emu.objects("customers")
    emu.create("charges", customer=customers[0]["id"], amount=4200, currency="usd")
    emu.create("customers", email="new@example.com")
    emu.update("customers", customers[1]["id"], email="changed@example.com")
    emu.delete("customers", customers[2]["id"])
    invoices = emu.objects("invoices")
    open_invoice = next(i for i in invoices if i["status"] == "open")
    emu.pay_invoice(open_invoice["id"])
    drafts = [i for i in invoices if i["status"] == "draft"]
    emu.add_invoice_lines(drafts[0]["id"], 12)  # beyond the 10 lines an event carries
    emu.delete("invoices", drafts[1]["id"])
    active = next(s for s in emu.objects("subscriptions") if s["status"] == "active")
    emu.cancel_subscription(active["id"])


def test_postgres_equals_the_emulator_after_a_first_and_an_incremental_run(postgres_url, monkeypatch, tmp_path):
    with Emulator(seed=7, scale=300) as emu:  # a world with two drafts, an open invoice, an active subscription
        assert run_into_postgres(emu, monkeypatch) == 0
        assert_equals_emulator(emu, postgres_url)

        change(emu)
        assert run_into_postgres(emu, monkeypatch) == 0
        assert_equals_emulator(emu, postgres_url)

        # column by column: what a fresh full load into DuckDB gives for the emulator as it is now
        fresh = tmp_path / "fresh.duckdb"
        assert main(["run", "--api-base", emu.api_base, "--duckdb-path", str(fresh),
                     "--pipeline-name", "fresh_load"]) == 0
    found = differences(snapshot(postgres_url), snapshot(fresh, max_identifier_length=63))
    assert not found, "\n".join(found[:20])
