"""What `resources` selects (tables, groups, defaults, everything) and how every table is described."""

from __future__ import annotations

import pytest

from stripe_source.catalog import BY_TABLE, CATALOG, GROUPS
from stripe_source.cli.commands import main
from stripe_source.errors import InvalidInput
from stripe_source.listing import describe, render_text
from stripe_source.options import select_tables
from stripe_source.selection import costly, left_out


def tables_of(selection: dict[str, frozenset[str]]) -> set[str]:
    return {table for tables in selection.values() for table in tables}


def test_no_resources_selects_every_table_on_by_default():
    assert tables_of(select_tables(None)) == {e.table for e in CATALOG if e.default}
    assert {e.table for e in CATALOG if not e.default} >= {"payment_methods", "setup_attempts"}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_group_selects_its_tables_but_the_costly_fan_outs(group):
    assert tables_of(select_tables(group)) == {t for t in GROUPS[group] if BY_TABLE[t].default or not costly(t)}


def test_issuing_is_off_by_default_and_one_group_away():
    # Stripe refuses Issuing's lists to an account that does not use it
    assert not any(BY_TABLE[t].default for t in GROUPS["issuing"])
    assert tables_of(select_tables("default,issuing")) >= set(GROUPS["issuing"])


def test_all_adds_what_is_off_by_default_and_a_named_table_needs_no_group():
    assert tables_of(select_tables("all")) == set(BY_TABLE)
    assert tables_of(select_tables("default,payment_methods")) == {e.table for e in CATALOG if e.default} | {
        "payment_methods"}
    # a fan-out is read through its parent's list: the parent is read, its table only when asked for
    assert select_tables("payment_methods") == {"customers": frozenset({"payment_methods"})}


def test_what_a_run_leaves_out_by_default_is_named(capsys):
    from stripe_source.cli.commands import print_left_out

    assert set(left_out(select_tables(None), given=False)) == {e.table for e in CATALOG if not e.default}
    assert left_out(select_tables("all")) == []
    assert left_out(select_tables("charges")) == []  # their parents are not read either
    assert left_out(select_tables("customers")) == ["payment_methods", "customer_balance_transactions"]
    print_left_out(None)
    note = capsys.readouterr().out
    assert "payment_methods (1 request per customer)" in note and "issuing_cards (needs Stripe Issuing" in note
    assert "--resources default,setup_attempts,payment_methods" in note


def test_no_group_is_named_like_a_table():
    assert not set(GROUPS) & set(BY_TABLE)


def test_an_unknown_name_lists_tables_and_groups():
    with pytest.raises(InvalidInput) as err:
        select_tables("payments,cards")
    assert "Unknown Stripe resource(s): cards" in str(err.value)
    assert "groups (payments, billing, connect" in str(err.value) and "default, all)" in str(err.value)


def test_every_table_states_its_cost_model():
    for entry in CATALOG:
        info = describe(entry)
        if entry.parent is None:
            assert info.cost in ("1 request per 100", "1 request a run"), entry.table
        elif info.sync.startswith("fan-out"):
            assert info.cost.startswith("1 request per ") and "100" not in info.cost, entry.table
        else:
            assert info.cost.startswith("embedded"), entry.table
        assert info.permission.startswith(entry.permission)


def test_the_tables_command_prints_every_table(capsys):
    assert main(["tables"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == render_text().strip()
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == set(BY_TABLE)
    assert " off " in lines["payment_methods"] and "fan-out per customer" in lines["payment_methods"]
    assert "GET /v1/checkout/sessions" in lines["checkout_sessions"]
