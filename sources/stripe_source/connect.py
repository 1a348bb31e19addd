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
from .plan import changes_since
from .shaping import has_sub_list, tombstone_rows


class ConnectedAccountsRead(AccountRead):
    """One account's part of the resource: the platform's reads its lists; a connected account's notes
    what its events announce (the platform's part runs after every connected account's)."""

    def rows(self) -> Iterator[TableRows]:
        if self.account != self.run.owner:
            self._note_announced()
            return
        yield from self._platform_rows()

    def _changes_since(self) -> int | None:
        with self.run.state_lock:
            cursors = cursors_of(self.state, self.run.owner, self.tables, self.scope.legacy_account())
        return changes_since(cursors, self.run.bounds)

    def _note_announced(self) -> None:
        """A connected account read along with its platform: what its events (the feed its own tables read
        anyway) announce since the platform's lists were last read."""
        if self.account not in self.run.connected:
            return
        since = self._changes_since()
        if since is not None:
            types = self.scope.feed(since).types(since)
            self.run.announce(self.account, announced_tables(self.entry, types))

    def _platform_rows(self) -> Iterator[TableRows]:
        scope, run, entry, tables = self.scope, self.run, self.entry, self.tables
        bounds = run.bounds
        listed = run.listed_accounts if run.listed_accounts is not None else list_connected_accounts(scope.api)
        # copies: shaping writes into the objects, and the run's list is shared
        accounts = orjson.loads(orjson.dumps([a for a in listed
                                              if (bounds.start is None or (a.get("created") or 0) >= bounds.start)
                                              and (bounds.end is None or (a.get("created") or 0) < bounds.end)]))
        since = self._changes_since()
        merging = run.destination().holds_rows(tables, self.account)
        # what the tables held before this run: asked once, for what to read and for what to remove
        held = self._accounts_held() if since is not None or merging else set()
        groups: dict[frozenset[str], list[dict]] = {}
        for obj in accounts:
            groups.setdefault(self._tables_to_read(obj, since, held), []).append(obj)
        job = PageJob(entry.table, self.account, wanted=tables, merging=merging)
        for wanted, objects in groups.items():
            if not wanted:  # nothing of these accounts to read this run (their lists alone were selected)
                continue
            for digest in scope.reader(replace(job, wanted=wanted)).complete(entry, objects):
                yield from digest.tables.values()
        if merging and bounds.stateful and held is None:
            self.cannot_sweep()
        elif merging and bounds.stateful:
            # Accounts no longer connected leave `/v1/accounts`: their rows go, with their persons and external
            # accounts. Against the whole list, not the window's part of it: one outside the window is connected.
            gone = sorted(held - {a["id"] for a in listed})
            yield from run.digester.made_rows(tombstone_rows(entry, gone, self.account, tables))
        if bounds.stateful:
            with run.state_lock:
                save_cursors(self.state, self.account, tables, bounds.list_end, bounds.now, entry.tables,
                             scope.legacy_account())

    def _tables_to_read(self, account: dict, since: int | None, known: set[str] | None) -> frozenset[str]:
        """Which of the wanted tables to fill for one account: its own row always; its persons and external
        accounts when Stripe shows them to the platform (an account it controls) and they must be read whole
        (a first load, an account new to the tables, a change its events announce or, without its events,
        every run). External accounts all embedded cost nothing."""
        entry, tables = self.entry, self.tables
        announced = self.run.announced(account["id"])
        whole = since is None or known is None or account["id"] not in known or announced is None
        wanted = {entry.table} & tables
        for sub in entry.sub_lists:
            if sub.table not in tables or not has_sub_list(sub, account):
                continue
            embedded = account.get(sub.field) if sub.field else None
            complete = embedded is not None and not embedded.get("has_more")
            if whole or complete or sub.table in (announced or ()):
                wanted.add(sub.table)
        return frozenset(wanted)

    def _accounts_held(self) -> set[str] | None:
        """The accounts the platform's tables hold (None: the destination cannot say)."""
        destination, entry = self.run.destination(), self.entry
        if entry.table in self.tables:
            return destination.ids(entry.table, self.account)
        held: set[str] = set()
        for sub in entry.sub_lists:
            if sub.table in self.tables:
                found = destination.ids(sub.table, self.account, sub.parent_column)
                if found is None:
                    return None
                held |= found
        return held


def announced_tables(entry: StripeObject, event_types: list[str]) -> frozenset[str]:
    """The tables whose rows of the account events of these types say changed."""
    return frozenset(table for event_type in event_types for prefix, table in entry.connected_events
                     if event_type.startswith(prefix))
