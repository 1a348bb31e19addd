"""One resource per listed Stripe object: each account's read of it planned (`plan.py`) and carried
out, the rows of all of them batched for dlt under one set of hints."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dlt
import stripe

from .catalog import BY_TABLE, StripeObject, sub_list_of
from .changes import ObjectChanges, is_complete
from .client import API_VERSION
from .cursors import cursors_of, save_cursors
from .item_changes import sub_lists_to_read
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
        scope, run, entry = self.scope, self.run, self.entry
        account = scope.account
        legacy = scope.legacy_account()
        if entry.singleton:
            given = scope.account_object if entry.path == "/v1/account" else None  # the balance is read
            obj = dict(given or scope.api.get(entry.path or ""), stripe_account_id=account)
            if entry.history:  # one row per run: when it was read makes its id
                obj.update(id=f"{account}:{run.bounds.now}", read_at=run.bounds.now)
            yield from self._rows({entry.table: [obj]})
            return
        with run.state_lock:
            cursors = cursors_of(self.state, account, self.tables, legacy)
            known = set(self.state.get("known_fields", ()))
        plan = plan_resource(entry, cursors, run.bounds, run.destination().holds_rows(self.tables, account))
        if plan.gap:
            logger.warning("%s%s: the last sync is older than the 30 days Stripe keeps events; reading all %s "
                           "again so no update or delete is missed", self._of_account(), entry.table, entry.table)
        job = PageJob(entry.table, account, wanted=self.tables, created_field=entry.created_field,
                      merging=plan.disposition == "merge")
        skip: frozenset[str] = frozenset()
        list_new = plan.events_since is None
        if plan.changes_since is not None:
            rechecked: set[str] = set()
            for digest in scope.reader(job).read_selections(entry, self._rechecks(plan.changes_since)):
                if (rows := digest.tables.get(entry.table)) is not None:
                    rechecked.update(rows.ids())
                yield from digest.tables.values()
            changes = scope.feed(plan.changes_since).changes_for(entry.table, plan.changes_since)
            if plan.creations_from_events:
                # New objects are among the changes. When their snapshots cannot be trusted (updates
                # Stripe does not announce), the list reads those the rechecks did not just read.
                list_new = not entry.updates_announced and not set(changes.updated) <= rechecked
            if not entry.updates_announced:  # a snapshot may predate unannounced updates
                changes.updated.clear()
            for object_id in rechecked:  # read just now: newer than any event
                changes.updated.pop(object_id, None)
            items = sub_lists_to_read(scope, entry, self.tables, plan.changes_since, changes.ids)
            # a deleted parent stays deleted; a changed one is fetched again when its items changed alone
            stale = (self._embedding_changed(plan.changes_since, changes.updated)
                     | (items.refetch & set(changes.updated)))
            skip = changes.ids | rechecked | stale
            current, vanished = self._current(changes, known, stale)
            if plan.disposition == "merge":  # appending to tables without the account's rows: nothing to delete
                yield from self._rows(tombstone_rows(entry, [*changes.deleted, *vanished], account, self.tables))
            for digest in scope.reader(job).complete(entry, current):
                yield from digest.tables.values()
            for digest in scope.reader(job).read_sub_lists(entry, items.reread):
                yield from digest.tables.values()
            if not entry.created_filter:
                list_new = False  # a list without `created` (payment links, quotes): events say what is new
        if plan.events_since is not None:
            events = scope.feed(plan.events_since).events(plan.events_since)
            if events:
                yield from run.digester.digest_objects(events, job).tables.values()
        elif list_new:
            for digest in scope.reader(replace(job, skip_ids=skip)).read(entry, plan.window):
                rows = digest.tables.get(entry.table)
                if rows is not None:
                    known.update(rows.first_keys)
                    if plan.sweep:
                        self.seen.update(rows.ids())
                yield from digest.tables.values()
        if plan.sweep:
            yield from self._sweep(plan)
        if run.bounds.stateful:
            events_cursor = run.bounds.now if entry.follows_events else None
            with run.state_lock:
                save_cursors(self.state, account, self.tables, run.bounds.list_end, events_cursor, entry.tables,
                             legacy)
                self.state["known_fields"] = sorted((known | set(self.state.get("known_fields", ())))
                                                    - {"stripe_account_id"})

    def _of_account(self) -> str:
        """A log line's prefix naming the account, when the run reads others than the key's own."""
        return f"{self.account}: " if self.account != self.run.owner else ""

    def _rechecks(self, since: int) -> list[dict[str, str]]:
        """The list params of this run's `rechecks` (see `catalog.Recheck`)."""
        selections = []
        for recheck in self.entry.rechecks:
            if recheck.per is None:
                selections.append(dict(recheck.params))
                continue
            for parent_id in self.scope.feed(since).seen_in_states(recheck.per, since, recheck.states):
                selections.append({name: value.format(id=parent_id) for name, value in recheck.params})
        return selections

    def _embedding_changed(self, since: int, snapshots: dict[str, dict]) -> set[str]:
        """Objects whose sub-list items embed an object this run's events changed (`SubList.embeds`):
        items the destination holds, and items in this run's event `snapshots` of the objects (added
        since the last run: the destination has no row of them yet)."""
        parents: set[str] = set()
        for sub in self.entry.sub_lists:
            for column, table in sub.embeds:
                changed = self.scope.feed(since).changes_for(table, since).updated
                if not changed:
                    continue
                found = self.run.destination().ids(sub.table, self.account, sub.parent_column,
                                                   where_in=(column, sorted(changed)))
                parents |= found or set()
                path = column.split("__")
                parents |= {object_id for object_id, snapshot in snapshots.items()
                            if any(_at(item, path) in changed for item in _embedded(snapshot, sub.field))}
        return parents

    def _current(self, changes: ObjectChanges, known: set[str],
                 refetch: set[str]) -> tuple[list[dict], list[str]]:
        """The newest state of changed objects: the event snapshot, or a re-fetch if it is partial or
        the object is in `refetch`; and the ids of objects a re-fetch found gone (deleted after the
        events were read)."""
        entry, objects, vanished = self.entry, [], []
        snapshots: dict[str, dict | None] = {**dict.fromkeys(refetch), **changes.updated}
        for object_id, snapshot in snapshots.items():
            if object_id not in refetch and snapshot is not None and is_complete(
                    snapshot, known, changes.api_versions.get(object_id), entry, API_VERSION):
                objects.append(snapshot)
                continue
            try:
                expand = {"expand[]": list(entry.expand)} if entry.expand else None
                objects.append(self.scope.api.get(f"{entry.path}/{object_id}", expand,
                                                  endpoint=f"{entry.path}/{{id}}"))
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
                vanished.append(object_id)
        return objects, vanished

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
                self._cannot_sweep()
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
                self._cannot_sweep()
                return
            orphaned = sorted(parents - self.seen - swept)
            yield from self._rows(tombstone_rows(entry, orphaned, self.account, frozenset({sub.table})))

    def _cannot_sweep(self) -> None:
        logger.warning("%s%s: the destination cannot be asked which rows it holds: rows of objects deleted at "
                       "Stripe since the last run may remain", self._of_account(), self.entry.table)

    def _rows(self, tables: dict[str, list[dict]]) -> Iterator[TableRows]:
        for table, rows in tables.items():
            if rows:
                yield self.run.digester.table_rows(table, rows)


def _embedded(obj: dict, field: str) -> list[dict]:
    """The items of `obj`'s truncated sub-list `field` (none when absent)."""
    value = obj.get(field)
    return value.get("data") or [] if isinstance(value, dict) else []


def _at(obj: Any, path: list[str]) -> Any:
    """The value at a flattened column's path (`price__id` -> obj["price"]["id"]); None if absent."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


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
        if fan_out is None:
            rows_of_reads: Iterator[TableRows] = (rows for read in reads for rows in read.rows())
        else:
            rows_of_reads = fan_out.rows(entry.table, reads)
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


def read(run: Extraction, entry: StripeObject, tables: frozenset[str], scopes: Sequence[AccountScope],
         fan_out: FanOut | None = None) -> Iterator[Any]:
    """The resource's generator: one `ResourceRun` over the run's accounts, inside the run's lifecycle."""
    with run.lifecycle.running():
        yield from ResourceRun(run, entry, tables).items(scopes, fan_out)
