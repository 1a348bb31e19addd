"""A platform's connected accounts as tables: `accounts`, their `persons` and `external_accounts`.

Read with the platform's key, compared id by id with what the emulator holds (external accounts past
the 10 an account embeds included); changed through the accounts' own events between runs: in a run
of all accounts the platform reads again only what those events name, and a run of the platform
alone reads the lists again whole.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from stripe_emulator import Emulator
from stripe_source.errors import EXIT_OK, EXIT_PERMISSION
from tests.helpers import assert_no_duplicates, connected_objects, ids, rows, run_pipeline

TABLES = ("accounts", "persons", "external_accounts")
CONNECT = ("--resources", ",".join(TABLES))
PERSONS = "GET /v1/accounts/{id}/persons"
EXTERNAL = "GET /v1/accounts/{id}/external_accounts"


@pytest.fixture
def platform() -> Iterator[Emulator]:
    with Emulator(seed=4, scale=60, connected_scales=[60] * 5) as emu:
        emu.advance(seconds=400)  # the world's own recent history is behind the next run's lookback
        yield emu


def controlled(emu: Emulator) -> list[str]:
    """The listed accounts the platform controls: Stripe shows it their persons and external accounts."""
    return [a for a, _ in emu.listed_accounts() if a not in emu.oauth_connected]


def external_ids(emu: Emulator, account: str) -> list[str]:
    return [e["id"] for e in connected_objects(emu, "external_accounts") if e["account"] == account]


def assert_tables_equal_emulator(emu: Emulator, db: Path) -> None:
    for table in TABLES:
        got = ids(db, table, account=emu.account_id)
        assert_no_duplicates(got)
        assert set(got) == {o["id"] for o in connected_objects(emu, table)}, table
    assert not [r for r in rows(db, "SELECT id FROM stripe.accounts WHERE stripe_account_id <> "
                                    f"'{emu.account_id}'")]


def value(db: Path, table: str, column: str, object_id: str):
    (found,) = rows(db, f"SELECT {column} FROM stripe.{table} WHERE id = '{object_id}'")[0]
    return json.loads(found) if isinstance(found, str) and found.startswith("{") else found


def test_a_first_load_holds_every_account_person_and_external_account(platform, monkeypatch, tmp_path):
    db = tmp_path / "connect.duckdb"
    assert run_pipeline(platform, monkeypatch, db, *CONNECT) == EXIT_OK
    assert_tables_equal_emulator(platform, db)
    # past the 10 external accounts an account embeds, for the accounts that have more
    per_account = Counter(e["account"] for e in connected_objects(platform, "external_accounts"))
    assert max(per_account.values()) > 10 and min(per_account.values()) <= 10
    loaded = Counter(r[0] for r in rows(db, "SELECT account FROM stripe.external_accounts"))
    assert loaded == per_account
    kinds = {r[0] for r in rows(db, "SELECT DISTINCT object FROM stripe.external_accounts")}
    assert kinds == {"bank_account", "card"}
    persons = connected_objects(platform, "persons")
    assert {r[0] for r in rows(db, "SELECT DISTINCT account FROM stripe.persons")} == {p["account"] for p in persons}
    # one request per account for its persons, one per account past the 10 embedded for the rest
    made = platform.stats()["requests"]
    assert made[PERSONS] == len(controlled(platform))
    assert made[EXTERNAL] == sum(1 for n in per_account.values() if n > 10)
    assert made["GET /v1/accounts"] == 1


def change_accounts(emu: Emulator) -> dict[str, str]:
    """Between runs: a person added, one updated, one removed; an external account past the 10 embedded
    updated, one added, one removed; an account's profile changed; an account disconnected."""
    *others, fourth = (a for a, _ in emu.listed_accounts())
    others = [a for a in others if a not in emu.oauth_connected]
    wide = next(a for a in others if len(external_ids(emu, a)) > 10)
    narrow = next(a for a in others if a != wide)
    added = emu.create("persons", account=narrow, first_name="Rosa")
    changed = next(p for p in connected_objects(emu, "persons") if p["account"] == narrow)["id"]
    emu.update("persons", changed, account=narrow, email="moved@example.com")
    removed = next(p for p in connected_objects(emu, "persons")
                   if p["account"] == wide and not p["relationship"]["representative"])["id"]
    emu.delete("persons", removed, account=wide)
    far = external_ids(emu, wide)[11]
    kind = emu.store(wide).where[far]
    emu.update(kind, far, account=wide, metadata={"payouts": "monthly"})
    new_bank = emu.create("bank_accounts", account=wide, currency="eur")["id"]
    gone_bank = next(i for i in external_ids(emu, wide)[1:] if emu.store(wide).where[i] == "bank_accounts"
                     and not emu.store(wide).find(i)[1]["default_for_currency"] and i != far)
    emu.delete("bank_accounts", gone_bank, account=wide)
    profile = emu.account_object(emu.store(narrow))["business_profile"]
    emu.update_account(narrow, business_profile=dict(profile, url="https://renamed.example.com"))
    emu.deauthorize(fourth)
    return {"wide": wide, "narrow": narrow, "added": added["id"], "changed": changed, "removed": removed,
            "far": far, "new_bank": new_bank, "gone_bank": gone_bank, "disconnected": fourth}


def assert_changes_loaded(emu: Emulator, db: Path, changed: dict[str, str]) -> None:
    assert_tables_equal_emulator(emu, db)
    assert value(db, "persons", "email", changed["changed"]) == "moved@example.com"
    assert value(db, "external_accounts", "metadata", changed["far"]) == {"payouts": "monthly"}
    assert value(db, "accounts", "business_profile__url", changed["narrow"]) == "https://renamed.example.com"
    gone = {changed["removed"], changed["gone_bank"], changed["disconnected"]}
    left = {r[0] for table in TABLES for r in rows(db, f"SELECT id FROM stripe.{table}")} & gone
    assert not left
    assert not rows(db, f"SELECT id FROM stripe.persons WHERE account = '{changed['disconnected']}'")


