"""Complete loads: every table in DuckDB equals what the emulated Stripe account holds."""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from stripe_source.catalog import CATALOG
from stripe_source.listing import render_markdown
from tests.conftest import isolated_project
from tests.dataset import one_connection
from tests.helpers import (
    EMULATOR_RESOURCE,
    LOADED_BY_DEFAULT,
    assert_no_duplicates,
    expected_objects,
    ids,
    rows,
    run_pipeline,
    tables,
)

# most tests read the full loads of one module-scoped fixture (see conftest: made once)
pytestmark = pytest.mark.shared_load

# A few fields per table that must come through unchanged (beyond the id).
KEY_FIELDS = {
    "charges": ("amount", "currency", "status", "customer", "balance_transaction"),
    "payment_intents": ("amount", "currency", "status"),
    "refunds": ("amount", "charge", "status"),
    "disputes": ("amount", "charge", "status"),
    "balance_transactions": ("amount", "fee", "net", "type"),
    "payouts": ("amount", "status"),
    "transfers": ("amount", "destination"),
    "invoices": ("customer", "status", "total", "amount_paid", "amount_due"),
    "invoice_line_items": ("invoice", "amount", "currency"),
    "invoice_items": ("customer", "amount", "invoice"),
    "credit_notes": ("invoice", "amount"),
    "customers": ("email", "name"),
    "subscriptions": ("customer", "status"),
    "subscription_items": ("subscription", "quantity"),
    "products": ("name", "active"),
    "prices": ("product", "unit_amount", "type"),
    "plans": ("product", "amount", "interval"),
    "coupons": ("percent_off", "duration"),
    "promotion_codes": ("code",),
    "tax_rates": ("percentage", "jurisdiction"),
    "events": ("type",),
}


@pytest.fixture(scope="module")
def full_loads(emulator, tmp_path_factory) -> dict[int, Path]:
    """A full load of the shared world per number of flatten processes, made once: the tests only read them."""
    loads = {}
    for processes in (0, 1):
        root = tmp_path_factory.mktemp(f"full_load_{processes}")
        with pytest.MonkeyPatch.context() as monkeypatch:
            project = isolated_project(root, monkeypatch)
            next(project)
            try:
                monkeypatch.setenv("SOURCES__STRIPE__FLATTEN_PROCESSES", str(processes))
                loads[processes] = root / "warehouse.duckdb"
                assert run_pipeline(emulator, monkeypatch, loads[processes]) == 0
            finally:
                project.close()
    return loads


@pytest.fixture
def full_load(full_loads, request) -> Path:
    # pages flattened in a worker process (the default on 2+ cores; forced so 1-core CI covers it)
    return full_loads[getattr(request, "param", 1)]


@pytest.mark.parametrize("full_load", [0, 1], ids=["in_process", "worker_process"], indirect=True)
def test_every_table_equals_the_emulator(emulator, full_load):
    with one_connection(full_load):
        loaded = tables(full_load)
        for entry in LOADED_BY_DEFAULT:
            expected = {obj["id"]: obj for obj in expected_objects(emulator, entry.table)}
            assert expected, f"the emulator world has no {entry.table}"
            assert entry.table in loaded, f"{entry.table} was not loaded"
            got = ids(full_load, entry.table)
            assert_no_duplicates(got)
            assert set(got) == set(expected), f"{entry.table}: ids differ"
            fields = [f for f in KEY_FIELDS.get(entry.table, ()) if any(f in o for o in expected.values())]
            if not fields:
                continue
            present = {r[0] for r in rows(full_load, f"DESCRIBE stripe.{entry.table}")}
            fields = [f for f in fields if f in present]
            got_rows = rows(full_load, f"SELECT id, {', '.join(fields)} FROM stripe.{entry.table}")
            for row in got_rows:
                obj = expected[row[0]]
                for name, value in zip(fields, row[1:], strict=True):
                    want = obj.get(name)
                    if isinstance(want, dict):  # an expanded object would be loaded as its id
                        want = want.get("id")
                    assert value == want, f"{entry.table}.{name} of {row[0]}: {value!r} != {want!r}"


