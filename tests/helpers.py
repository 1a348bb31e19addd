"""Running the pipeline against the emulator and reading back what landed in DuckDB."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pytest

from stripe_source.catalog import CATALOG
from stripe_source.cli.commands import main

# Our table name -> the emulator's resource name (Stripe's URL words).
EMULATOR_RESOURCE = {entry.table: entry.table for entry in CATALOG if not entry.singleton}
EMULATOR_RESOURCE["invoice_items"] = "invoiceitems"


def run_pipeline(emu, monkeypatch: pytest.MonkeyPatch, db: Path, *args: str, key: str | None = None) -> int:
    """`stripe-pipeline run` against the emulator, the key given the way orchestrators give it."""
    monkeypatch.setenv("STRIPE_API_KEY", key or emu.api_key)
    return main(["run", "--api-base", emu.api_base, "--duckdb-path", str(db), *args])


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(sql).fetchall()


def ids(db: Path, table: str, dataset: str = "stripe") -> list[str]:
    return [r[0] for r in rows(db, f"SELECT id FROM {dataset}.{table}")]


def tables(db: Path, dataset: str = "stripe") -> set[str]:
    found = rows(db, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{dataset}'")
    return {r[0] for r in found}


def assert_no_duplicates(values: list[str]) -> None:
    duplicated = [v for v, n in Counter(values).items() if n > 1]
    assert not duplicated, f"duplicated ids: {duplicated[:5]}"


def assert_equals_emulator(emu, db: Path) -> None:
    """Every table holds exactly the emulator's ids, once each (the events table, an append-only
    log, also keeps events Stripe no longer holds)."""
    for entry in CATALOG:
        if entry.singleton:
            continue
        got = ids(db, entry.table)
        assert_no_duplicates(got)
        expected = {o["id"] for o in emu.objects(EMULATOR_RESOURCE[entry.table])}
        if entry.table == "events":
            assert expected <= set(got), entry.table
        else:
            assert set(got) == expected, entry.table
