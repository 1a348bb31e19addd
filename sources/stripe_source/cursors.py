"""Where cursors live: dlt's source and resource state, stored with the data in the destination.

Cursors are kept per account (a connected account's run never moves the platform's) and per
table (loading invoices alone leaves invoice lines' cursor where it was, so a later run that
includes them still catches them up). State written before that held one cursor pair per resource,
for the account that wrote it: it is read as that account's and converted when next saved.
"""

from __future__ import annotations

from collections.abc import Iterable

from .plan import Cursors


def note_account(source_state: dict, account: str, owner: str | None = None) -> str | None:
    """Record that `account` loads into this dataset; returns the account whose cursors the
    state's older, one-pair form holds (pinned by the first run that keeps them per account:
    `account_id` is overwritten by every run, and resources convert their state only when they run).
    `owner`: the account the credentials belong to (a platform reading its connected accounts)."""
    legacy = source_state.setdefault("legacy_account", source_state.get("account_id"))
    if account:
        source_state["accounts"] = sorted({*source_state.get("accounts", ()), account})
        source_state["account_id"] = owner or account  # lets a later failure say whom to re-authenticate
    return legacy


def cursors_of(state: dict, account: str, tables: Iterable[str], legacy_account: str | None = None) -> Cursors:
    """Where the last runs left `tables` for `account`: the oldest of the tables' cursors; none if
    any of them was never loaded for this account."""
    per_account = state.get("cursors")
    if per_account is None:  # the older, one-pair form
        if legacy_account is not None and legacy_account != account:
            return Cursors()
        return Cursors(state.get("created_cursor"), state.get("events_cursor"))
    per_table = per_account.get(account, {})
    found = [per_table.get(table) for table in tables]
    if not found or any(cursor is None for cursor in found):
        return Cursors()
    events = [cursor.get("events") for cursor in found]
    return Cursors(min(cursor["created"] for cursor in found), None if None in events else min(events))


def save_cursors(state: dict, account: str, tables: Iterable[str], created: int, events: int | None,
                 all_tables: Iterable[str], legacy_account: str | None = None) -> None:
    """Record where this run left `tables` for `account` (converting the older form, which held the
    cursor of every table of `legacy_account`)."""
    if "cursors" not in state:
        old_created, old_events = state.pop("created_cursor", None), state.pop("events_cursor", None)
        state["cursors"] = {}
        if old_created is not None:
            state["cursors"][legacy_account if legacy_account is not None else account] = {
                table: {"created": old_created, "events": old_events} for table in all_tables
            }
    per_table = state["cursors"].setdefault(account, {})
    for table in tables:
        per_table[table] = {"created": created, "events": events}


def loaded_without_account(source_state: dict) -> bool:
    """Whether earlier runs loaded an account whose id they did not know (cursors kept under ""): a
    restricted key without `rak_account_read`, before its id was read from Stripe's refusal."""
    return any("" in (state.get("cursors") or {}) for state in source_state.get("resources", {}).values())