def test_every_row_carries_livemode_and_account(emulator, full_load):
    with one_connection(full_load):
        for entry in CATALOG:
            if entry.table in ("events",) or not entry.default:
                continue
            account_ids = rows(full_load, f"SELECT DISTINCT stripe_account_id FROM stripe.{entry.table}")
            assert account_ids == [(emulator.account_id,)], entry.table
        livemode = rows(full_load, "SELECT DISTINCT livemode FROM stripe.charges")
        assert livemode == [(False,)]
        account = rows(full_load, "SELECT id FROM stripe.account")
        assert account == [(emulator.account_id,)]


def test_dlt_warnings_about_our_json_columns_are_quiet_only_while_the_run_lasts(full_load):
    # the filter that drops dlt's per-item warning (JSON carried as text) must not outlive the run:
    # another source in the same process may have resources of the same names
    import logging

    from stripe_source.dlt_fixes import JsonAsTextIsByDesign

    assert not [f for f in logging.getLogger("dlt").filters if isinstance(f, JsonAsTextIsByDesign)]


def test_all_invoice_lines_not_just_the_embedded_ten(emulator, full_load):
    expected = Counter(line["invoice"] for line in emulator.objects("invoice_line_items"))
    assert max(expected.values()) > 10, "the world must have invoices with more than 10 lines"
    got = dict(rows(full_load, "SELECT invoice, count(*) FROM stripe.invoice_line_items GROUP BY invoice"))
    assert got == dict(expected)
    # and lines are not duplicated as a dlt child table of invoices
    assert not any(t.startswith("invoices__lines") for t in tables(full_load))


def test_credit_note_lines_and_subscription_items_complete(emulator, full_load):
    for table, parent_column in (("credit_note_line_items", "credit_note"), ("subscription_items", "subscription")):
        got = set(ids(full_load, table))
        assert got == {o["id"] for o in emulator.objects(EMULATOR_RESOURCE[table])}
        orphans = rows(full_load, f"SELECT count(*) FROM stripe.{table} WHERE {parent_column} IS NULL")
        assert orphans == [(0,)]


def test_canceled_subscriptions_are_loaded(emulator, full_load):
    statuses = dict(rows(full_load, "SELECT status, count(*) FROM stripe.subscriptions GROUP BY status"))
    expected = Counter(s["status"] for s in emulator.objects("subscriptions"))
    assert statuses.get("canceled", 0) > 0
    assert statuses == dict(expected)


def test_timestamps_are_typed_and_money_stays_in_minor_units(full_load):
    columns = dict(rows(full_load, "SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_schema = 'stripe' AND table_name = 'invoices'"))
    assert columns["created"] == "TIMESTAMP WITH TIME ZONE"
    assert columns["period_start"] == "TIMESTAMP WITH TIME ZONE"
    assert columns["amount_due"] == "BIGINT"
    assert columns["currency"] == "VARCHAR"
    line_columns = dict(rows(full_load, "SELECT column_name, data_type FROM information_schema.columns "
                                        "WHERE table_schema = 'stripe' AND table_name = 'invoice_line_items'"))
    assert line_columns["period__start"] == "TIMESTAMP WITH TIME ZONE"


