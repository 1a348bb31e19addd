"""One resource per listed Stripe object: each account's read of it planned (`plan.py`) and carried
out, the rows of all of them batched for dlt under one set of hints."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dlt

from . import connect
from .catalog import BY_TABLE, StripeObject, sub_list_of
from .catch_up import CatchUp, CaughtUp
from .cursors import cursors_of, save_cursors
from .items import TableBatches, plan_for, realign_tables
from .pages import PageJob, TableRows
from .plan import ResourcePlan, plan_resource
from .run import AccountScope, Extraction
from .shaping import tombstone_rows

if TYPE_CHECKING:
    from .accounts import FanOut

logger = logging.getLogger(__name__)


def table_hints(entry: StripeObject, disposition: str) -> Any:
    """dlt hints of one table: key, disposition, merge rules, timestamp columns, hard deletes."""
    columns: dict[str, dict[str, Any]] = {name: {"data_type": "timestamp"} for name in entry.timestamps}
    columns["stripe_account_id"] = {"data_type": "text"}
    columns["metadata"] = {"data_type": "json"}  # free-form keys: one column, not one per key
    columns.update({name: {"data_type": "json"} for name in entry.json})
    merge_key = None
    write: Any = disposition
    if entry.table == "events":
        columns["data"] = {"data_type": "json"}  # any object type: as Stripe sent it, not flattened
    if entry.table == "events" or entry.history:
        write = {"disposition": "merge", "strategy": "insert-only"}  # an append-only log
    elif disposition == "merge":
        write = {"disposition": "merge", "strategy": "delete-insert"}
        columns["deleted"] = {"data_type": "bool", "hard_delete": True}
        if entry.parent:
            # Re-reading a parent replaces all of its items (draft line ids change on finalize).
            merge_key = sub_list_of(entry).parent_column
    return dlt.mark.make_hints(table_name=entry.table, primary_key="id", merge_key=merge_key, write_disposition=write,
                               columns=columns)


class AccountRead:
    """What one resource reads of one account this run: planned from the account's cursors, read,
    and the cursors moved once the read is complete. Yields rows per table; `ResourceRun` turns
    them into dlt items."""

    def __init__(self, scope: AccountScope, entry: StripeObject, tables: frozenset[str], state: dict) -> None:
        self.scope = scope
        self.run = scope.run
        self.entry = entry
        self.tables = tables
        self.state = state  # the resource's dlt state, shared by every account's read
        self.seen: set[str] = set()  # ids of the listed objects (for a sweep)

    @property
    def account(self) -> str:
        return self.scope.account

    def rows(self) -> Iterator[TableRows]:
        if self.entry.connected_events:  # the platform's list of its connected accounts
            yield from connect.rows(self)
            return
        if self.entry.singleton:
            yield from self._singleton()
            return
        run, entry = self.run, self.entry
        with run.state_lock:
            cursors = cursors_of(self.state, self.account, self.tables, self.scope.legacy_account())
            known = set(self.state.get("known_fields", ()))
        plan = plan_resource(entry, cursors, run.bounds, run.destination().holds_rows(self.tables, self.account))
        if plan.gap:
            logger.warning("%s%s: the last sync is older than the 30 days Stripe keeps events; reading all %s "
                           "again so no update or delete is missed", self._of_account(), entry.table, entry.table)
        job = PageJob(entry.table, self.account, wanted=self.tables, created_field=entry.created_field,
                      merging=plan.disposition == "merge")
        caught_up = CaughtUp()
        if plan.changes_since is not None:
            caught_up = yield from CatchUp(self.scope, entry, self.tables, job, known).rows(plan)
        if plan.events_since is not None:
            events = self.scope.feed(plan.events_since).events(plan.events_since)
            if events:
                yield from run.digester.digest_objects(events, job).tables.values()
        elif caught_up.list_new:
            yield from self._listed(plan, replace(job, skip_ids=caught_up.read), known)
        if plan.sweep:
            yield from self._sweep(plan)
        if run.bounds.stateful:
            self._save_cursors(known)

    def _singleton(self) -> Iterator[TableRows]:
        """The account object or its balance: one object, read whole every run."""
        scope, entry = self.scope, self.entry
        given = scope.account_object if entry.path == "/v1/account" else None  # the balance is read
        obj = dict(given or scope.api.get(entry.path or ""), stripe_account_id=self.account)
        if entry.history:  # one row per run: when it was read makes its id
            obj.update(id=f"{self.account}:{self.run.bounds.now}", read_at=self.run.bounds.now)
        yield from self._rows({entry.table: [obj]})

    def _listed(self, plan: ResourcePlan, job: PageJob, known: set[str]) -> Iterator[TableRows]:
        """The list read in the plan's window (the fields seen and, for a sweep, the ids found noted)."""
        for digest in self.scope.reader(job).read(self.entry, plan.window):
            rows = digest.tables.get(self.entry.table)
            if rows is not None:
                known.update(rows.first_keys)
                if plan.sweep:
                    self.seen.update(rows.ids())
            yield from digest.tables.values()

    def _save_cursors(self, known: set[str]) -> None:
        """Once the read is complete: where the next run starts, and the fields the list has shown."""
        events_cursor = self.run.bounds.now if self.entry.follows_events else None
        with self.run.state_lock:
            save_cursors(self.state, self.account, self.tables, self.run.bounds.list_end, events_cursor,
                         self.entry.tables, self.scope.legacy_account())
            self.state["known_fields"] = sorted((known | set(self.state.get("known_fields", ())))
                                                - {"stripe_account_id"})

    def _of_account(self) -> str:
        """A log line's prefix naming the account, when the run reads others than the key's own."""
        return f"{self.account}: " if self.account != self.run.owner else ""

    def _sweep(self, plan: ResourcePlan) -> Iterator[TableRows]:
        """Tombstones for the account's rows in the window that the read no longer found; after a whole
        read, also for sub-list rows whose parent it no longer found (a parent swept by an earlier run that
        read it without its sub-list keeps them otherwise)."""
        entry, window, destination = self.entry, plan.window, self.run.destination()
        whole = window.start is None and self.run.bounds.stateful
        swept: set[str] = set()
        if entry.table in self.tables:
            found = destination.ids(entry.table, self.account, "id",
                                    entry.created_field if entry.created_filter else None, window.start,
                                    None if whole else window.end)
            if found is None:
                self.cannot_sweep()
                return
            swept = found - self.seen
            yield from self._rows(tombstone_rows(entry, sorted(swept), self.account, self.tables))
        if not whole:
            return
        for sub in entry.sub_lists:
            if sub.table not in self.tables:
                continue
            parents = destination.ids(sub.table, self.account, sub.parent_column)
            if parents is None:
                self.cannot_sweep()
                return
            orphaned = sorted(parents - self.seen - swept)
            yield from self._rows(tombstone_rows(entry, orphaned, self.account, frozenset({sub.table})))

    def cannot_sweep(self) -> None:
        logger.warning("%s%s: the destination cannot be asked which rows it holds: rows of objects deleted at "
                       "Stripe since the last run may remain", self._of_account(), self.entry.table)

    def _rows(self, tables: dict[str, list[dict]]) -> Iterator[TableRows]:
        for table, rows in tables.items():
            if rows:
                yield self.run.digester.table_rows(table, rows)


