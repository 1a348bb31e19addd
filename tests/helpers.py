"""Running the pipeline against the emulator and reading back what landed in DuckDB."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from stripe_source.catalog import CATALOG
from stripe_source.cli.commands import main
from tests.dataset import Database, query

# Our table name -> the emulator's resource name (Stripe's URL words).
EMULATOR_RESOURCE = {entry.table: entry.table for entry in CATALOG if not entry.singleton}
EMULATOR_RESOURCE["invoice_items"] = "invoiceitems"


def run_pipeline(emu, monkeypatch: pytest.MonkeyPatch, db: Path, *args: str, key: str | None = None) -> int:
    """`stripe-pipeline run` against the emulator, the key given the way orchestrators give it."""
    monkeypatch.setenv("STRIPE_API_KEY", key or emu.api_key)
    return main(["run", "--api-base", emu.api_base, "--duckdb-path", str(db), *args])


def rows(db: Database, sql: str) -> list[tuple]:
    """The rows of a query on a DuckDB file or a PostgreSQL URL."""
    return query(db, sql)


def ids(db: Database, table: str, dataset: str = "stripe", account: str | None = None) -> list[str]:
    """The ids in a table, or in one account's rows of it."""
    where = f" WHERE stripe_account_id = '{account}'" if account else ""
    return [r[0] for r in rows(db, f"SELECT id FROM {dataset}.{table}{where}")]


def tables(db: Database, dataset: str = "stripe") -> set[str]:
    found = rows(db, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{dataset}'")
    return {r[0] for r in found}


def assert_no_duplicates(values: list[str]) -> None:
    duplicated = [v for v, n in Counter(values).items() if n > 1]
    assert not duplicated, f"duplicated ids: {duplicated[:5]}"


def assert_equals_emulator(emu, db: Database, account: str | None = None) -> None:
    """Every table holds exactly the emulator's ids (of `account`'s rows, when given), once each
    (the events table, an append-only log, also keeps events Stripe no longer holds)."""
    for entry in CATALOG:
        if entry.singleton:
            continue
        got = ids(db, entry.table, account=account)
        assert_no_duplicates(got)
        expected = {o["id"] for o in emu.objects(EMULATOR_RESOURCE[entry.table], account)}
        if entry.table == "events":
            assert expected <= set(got), entry.table
        else:
            assert set(got) == expected, entry.table