def test_a_run_of_all_accounts_reads_again_only_what_their_events_name(platform, monkeypatch, tmp_path):
    db = tmp_path / "all.duckdb"
    assert run_pipeline(platform, monkeypatch, db, "--all-accounts", *CONNECT) == EXIT_OK
    assert_tables_equal_emulator(platform, db)
    changed = change_accounts(platform)
    platform.advance(seconds=400)  # the next run's own lookback then ends before these changes
    platform.reset_stats()
    assert run_pipeline(platform, monkeypatch, db, "--all-accounts", *CONNECT) == EXIT_OK
    assert_changes_loaded(platform, db, changed)
    # the list once, reused; persons of the two accounts whose events name a person; the wide account's
    # external accounts past the 10 embedded (its events name them); nothing for the unchanged
    made = platform.stats()["requests"]
    assert made["GET /v1/accounts"] == 1
    assert made[PERSONS] == 2 and made[EXTERNAL] == 1
    by_account = platform.stats()["by_account"]
    for account, _ in platform.listed_accounts():
        # what the connected account's own feed costs (these tables share it with its other tables)
        assert set(by_account[account]) == {"GET /v1/events"}, by_account[account]

    # nothing changed since: no account's lists are read again
    platform.reset_stats()
    assert run_pipeline(platform, monkeypatch, db, "--all-accounts", *CONNECT) == EXIT_OK
    made = platform.stats()["requests"]
    assert PERSONS not in made and EXTERNAL not in made
    assert_tables_equal_emulator(platform, db)


def test_a_run_of_the_platform_alone_reads_the_lists_again_every_run(platform, monkeypatch, tmp_path):
    db = tmp_path / "alone.duckdb"
    assert run_pipeline(platform, monkeypatch, db, *CONNECT) == EXIT_OK
    changed = change_accounts(platform)
    platform.reset_stats()
    assert run_pipeline(platform, monkeypatch, db, *CONNECT) == EXIT_OK
    assert_changes_loaded(platform, db, changed)
    # it cannot see the accounts' events: every account's persons, and the external accounts of those
    # with more than the 10 embedded
    made = platform.stats()["requests"]
    assert made[PERSONS] == len(controlled(platform))
    wide = [a for a in controlled(platform) if len(external_ids(platform, a)) > 10]
    assert made[EXTERNAL] == len(wide)
    assert set(platform.stats()["by_account"]) == {platform.account_id}


def test_persons_are_off_by_default_and_say_so(platform, monkeypatch, tmp_path, caplog):
    db = tmp_path / "default.duckdb"
    with caplog.at_level("INFO"):
        assert run_pipeline(platform, monkeypatch, db, "--resources", "connect") == EXIT_OK
    assert "persons is off by default (1 request per platform-controlled account)" in caplog.text
    assert set(ids(db, "accounts")) == {o["id"] for o in connected_objects(platform, "accounts")}
    assert set(ids(db, "external_accounts")) == {o["id"] for o in connected_objects(platform, "external_accounts")}
    assert ids(db, "persons") == [] and PERSONS not in platform.stats()["requests"]


def test_a_restricted_key_without_the_connect_permission_is_refused_before_it_loads(platform, monkeypatch, tmp_path,
                                                                                   capsys):
    db = tmp_path / "restricted.duckdb"
    readable = {"events": "read", "account": "read"}
    key = platform.add_key(kind="restricted", permissions=readable)
    assert run_pipeline(platform, monkeypatch, db, *CONNECT, key=key) == EXIT_PERMISSION
    shown = capsys.readouterr()
    assert "accounts (needs 'rak_connected_account_read')" in shown.err
    assert key not in shown.out + shown.err and not db.exists()
    allowed = platform.add_key(kind="restricted", permissions={**readable, "connected_accounts": "read"})
    assert run_pipeline(platform, monkeypatch, db, *CONNECT, key=allowed) == EXIT_OK
    assert_tables_equal_emulator(platform, db)


def test_an_account_connected_by_oauth_keeps_its_persons_and_external_accounts(platform, monkeypatch, tmp_path):
    # Stripe shows a connected account's external accounts and persons only to a platform that controls it
    # (one it created); asking for those of an account connected through Connect OAuth is refused.
    (own,) = platform.oauth_connected
    assert platform.account_object(platform.store(own))["controller"]["is_controller"] is False
    db = tmp_path / "oauth_connected.duckdb"
    assert run_pipeline(platform, monkeypatch, db, *CONNECT) == EXIT_OK
    assert_tables_equal_emulator(platform, db)
    assert own in ids(db, "accounts", account=platform.account_id)
    assert not rows(db, f"SELECT id FROM stripe.external_accounts WHERE account = '{own}'")


def test_a_start_date_keeps_the_older_accounts_lists(platform, monkeypatch, tmp_path):
    # A window reads the accounts created in it; the older accounts are still connected: their persons and
    # external accounts stay, whichever of the tables the run selects.
    db = tmp_path / "window.duckdb"
    assert run_pipeline(platform, monkeypatch, db, *CONNECT) == EXIT_OK
    created = sorted(created for _, created in platform.listed_accounts())
    for selected in ("external_accounts", "persons", "accounts,external_accounts,persons"):
        assert run_pipeline(platform, monkeypatch, db, "--resources", selected, "--start-date",
                            str(created[-1])) == EXIT_OK
        assert_tables_equal_emulator(platform, db)
