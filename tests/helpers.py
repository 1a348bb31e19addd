"""Running the pipeline against the emulator and reading back what landed in DuckDB."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from stripe_source.catalog import BY_TABLE, CATALOG
from stripe_source.cli.commands import main
from tests.dataset import Database, one_connection, query

# Our table name -> the emulator's resource name (Stripe's URL words).
EMULATOR_RESOURCE = {entry.table: entry.table for entry in CATALOG if not entry.singleton}
EMULATOR_RESOURCE.update(invoice_items="invoiceitems", billing_meters="meters", billing_credit_grants="credit_grants")
# The tables a run loads when given no `resources` (singletons, one row each, apart).
LOADED_BY_DEFAULT = [entry for entry in CATALOG if entry.default and not entry.singleton]


def expected_objects(emu, table: str, account: str | None = None) -> list[dict]:
    """What Stripe lists for one of our tables: the emulator's list, or what a fan-out reads per parent."""
    if table in CONNECTED_ACCOUNT_LISTS:
        return connected_objects(emu, table, account)
    store = emu.store(account)
    if table == "payout_balance_transactions":  # balance_transactions?payout= of each automatic payout
        automatic = {p["id"] for p in emu.objects("payouts", account) if p["automatic"]}
        return [dict(t, payout=store.settled_by[t["id"]]) for t in emu.objects("balance_transactions", account)
                if store.settled_by.get(t["id"]) in automatic]
    parents = PARENTS_OF.get(table)
    if parents is not None:  # a customer's payment methods, a session's line items: per parent, in list order
        parent, relation, column = parents
        return [dict(item, **{column: p["id"]}) for p in emu.objects(parent, account)
                for item in store.related_objects(relation, p["id"])]
    return emu.objects(EMULATOR_RESOURCE[table], account)


# our table -> (the emulator's parent list, the emulator's relation, our column naming the parent)
PARENTS_OF = {
    "payment_methods": ("customers", "customer_payment_methods", "customer"),
    "checkout_session_line_items": ("checkout_sessions", "checkout_session_line_items", "checkout_session"),
    "payment_link_line_items": ("payment_links", "payment_link_line_items", "payment_link"),
    "customer_tax_ids": ("customers", "customer_tax_ids", "customer"),
    "customer_balance_transactions": ("customers", "customer_balance_transactions", "customer"),
    "product_features": ("products", "product_features", "product"),
    "quote_line_items": ("quotes", "quote_line_items", "quote"),
}


# the platform's Connect lists -> the emulator's relation of each connected account (None: the account itself)
CONNECTED_ACCOUNT_LISTS = {"accounts": None, "persons": "account_persons",
                           "external_accounts": "account_external_accounts"}


def connected_objects(emu, table: str, account: str | None = None) -> list[dict]:
    """What the platform reads of its connected accounts (another account reads none): the accounts it lists,
    or their persons or external accounts, account by account."""
    if (account or emu.account_id) != emu.account_id:
        return []
    listed = [emu.store(a) for a, _ in emu.listed_accounts()]
    relation = CONNECTED_ACCOUNT_LISTS[table]
    if relation is None:
        return [emu.account_object(store) for store in listed]
    # persons and external accounts only of the accounts the platform controls (not those it connected by OAuth)
    found = [store.find(i) for store in listed if store.account_id not in emu.oauth_connected
             for i in store.related(relation, store.account_id)]
    return [obj for _, obj in (f for f in found if f is not None)]


def run_pipeline(emu, monkeypatch: pytest.MonkeyPatch, db: Path, *args: str, key: str | None = None) -> int:
    """`stripe-pipeline run` against the emulator, the key given the way orchestrators give it."""
    monkeypatch.setenv("STRIPE_API_KEY", key or emu.api_key)
    return main(["run", "--api-base", emu.api_base, "--duckdb-path", str(db), *args])


def rows(db: Database, sql: str) -> list[tuple]:
    """The rows of a query on a DuckDB file or a PostgreSQL URL."""
    return query(db, sql)


def ids(db: Database, table: str, dataset: str = "stripe", account: str | None = None) -> list[str]:
    """The ids in a table, or in one account's rows of it ([] when it was never created: no run gave
    it rows)."""
    if table not in tables(db, dataset):
        return []
    where = f" WHERE stripe_account_id = '{account}'" if account else ""
    return [r[0] for r in rows(db, f"SELECT id FROM {dataset}.{table}{where}")]


def tables(db: Database, dataset: str = "stripe") -> set[str]:
    found = rows(db, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{dataset}'")
    return {r[0] for r in found}


def assert_no_duplicates(values: list[str]) -> None:
    duplicated = [v for v, n in Counter(values).items() if n > 1]
    assert not duplicated, f"duplicated ids: {duplicated[:5]}"


def assert_equals_emulator(emu, db: Database, account: str | None = None, only: Iterable[str] | None = None) -> None:
    """Every table loaded by default (`only` these, for a run of some resources) holds exactly the
    emulator's ids (of `account`'s rows, when given), once each (the events table, an append-only
    log, also keeps events Stripe no longer holds)."""
    checked = LOADED_BY_DEFAULT if only is None else [BY_TABLE[table] for table in only]
    with one_connection(db):
        for entry in checked:
            got = ids(db, entry.table, account=account)
            assert_no_duplicates(got)
            expected = {o["id"] for o in expected_objects(emu, entry.table, account)}
            if entry.table == "events":
                assert expected <= set(got), entry.table
            else:
                assert set(got) == expected, entry.table
