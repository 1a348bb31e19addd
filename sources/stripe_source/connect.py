"""A Connect platform's connected accounts as tables: `accounts`, their `persons` and `external_accounts`.

The platform's own key reads them (`/v1/accounts`, `/v1/accounts/{id}/persons`,
`/v1/accounts/{id}/external_accounts`), so their rows are the platform's (`stripe_account_id`), read
once a run, never as a connected account. Stripe records their changes (`account.updated`,
`account.external_account.*`, `person.*`) in each connected account's own events, not the platform's:

- The list of accounts (100 a page) is read whole every run, so each account's row, and the first 10
  external accounts it embeds, are always current; accounts no longer listed are removed with their
  persons and external accounts. A run of all accounts reuses the list it made to find them.
- An account's persons (one request each) and its external accounts past the 10 embedded are read on
  the first load and for an account new to the tables; after that, for the accounts whose own events
  announce a change of them. A run that reads the connected accounts too reads their events anyway
  (for their own tables): the connected accounts' part of this resource notes what those events
  announce (`Extraction.announce`) before the platform's part reads. A run of the platform alone
  cannot see them, and reads those lists again for every account.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import orjson

from .account_read import AccountRead
from .accounts import list_connected_accounts
from .catalog import StripeObject
from .cursors import cursors_of, save_cursors
from .pages import PageJob, TableRows
from .plan import is_gap
from .shaping import tombstone_rows


class ConnectedAccountsRead(AccountRead):
    """One account's part of the resource: the platform's reads its lists; a connected account's notes
    what its events announce (the platform's part runs after every connected account's)."""

    def rows(self) -> Iterator[TableRows]:
        if self.account != self.run.owner:
            note_announced(self)
            return
        yield from _platform_rows(self)


def events_since(read: AccountRead) -> int | None:
    """Since when the platform's lists need the changes the accounts' events announce: None when they
    are read whole (a first load, `full_refresh`, a backfill window, a cursor older than Stripe's events)."""
    bounds = read.run.bounds
    if bounds.full_refresh or not bounds.stateful:
        return None
    with read.run.state_lock:
        cursors = cursors_of(read.state, read.run.owner, read.tables, read.scope.legacy_account())
    if cursors.created is None or cursors.events is None or is_gap(cursors.events, bounds):
        return None
    return cursors.events - bounds.lookback


def announced_tables(entry: StripeObject, events: list[dict]) -> frozenset[str]:
    """The tables whose rows of the account the events say changed."""
    return frozenset(table for event in events for prefix, table in entry.connected_events
                     if event["type"].startswith(prefix))


def note_announced(read: AccountRead) -> None:
    """A connected account read along with its platform: what its events (the feed its own tables read
    anyway) announce since the platform's lists were last read."""
    if read.account not in read.run.connected:
        return
    since = events_since(read)
    if since is not None:
        read.run.announce(read.account, announced_tables(read.entry, read.scope.feed(since).events(since)))


def _platform_rows(read: AccountRead) -> Iterator[TableRows]:
    scope, run, entry, tables = read.scope, read.run, read.entry, read.tables
    bounds, account = run.bounds, read.account
    listed = run.listed_accounts if run.listed_accounts is not None else list_connected_accounts(scope.api)
    # copies: shaping writes into the objects, and the run's list is shared
    accounts = [a for a in orjson.loads(orjson.dumps(listed))
                if (bounds.start is None or (a.get("created") or 0) >= bounds.start)
                and (bounds.end is None or (a.get("created") or 0) < bounds.end)]
    since = events_since(read)
    destination = run.destination()
    merging = destination.holds_rows(tables, account)
    known = _accounts_held(read) if since is not None else set()
    groups: dict[frozenset[str], list[dict]] = {}
    for obj in accounts:
        groups.setdefault(_tables_to_read(read, obj, since, known), []).append(obj)
    job = PageJob(entry.table, account, wanted=tables, merging=merging)
    for wanted, objects in groups.items():
        if not wanted:  # nothing of these accounts to read this run (their lists alone were selected)
            continue
        for digest in scope.reader(replace(job, wanted=wanted)).complete(entry, objects):
            yield from digest.tables.values()
    if merging and bounds.stateful:
        yield from _removed(read, {a["id"] for a in accounts})
    if bounds.stateful:
        with run.state_lock:
            save_cursors(read.state, account, tables, bounds.list_end, bounds.now, entry.tables,
                         scope.legacy_account())


def _tables_to_read(read: AccountRead, account: dict, since: int | None, known: set[str] | None) -> frozenset[str]:
    """Which of the wanted tables to fill for one account: its own row always; its persons and external
    accounts when they must be read whole (a first load, an account new to the tables, a change its
    events announce or, without its events, every run). External accounts all embedded cost nothing."""
    entry, tables = read.entry, read.tables
    announced = read.run.announced(account["id"])
    whole = since is None or known is None or account["id"] not in known or announced is None
    wanted = {entry.table} & tables
    for sub in entry.sub_lists:
        if sub.table not in tables:
            continue
        embedded = account.get(sub.field) if sub.field else None
        complete = embedded is not None and not embedded.get("has_more")
        if whole or complete or sub.table in (announced or ()):
            wanted.add(sub.table)
    return frozenset(wanted)


def _accounts_held(read: AccountRead) -> set[str] | None:
    """The accounts the platform's tables hold (None: the destination cannot say)."""
    destination, entry, account = read.run.destination(), read.entry, read.account
    if entry.table in read.tables:
        return destination.ids(entry.table, account)
    held: set[str] = set()
    for sub in entry.sub_lists:
        if sub.table in read.tables:
            found = destination.ids(sub.table, account, sub.parent_column)
            if found is None:
                return None
            held |= found
    return held


def _removed(read: AccountRead, listed: set[str]) -> Iterator[TableRows]:
    """Tombstones for accounts no longer connected (they leave `/v1/accounts`), with their persons and
    external accounts; within `start_date`/`end_date` when given."""
    held = _accounts_held(read)
    if held is None:
        read.cannot_sweep()
        return
    if read.entry.table in read.tables and (read.run.bounds.start is not None or read.run.bounds.end is not None):
        held = read.run.destination().ids(read.entry.table, read.account, "id", "created", read.run.bounds.start,
                                          read.run.bounds.end) or set()
    for table, rows_ in tombstone_rows(read.entry, sorted(held - listed), read.account, read.tables).items():
        if rows_:
            yield read.run.digester.table_rows(table, rows_)