def test_start_and_end_date_bound_created_exactly(emulator, monkeypatch, tmp_path):
    charges = emulator.objects("charges")
    created = sorted(c["created"] for c in charges)
    start, end = created[len(created) // 4], created[len(created) // 2]
    db = tmp_path / "window.duckdb"
    code = run_pipeline(emulator, monkeypatch, db, "--resources", "charges,invoices,invoice_line_items",
                        "--start-date", str(start), "--end-date", _iso(end))
    assert code == 0
    expected = {c["id"] for c in charges if start <= c["created"] < end}
    assert set(ids(db, "charges")) == expected
    invoices = {i["id"] for i in emulator.objects("invoices") if start <= i["created"] < end}
    assert set(ids(db, "invoices")) == invoices
    assert tables(db) & {entry.table for entry in CATALOG} == {"charges", "invoices", "invoice_line_items"}


def test_the_same_full_load_twice_leaves_the_same_rows(emulator, monkeypatch, tmp_path):
    db = tmp_path / "twice.duckdb"
    args = ("--resources", "invoices,invoice_line_items,customers,events", "--full-refresh")
    assert run_pipeline(emulator, monkeypatch, db, *args) == 0
    first = {t: sorted(ids(db, t)) for t in ("invoices", "invoice_line_items", "customers", "events")}
    assert run_pipeline(emulator, monkeypatch, db, *args) == 0
    second = {t: sorted(ids(db, t)) for t in first}
    assert first == second
    for values in second.values():
        assert_no_duplicates(values)


def test_a_connected_account_lands_with_its_account_id(emulator, monkeypatch, tmp_path):
    account = emulator.connected_account_ids[0]
    monkeypatch.setenv("SOURCES__STRIPE__CREDENTIALS__STRIPE_ACCOUNT", account)
    db = tmp_path / "connected.duckdb"
    assert run_pipeline(emulator, monkeypatch, db, "--resources", "charges,customers") == 0
    for table in ("charges", "customers"):
        expected = {o["id"] for o in emulator.objects(table, account=account)}
        assert set(ids(db, table)) == expected
        assert expected.isdisjoint(o["id"] for o in emulator.objects(table))
        assert rows(db, f"SELECT DISTINCT stripe_account_id FROM stripe.{table}") == [(account,)]



def test_a_restricted_key_that_may_not_read_the_account_still_names_it_on_every_row(emulator, monkeypatch, tmp_path):
    # Without rak_account_read, /v1/account is refused; Stripe's refusal names the account
    # ("... on account 'acct_...'"), and rows of two accounts in one dataset stay apart only by it.
    key = emulator.add_key(kind="restricted", permissions={"charges": "read", "events": "read"})
    db = tmp_path / "restricted.duckdb"
    assert run_pipeline(emulator, monkeypatch, db, "--resources", "charges", key=key) == 0
    assert set(ids(db, "charges")) == {o["id"] for o in emulator.objects("charges")}
    assert rows(db, "SELECT DISTINCT stripe_account_id FROM stripe.charges") == [(emulator.account_id,)]


def test_a_dataset_loaded_before_the_account_was_named_goes_on_without_loading_it_twice(fresh_emulator, monkeypatch,
                                                                                        tmp_path, caplog):
    # Versions before the account was read from the refusal loaded such a key's rows with an empty
    # stripe_account_id and kept its cursors under "": naming the account now would read everything
    # again as a new account's, beside those rows (every row twice).
    validate = importlib.import_module("stripe_source.connection.validate")  # the module, not its function
    emu = fresh_emulator
    key = emu.add_key(kind="restricted", permissions={"charges": "read", "customers": "read", "events": "read"})
    db = tmp_path / "unnamed.duckdb"
    args = ("--resources", "charges,customers")
    with monkeypatch.context() as before:
        before.setattr(validate, "_account_in_message", lambda exc: None)  # as those versions read it
        assert run_pipeline(emu, monkeypatch, db, *args, key=key) == 0
    assert rows(db, "SELECT DISTINCT stripe_account_id FROM stripe.charges") == [("",)]
    customers = emu.objects("customers")
    emu.advance(seconds=3600)
    emu.update("customers", customers[0]["id"], email="moved@example.com")
    emu.create("charges", customer=customers[-1]["id"], amount=4200, currency="usd")
    with caplog.at_level("WARNING"):
        assert run_pipeline(emu, monkeypatch, db, *args, key=key) == 0
    assert "loaded before its account was known" in caplog.text
    for table in ("charges", "customers"):
        loaded = ids(db, table)
        assert_no_duplicates(loaded)
        assert set(loaded) == {o["id"] for o in emu.objects(table)}
    assert rows(db, f"SELECT email FROM stripe.customers WHERE id = '{customers[0]['id']}'") == [("moved@example.com",)]
    assert rows(db, "SELECT DISTINCT stripe_account_id FROM stripe.customers") == [("",)]



def test_fields_stripe_returns_only_when_asked_land(emulator, monkeypatch, tmp_path):
    # a coupon's products and the amounts of a price or coupon in other currencies are sent only when
    # the list asks (`expand[]`); a connector that never asks loads none of them
    db = tmp_path / "expanded.duckdb"
    assert run_pipeline(emulator, monkeypatch, db, "--resources", "prices,coupons") == 0
    store = emulator.store()
    for table in ("prices", "coupons"):
        loaded = dict(rows(db, f"SELECT id, currency_options FROM stripe.{table}"))
        expected = {o["id"]: store.extra(o["id"], "currency_options") for o in emulator.objects(table)}
        assert {i: json.loads(v) if v is not None else None for i, v in loaded.items()} == expected
    assert any(expected.values())
    applies_to = rows(db, "SELECT c.id, p.value FROM stripe.coupons c "
                          "JOIN stripe.coupons__applies_to__products p ON p._dlt_parent_id = c._dlt_id")
    expected_products = {(c["id"], product) for c in emulator.objects("coupons")
                         for product in (store.extra(c["id"], "applies_to") or {}).get("products", [])}
    assert expected_products and sorted(applies_to) == sorted(expected_products)



def test_every_request_pins_the_api_version_whatever_the_accounts_default(monkeypatch, tmp_path):
    # Stripe answers a request without `Stripe-Version` in the account's default version, for many accounts
    # years older than ours (2022: an invoice's subscription at the top, not under `parent`)
    from stripe_emulator import Emulator
    from stripe_emulator.versions import V2022

    with Emulator(seed=9, scale=300, default_api_version=V2022) as emu:
        db = tmp_path / "pinned.duckdb"
        assert run_pipeline(emu, monkeypatch, db, "--resources", "invoices") == 0
        loaded = dict(rows(db, "SELECT id, parent__subscription_details__subscription FROM stripe.invoices"))
        expected = {i["id"]: ((i.get("parent") or {}).get("subscription_details") or {}).get("subscription")
                    for i in emu.objects("invoices")}
        assert loaded == expected and any(expected.values())

# Fields Stripe returns only when expanded that the catalog does not ask for, and why.
NOT_EXPANDED = {
    ("customer", "sources"): "the legacy Sources API; a customer's cards are in payment_methods",
    ("customer", "subscriptions"): "the subscriptions table",
    ("customer", "cash_balance"): "events carry none: every changed customer would be fetched again",
    ("customer", "invoice_credit_balance"): "events carry none: every changed customer would be fetched again",
    ("customer", "tax"): "events carry none: every changed customer would be fetched again",
    ("invoice", "payments"): "the invoice_payments table",
    ("charge", "refunds"): "the refunds table",
    ("item", "discounts"): "a line item's own expansion inside its parent's sub-list: not asked yet",
    ("item", "taxes"): "a line item's own expansion inside its parent's sub-list: not asked yet",
}


def test_every_field_stripe_returns_only_when_asked_is_asked_for_or_left_out_on_purpose():
    from stripe_emulator.objects import OBJECTS

    asked: dict[str, set[str]] = {}
    for entry in CATALOG:
        asked.setdefault(entry.object, set()).update(
            entry.expand, (sub.field for sub in entry.sub_lists if sub.expand and sub.field))
    includable = {(emulated.object, name) for emulated in OBJECTS if emulated.object in asked
                  for name in emulated.includable}
    never_asked = {pair for pair in includable if pair[1] not in asked[pair[0]]}
    assert never_asked == set(NOT_EXPANDED), "ask for it in catalog.py (`expand`) or say why not in NOT_EXPANDED"

@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--start-date", "2024-02-01", "--end-date", "2024-01-01"), "end_date must be after start_date"),
        (("--start-date", "last tuesday"), "start_date 'last tuesday' is not a date"),
        (("--resources", "charges,invoicez"), "Unknown Stripe resource(s): invoicez"),
        (("--duckdb-memory-limit", "lots"), "--duckdb-memory-limit 'lots' is not a size"),
        (("--lookback-seconds", "-600"), "lookback_seconds must be a whole number of at least 0"),
        (("--workers", "0"), "workers must be a whole number of at least 1"),
        (("--max-rps", "-1"), "max_requests_per_second must be a number above 0"),
        (("--max-rps-per-endpoint", "0"), "max_requests_per_endpoint must be a number above 0"),
        (("--flatten-processes", "-1"), "flatten_processes must be a whole number of at least 0"),
        (("--destination", "nosuchwarehouse"), "unknown destination 'nosuchwarehouse'"),
        (("--destination", "postgres"), "`PostgresClientConfiguration`: `credentials`: set it in .dlt/secrets.toml"),
    ],
)
def test_bad_input_fails_clearly_before_any_request(emulator, monkeypatch, tmp_path, capsys, args, message):
    emulator.reset_stats()
    db = tmp_path / "bad.duckdb"
    assert run_pipeline(emulator, monkeypatch, db, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert emulator.stats()["requests_total"] == 0
    assert not db.exists()


def test_a_start_date_in_the_future_is_refused_and_moves_no_cursor(emulator, monkeypatch, tmp_path, capsys):
    # a typo (2205 for 2025) would load nothing and, as a cursor, skip every object in later runs
    db = tmp_path / "future.duckdb"
    assert run_pipeline(emulator, monkeypatch, db, "--resources", "customers", "--start-date", "2205-01-01") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "start_date 2205-01-01T00:00:00+00:00 is in the future" in err[0]
    assert run_pipeline(emulator, monkeypatch, db, "--resources", "customers") == 0
    assert set(ids(db, "customers")) == {c["id"] for c in emulator.objects("customers")}


@pytest.mark.parametrize(("value", "expected"), [
    ("2024", "2024-01-01"), ("20240115", "2024-01-15"), ("2024-01-15T12:00:00Z", "2024-01-15T12:00:00"),
    ("1705320000", "2024-01-15T12:00:00"), (1705320000, "2024-01-15T12:00:00"),
])
def test_dates_iso_8601_or_unix_seconds(value, expected):
    import datetime as dt

    from stripe_source.options import parse_date

    moment = dt.datetime.fromisoformat(expected).replace(tzinfo=dt.UTC)
    assert parse_date(value, "start_date") == int(moment.timestamp())


def test_a_permission_refused_during_the_run_is_named_without_the_key():
    import stripe

    from stripe_source.cli.commands import user_error

    refused = stripe.PermissionError(
        "The provided key 'rk_test_********************wXyZ' does not have the required permissions for this "
        "endpoint on account 'acct_1'. Having the 'rak_event_read' permission would allow this request to continue."
    )
    try:
        try:
            raise refused
        except stripe.PermissionError as exc:
            raise RuntimeError("In processing pipe charges: extraction failed") from exc
    except RuntimeError as wrapped:
        message, code = user_error(wrapped)
    assert code == 4 and "(needs 'rak_event_read')" in message
    assert "wXyZ" not in message and "rk_test" not in message


def test_missing_key_says_how_to_connect(emulator, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    from stripe_source.cli.commands import main

    assert main(["run", "--api-base", emulator.api_base, "--duckdb-path", str(tmp_path / "x.duckdb")]) == 2
    assert "stripe-pipeline connect" in capsys.readouterr().err


def test_readme_documents_every_table_as_the_catalog_says():
    # the README's table is `listing.render_markdown()` verbatim: endpoint, sync, default, permission, cost
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert render_markdown() in readme, "README.md: paste `python -c 'from stripe_source.listing import " \
        "render_markdown; print(render_markdown())'` over its table of tables"
    documented = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", readme, flags=re.M)
    assert [table for table, _ in documented] == [entry.table for entry in CATALOG]


def _iso(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
