"""A Connect platform's accounts in one run: `run --all-accounts` / `--accounts` against the emulator,
each account's rows compared with what the emulator holds for it."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from stripe_emulator import Emulator
from stripe_source.catalog import CATALOG
from stripe_source.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_REAUTHENTICATE, EXIT_SOME_ACCOUNTS_FAILED
from tests.dataset import one_connection
from tests.helpers import assert_equals_emulator, rows, run_pipeline

LOOKBACK = 300  # the source's default lookback_seconds
# sub-list pages; not a list's own endpoint shared by a fan-out (`balance_transactions?payout=`)
SUB_LIST_PAGES = ({f"GET {sub.path.split('?')[0]}" for entry in CATALOG for sub in entry.sub_lists}
                  - {f"GET {entry.path}" for entry in CATALOG if entry.path})
PLATFORM_ONLY = {"GET /v1/account", "GET /v1/accounts"}  # the connection check and the list of accounts


@pytest.fixture
def platform() -> Emulator:
    with Emulator(seed=21, scale=120, connected_scales=[60, 60, 60]) as emu:
        # the world's own recent history is behind the lookback of the run after the first
        emu.advance(seconds=LOOKBACK + 60)
        yield emu


def cost(emu: Emulator, account: str) -> tuple[int, int]:
    """(list requests, re-fetches: single objects and sub-list pages) the last run made for `account`."""
    made = {endpoint: n for endpoint, n in emu.stats()["by_account"].get(account, {}).items()
            if endpoint not in PLATFORM_ONLY}
    refetches = sum(n for endpoint, n in made.items() if "{id}" in endpoint or endpoint in SUB_LIST_PAGES)
    return sum(made.values()) - refetches, refetches


# Default tables Stripe announces nothing new of (no `checkout.session.created`, no `file_link.*`, no
# `shipping_rate.*`, no event for a quote draft's edits) and the balance, a snapshot per run: one request
# each per incremental run, whatever changed.
UNANNOUNCED = ("GET /v1/checkout/sessions", "GET /v1/file_links", "GET /v1/shipping_rates", "GET /v1/quotes",
               "GET /v1/balance")


def made(emu: Emulator, account: str) -> str:
    return " ".join(f"{e}={n}" for e, n in sorted(emu.stats()["by_account"].get(account, {}).items()))


def events_since(emu: Emulator, account: str, since: int) -> list[dict]:
    return [event for event in emu.objects("events", account=account) if event["created"] >= since]


def drafts_shown(events: list[dict]) -> int:
    """Draft invoices the events show: their invoice items are read again (Stripe announces no item's update)."""
    return len({e["data"]["object"]["id"] for e in events
                if e["data"]["object"].get("object") == "invoice" and e["data"]["object"]["status"] == "draft"})


def ids_of(db: Path, table: str, account: str) -> list[str]:
    return [r[0] for r in rows(db, f"SELECT id FROM stripe.{table} WHERE stripe_account_id = '{account}'")]


def assert_account_equals_emulator(emu: Emulator, db: Path, account: str) -> None:
    """Every table loaded by default holds exactly the emulator's objects of `account`, once each, its
    account row, and its balance as read by each run."""
    with one_connection(db):
        assert_equals_emulator(emu, db, account)
        assert ids_of(db, "account", account) == [account]
        balances = ids_of(db, "balance", account)
        assert balances and all(b.startswith(f"{account}:") for b in balances), balances


def accounts_in(db: Path, table: str = "account") -> set[str]:
    return {r[0] for r in rows(db, f"SELECT DISTINCT stripe_account_id FROM stripe.{table}")}


def summary(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def test_all_accounts_loads_the_platform_and_every_connected_account_exactly(platform, monkeypatch, tmp_path,
                                                                              capsys):
    db, summary_file = tmp_path / "platform.duckdb", tmp_path / "summary.json"
    everyone = [platform.account_id, *(account for account, _ in reversed(platform.listed_accounts()))]  # oldest first
    assert run_pipeline(platform, monkeypatch, db, "--all-accounts", "--summary-json", str(summary_file)) == EXIT_OK
    for account in everyone:
        assert_account_equals_emulator(platform, db, account)
    assert accounts_in(db) == set(everyone)
    name, = rows(db, f"SELECT business_profile__name FROM stripe.account WHERE id = '{everyone[1]}'")[0]
    assert name == platform.account_object(platform.store(everyone[1]))["business_profile"]["name"]
    # one progress line per account
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == len(everyone) and all(" loaded " in line for line in lines)
    # the summary for orchestrators
    got = summary(summary_file)
    assert got["status"] == "loaded" and got["exit_code"] == EXIT_OK and got["skipped"] == []
    assert [a["account"] for a in got["accounts"]] == everyone
    assert got["requests"] == platform.stats()["requests_total"]
    for account in got["accounts"]:
        assert account["status"] == "loaded" and account["error"] is None
        assert account["requests"] == sum(platform.stats()["by_account"][account["account"]].values()) or \
            account["account"] == platform.account_id  # the platform's own also lists the accounts
        charges = ids_of(db, "charges", account["account"])
        assert account["tables"]["charges"] == len(charges)
    assert got["tables"]["charges"] == len(rows(db, "SELECT id FROM stripe.charges"))


def test_a_revoked_account_is_isolated_and_the_next_run_retries_it(platform, monkeypatch, tmp_path, capsys):
    db, summary_file = tmp_path / "revoked.duckdb", tmp_path / "summary.json"
    first, revoked, last = platform.connected_account_ids
    picked = ",".join([first, revoked, last])
    platform.deauthorize(revoked)
    code = run_pipeline(platform, monkeypatch, db, "--accounts", picked, "--summary-json", str(summary_file))
    assert code == EXIT_SOME_ACCOUNTS_FAILED
    for account in (first, last):
        assert_account_equals_emulator(platform, db, account)
    assert revoked not in accounts_in(db, "charges")
    shown = capsys.readouterr()
    assert f"{revoked}  revoked" in shown.out and "deauthorized" in shown.out
    assert platform.api_key not in shown.out + shown.err
    got = summary(summary_file)
    assert got["status"] == "some_accounts_failed" and got["exit_code"] == EXIT_SOME_ACCOUNTS_FAILED
    by_account = {a["account"]: a for a in got["accounts"]}
    assert by_account[revoked]["status"] == "revoked" and by_account[first]["status"] == "loaded"

    # it connects again: the next run loads it, and reads the others only for what changed (nothing)
    platform.reconnect(revoked)
    platform.reset_stats()
    assert run_pipeline(platform, monkeypatch, db, "--accounts", picked) == EXIT_OK
    for account in (first, revoked, last):
        assert_account_equals_emulator(platform, db, account)
    assert cost(platform, first) == cost(platform, last) == (3 + len(UNANNOUNCED), 0)
    assert cost(platform, revoked)[0] > 3


def test_an_unchanged_account_costs_three_requests_a_changed_one_its_events_and_refetches(
        platform, monkeypatch, tmp_path):
    db = tmp_path / "cost.duckdb"
    everyone = [platform.account_id, *platform.connected_account_ids]
    first_run = platform.now()
    assert run_pipeline(platform, monkeypatch, db, "--all-accounts") == EXIT_OK
    changed = platform.connected_account_ids[1]
    customers = platform.objects("customers", account=changed)
    platform.update("customers", customers[0]["id"], account=changed, email="moved@example.com")
    platform.create("charges", account=changed, customer=customers[1]["id"], amount=1200, currency="usd")
    platform.create("customers", account=changed)
    # more lines than the 10 its event carries: the rest are paged
    platform.create("invoices", account=changed, customer=customers[2]["id"], status="draft", lines=12)
    platform.reset_stats()
    assert run_pipeline(platform, monkeypatch, db, "--all-accounts") == EXIT_OK
    for account in everyone:
        lists, refetches = cost(platform, account)
        events = events_since(platform, account, first_run - LOOKBACK)
        if account == changed:
            assert len(events) >= 5 and refetches >= 1  # the invoice's lines beyond the ten its event carries
        else:
            assert not events and refetches == 0, made(platform, account)
        # the events pages, the list of balance transactions (Stripe announces none), pending invoice items;
        # the items of each draft invoice the events show; and one request each for the default tables
        # whose news Stripe announces in no event
        bound = math.ceil(len(events) / 100) + 3 + drafts_shown(events) + len(UNANNOUNCED)
        assert lists <= bound, made(platform, account)
    for account in everyone:
        assert_account_equals_emulator(platform, db, account)


def test_every_account_refused_is_the_failures_code(platform, monkeypatch, tmp_path, capsys):
    db = tmp_path / "none.duckdb"
    for account in platform.connected_account_ids[:2]:
        platform.deauthorize(account)
    # the accounts from dlt config, as an orchestrator may give them
    monkeypatch.setenv("SOURCES__STRIPE__ACCOUNTS", ",".join(platform.connected_account_ids[:2]))
    assert run_pipeline(platform, monkeypatch, db) == EXIT_REAUTHENTICATE
    shown = capsys.readouterr()
    assert shown.out.count(" revoked ") == 2
    assert shown.err.startswith("Error: 2 of 2 accounts did not load") and shown.err.count("\n") == 1


def test_new_accounts_are_picked_up_and_disconnected_ones_skipped_with_a_warning(platform, monkeypatch, tmp_path,
                                                                                 caplog):
    db = tmp_path / "picked.duckdb"
    later, leaving = platform.connected_account_ids[:2]
    platform.deauthorize(later)  # not connected yet
    assert run_pipeline(platform, monkeypatch, db, "--all-accounts") == EXIT_OK
    assert later not in accounts_in(db)
    platform.reconnect(later)
    platform.deauthorize(leaving)
    with caplog.at_level("WARNING"):  # each account paced on its own budget this time
        assert run_pipeline(platform, monkeypatch, db, "--all-accounts", "--pace", "per-account") == EXIT_OK
    assert_account_equals_emulator(platform, db, later)
    assert f"{leaving}: no longer connected to the platform" in caplog.text
    assert leaving in accounts_in(db)  # its rows stay


@pytest.mark.parametrize(("args", "says"), [
    (("--all-accounts", "--accounts", "acct_1x"), "exclude each other"),
    (("--accounts", "acct_1x,cus_123"), "'cus_123' is not a Stripe account id"),
    (("--accounts", " "), "--accounts is empty"),
    (("--pace", "per-account"), "--pace is for --all-accounts"),
    (("--all-accounts", "--summary-json", "/"), "is a directory"),
    (("--all-accounts", "--summary-json", "/nonexistent-dir/s.json"), "does not exist"),
])
def test_bad_platform_input_stops_before_any_request(platform, monkeypatch, tmp_path, capsys, args, says):
    platform.reset_stats()
    assert run_pipeline(platform, monkeypatch, tmp_path / "bad.duckdb", *args) == EXIT_BAD_INPUT
    assert says in capsys.readouterr().err
    assert platform.stats()["requests_total"] == 0
    assert not (tmp_path / "bad.duckdb").exists()


def test_a_connected_accounts_credentials_cannot_load_the_platform(platform, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__STRIPE_ACCOUNT", platform.connected_account_ids[0])
    assert run_pipeline(platform, monkeypatch, tmp_path / "x.duckdb", "--all-accounts") == EXIT_BAD_INPUT
    assert "needs the platform's own key" in capsys.readouterr().err


def test_a_connected_account_with_history_older_than_its_connection_loads_whole(monkeypatch, tmp_path):
    """A connected account's `created` is when it was connected; its objects can be older. Large
    enough that its lists are read in parallel windows below that date."""
    with Emulator(seed=3, scale=120, connected_scales=[5000]) as emu:
        account = emu.connected_account_ids[0]
        connected_at = dict(emu.listed_accounts())[account]
        older = [o for o in emu.objects("invoiceitems", account=account) if o["date"] < connected_at - 86400]
        assert older, "the world must hold invoice items from before the account was connected"
        db = tmp_path / "platform.duckdb"
        assert run_pipeline(emu, monkeypatch, db, "--accounts", account) == EXIT_OK
        assert_account_equals_emulator(emu, db, account)


def test_a_platform_with_more_than_a_page_of_connected_accounts_loads_them_all(monkeypatch, tmp_path):
    # Stripe lists 100 connected accounts a page at most; a peer connector read only the newest 100
    with Emulator(seed=4, scale=60, connected_scales=[1] * 105) as emu:
        db = tmp_path / "many.duckdb"
        assert run_pipeline(emu, monkeypatch, db, "--all-accounts", "--resources", "accounts,customers") == EXIT_OK
        connected = set(emu.connected_account_ids)
        assert len(connected) == 105
        assert {r[0] for r in rows(db, "SELECT id FROM stripe.accounts")} == connected
        assert accounts_in(db, "customers") == connected | {emu.account_id}
        assert emu.stats()["requests"]["GET /v1/accounts"] == 2  # two pages, read once: the list reused
        for account in connected | {emu.account_id}:
            assert sorted(ids_of(db, "customers", account)) == sorted(
                c["id"] for c in emu.objects("customers", account=account))