class ResourceRun:
    """One resource's run: its tables' hints and batches, fed by the reads of its accounts (one, or
    each account of a platform)."""

    def __init__(self, run: Extraction, entry: StripeObject, tables: frozenset[str]) -> None:
        self.run = run
        self.entry = entry
        self.tables = tables
        self.hints: dict[str, Any] = {}
        self.batches = TableBatches(run.tables, entry.table)

    def items(self, scopes: Sequence[AccountScope], fan_out: FanOut | None = None) -> Iterator[Any]:
        """dlt items of every scope's read. Without `fan_out` the scopes are read one after another and
        a failure is the run's; with it, many at once, and a failure is the failing account's."""
        run, entry = self.run, self.entry
        destination = run.destination()
        # One disposition for the resource's tables: a table appended to by one account's first load and
        # merged into by another's later run would be both at once. Merging a first load is only slower.
        holds_rows = any(destination.holds_rows(self.tables, scope.account) for scope in scopes)
        self._set_hints("merge" if holds_rows else "append", dlt.current.resource())
        state = dlt.current.resource_state(entry.table)
        reads = [AccountRead(scope, entry, self.tables, state) for scope in scopes]
        for batch in _in_turns(entry, reads, run.owner):
            if fan_out is None:
                rows_of_reads: Iterator[TableRows] = (rows for read in batch for rows in read.rows())
            else:
                rows_of_reads = fan_out.rows(entry.table, batch)
            for rows in rows_of_reads:
                yield from self.batches.add(rows, self.hints[rows.table])
        yield from self.batches.flush()
        if run.arrow:
            yield from realign_tables(run.tables, [t for t in entry.tables if t in self.batches.filled], self.hints,
                                      self.batches.written)

    def _set_hints(self, disposition: str, resource: Any) -> None:
        # The resource's own disposition too: dlt starts every table it fills from it, nested
        # tables included (whose disposition must follow their root's).
        resource.apply_hints(write_disposition=table_hints(self.entry, disposition)["write_disposition"])
        for table in self.entry.tables:
            self.hints[table] = table_hints(BY_TABLE[table], disposition)
            if self.run.arrow:
                self.run.plans[table] = plan_for(table, self.hints[table])


def _in_turns(entry: StripeObject, reads: list[AccountRead], owner: str) -> list[list[AccountRead]]:
    """The reads in one turn; the platform's list of its connected accounts after theirs (which note
    what their events announce for it)."""
    if not entry.connected_events:
        return [reads]
    return [[r for r in reads if r.account != owner], [r for r in reads if r.account == owner]]


def read(run: Extraction, entry: StripeObject, tables: frozenset[str], scopes: Sequence[AccountScope],
         fan_out: FanOut | None = None) -> Iterator[Any]:
    """The resource's generator: one `ResourceRun` over the run's accounts, inside the run's lifecycle."""
    with run.lifecycle.running():
        yield from ResourceRun(run, entry, tables).items(scopes, fan_out)
