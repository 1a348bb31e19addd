"""Loading into a real PostgreSQL server (tests/postgres.py starts one): what lands equals the
emulator, on a first load and after an incremental run with creates, updates and deletes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stripe_emulator import Emulator
from tests.dataset import differences, snapshot, without_history
from tests.helpers import assert_equals_emulator, main, rows
from tests.processes import ROOT


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
    # the balance keeps a row per run: no fresh load can equal it
    found = differences(without_history(snapshot(postgres_url)),
                        without_history(snapshot(fresh, max_identifier_length=63)))
    assert not found, "\n".join(found[:20])


def start_account_run(emu: Emulator, account: str, barrier: Path, parties: int) -> subprocess.Popen:
    """`stripe-pipeline run` for one account (the platform's, or a connected one through the
    platform key) in its own process and pipeline, its load step starting with its siblings'."""
    env = dict(os.environ, STRIPE_API_KEY=emu.api_key, PYTHONPATH=str(ROOT), BARRIER_DIR=str(barrier),
               BARRIER_PARTIES=str(parties), SOURCES__STRIPE__FLATTEN_PROCESSES="0")
    if account != emu.account_id:
        env["SOURCES__STRIPE__CREDENTIALS__STRIPE_ACCOUNT"] = account
    command = [sys.executable, "-m", "tests.barrier_child", "run", "--api-base", emu.api_base,
               "--destination", "postgres", "--pipeline-name", f"stripe_{account}"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_accounts_at_once(emu: Emulator, accounts: list[str], barrier: Path) -> None:
    barrier.mkdir()
    runs = {account: start_account_run(emu, account, barrier, len(accounts)) for account in accounts}
    failed = []
    for account, run in runs.items():
        _, err = run.communicate(timeout=180)
        if run.returncode:
            failed.append(f"{account}: exit {run.returncode}: {err.strip()[-3000:]}")
    assert not failed, "\n".join(failed)


def change_account(emu: Emulator, account: str) -> None:
    customers = emu.objects("customers", account)
    emu.create("customers", account, email=f"new@{account}.example.com")
    emu.update("customers", customers[0]["id"], account, email="changed@example.com")
    emu.delete("customers", customers[1]["id"], account)


def test_accounts_loaded_at_once_into_one_postgres_dataset_each_land_exactly_once(postgres_url, tmp_path):
    """The platform and its connected accounts, each in its own process, load one dataset at the
    same time: first loads (append) and then incremental runs (merge), all load steps at once."""
    with Emulator(seed=13, scale=300, connected_accounts=2) as emu:
        accounts = [emu.account_id, *emu.connected_account_ids]
        run_accounts_at_once(emu, accounts, tmp_path / "first")
        for account in accounts:
            assert_equals_emulator(emu, postgres_url, account)

        for account in accounts:
            change_account(emu, account)
        run_accounts_at_once(emu, accounts, tmp_path / "second")
        for account in accounts:
            assert_equals_emulator(emu, postgres_url, account)
            emails = dict(rows(postgres_url, f"SELECT id, email FROM stripe.customers WHERE stripe_account_id = "
                                             f"'{account}'"))
            assert emails == {c["id"]: c.get("email") for c in emu.objects("customers", account)}
        assert {r[0] for r in rows(postgres_url, "SELECT DISTINCT stripe_account_id FROM stripe.charges")} \
            == set(accounts)
