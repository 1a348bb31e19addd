"""One resource per listed Stripe object: it plans its run (`plan.py`) and carries the plan out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dlt
import stripe

from .catalog import BY_TABLE, StripeObject, sub_list_of
from .changes import ObjectChanges, is_complete
from .client import API_VERSION
from .cursors import cursors_of, save_cursors
from .item_changes import sub_lists_to_read
from .items import TableBatches, plan_for, realign_tables
from .pages import Digest, PageJob
from .plan import ResourcePlan, plan_resource
from .run import Extraction
from .shaping import tombstone_rows

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


class ResourceRun:
    """One resource's run: its tables' hints and batches, what it has seen, its cursors."""

    def __init__(self, run: Extraction, entry: StripeObject, tables: frozenset[str]) -> None:
        self.run = run
        self.entry = entry
        self.tables = tables
        self.hints: dict[str, Any] = {}
        self.batches = TableBatches(run.tables, entry.table)
        self.seen: set[str] = set()  # ids of the listed objects (for a sweep)

    def items(self) -> Iterator[Any]:
        run, entry = self.run, self.entry
        legacy = run.legacy_account()
        if entry.singleton:
            self._set_hints(self._disposition(), dlt.current.resource())
            obj = dict(run.api.get(entry.path or ""), stripe_account_id=run.account)
            if entry.history:  # one row per run: when it was read makes its id
                obj.update(id=f"{run.account}:{run.bounds.now}", read_at=run.bounds.now)
            yield from self._emit_rows({entry.table: [obj]})
            yield from self._flush()
            return
        state = dlt.current.resource_state(entry.table)
        cursors = cursors_of(state, run.account, self.tables, legacy)
        plan = plan_resource(entry, cursors, run.bounds, run.destination().holds_rows(self.tables, run.account))
        if plan.gap:
            logger.warning("%s: the last sync is older than the 30 days Stripe keeps events; reading all %s again "
                           "so no update or delete is missed", entry.table, entry.table)
        self._set_hints(plan.disposition, dlt.current.resource())
        known = set(state.get("known_fields", ()))
        job = PageJob(entry.table, run.account, wanted=self.tables, created_field=entry.created_field,
                      merging=plan.disposition == "merge")
        skip: frozenset[str] = frozenset()
        if plan.changes_since is not None:
            rechecked: set[str] = set()
            for digest in run.reader(job).read_selections(entry, self._rechecks(plan.changes_since)):
                if (rows := digest.tables.get(entry.table)) is not None:
                    rechecked.update(rows.ids())
                yield from self._emit(iter([digest]))
            changes = run.feed(plan.changes_since).changes_for(entry.table, plan.changes_since)
            if not entry.updates_announced:  # a snapshot may predate unannounced updates
                changes.updated.clear()
            for object_id in rechecked:  # read just now: newer than any event
                changes.updated.pop(object_id, None)
            skip = changes.ids | rechecked
            current, vanished = self._current(changes, known)
            yield from self._emit_rows(tombstone_rows(entry, [*changes.deleted, *vanished], run.account, self.tables))
            yield from self._emit(run.reader(job).complete(entry, current))
            parents = sub_lists_to_read(run, entry, self.tables, plan.changes_since, changes.ids)
            yield from self._emit(run.reader(job).read_sub_lists(entry, parents))
        if plan.events_since is not None:
            events = run.feed(plan.events_since).events(plan.events_since)
            yield from self._emit(iter([run.digester.digest_objects(events, job)]) if events else iter(()))
        elif plan.changes_since is not None and not entry.created_filter:
            pass  # a list without `created` (payment links, quotes): after the first load its events say what is new
        else:
            for digest in run.reader(replace(job, skip_ids=skip)).read(entry, plan.window):
                rows = digest.tables.get(entry.table)
                if rows is not None:
                    known.update(rows.first_keys)
                    if plan.sweep:
                        self.seen.update(rows.ids())
                yield from self._emit(iter([digest]))
        if plan.sweep:
            yield from self._sweep(plan)
        yield from self._flush()
        if run.bounds.stateful:
            events_cursor = run.bounds.now if entry.mutable and entry.events else None
            save_cursors(state, run.account, self.tables, run.bounds.list_end, events_cursor, entry.tables, legacy)
            state["known_fields"] = sorted(known - {"stripe_account_id"})

    def _disposition(self) -> str:
        return "merge" if self.run.destination().holds_rows(self.tables, self.run.account) else "append"

    def _set_hints(self, disposition: str, resource: Any) -> None:
        # The resource's own disposition too: dlt starts every table it fills from it, nested
        # tables included (whose disposition must follow their root's).
        resource.apply_hints(write_disposition=table_hints(self.entry, disposition)["write_disposition"])
        for table in self.entry.tables:
            self.hints[table] = table_hints(BY_TABLE[table], disposition)
            if self.run.arrow:
                self.run.plans[table] = plan_for(table, self.hints[table])

    def _rechecks(self, since: int) -> list[dict[str, str]]:
        """The list params of this run's `rechecks` (see `catalog.Recheck`)."""
        selections = []
        for recheck in self.entry.rechecks:
            if recheck.per is None:
                selections.append(dict(recheck.params))
                continue
            for parent_id in self.run.feed(since).seen_in_states(recheck.per, since, recheck.states):
                selections.append({name: value.format(id=parent_id) for name, value in recheck.params})
        return selections

    def _current(self, changes: ObjectChanges, known: set[str]) -> tuple[list[dict], list[str]]:
        """The newest state of changed objects: the event snapshot, or a re-fetch if it is partial;
        and the ids of objects a re-fetch found gone (deleted after the events were read)."""
        entry, objects, vanished = self.entry, [], []
        for object_id, snapshot in changes.updated.items():
            if is_complete(snapshot, known, changes.api_versions.get(object_id), entry, API_VERSION):
                objects.append(snapshot)
                continue
            try:
                expand = {"expand[]": list(entry.expand)} if entry.expand else None
                objects.append(self.run.api.get(f"{entry.path}/{object_id}", expand, endpoint=f"{entry.path}/{{id}}"))
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
                vanished.append(object_id)
        return objects, vanished

    def _sweep(self, plan: ResourcePlan) -> Iterator[Any]:
        """Tombstones for the account's rows in the window that the read no longer found."""
        entry, window = self.entry, plan.window
        whole = window.start is None and self.run.bounds.stateful
        table, column = entry.table, "id"
        if entry.table not in self.tables:  # only sub-list tables wanted: their parents' ids
            if not whole:
                return
            sub = next(s for s in entry.sub_lists if s.table in self.tables)
            table, column = sub.table, sub.parent_column
        found = self.run.destination().ids(table, self.run.account, column,
                                           entry.created_field if table == entry.table and entry.created_filter
                                           else None,
                                           window.start, None if whole else window.end)
        if found is None:
            logger.warning("%s: the destination cannot be asked which rows it holds: rows of objects deleted "
                           "at Stripe since the last run may remain", entry.table)
            return
        yield from self._emit_rows(tombstone_rows(entry, sorted(found - self.seen), self.run.account, self.tables))

    def _emit(self, digests: Iterator[Digest]) -> Iterator[Any]:
        for digest in digests:
            for rows in digest.tables.values():
                yield from self.batches.add(rows, self.hints[rows.table])

    def _emit_rows(self, tables: dict[str, list[dict]]) -> Iterator[Any]:
        for table, rows in tables.items():
            if rows:
                yield from self.batches.add(self.run.digester.table_rows(table, rows), self.hints[table])

    def _flush(self) -> Iterator[Any]:
        yield from self.batches.flush()
        if self.run.arrow:
            yield from realign_tables(self.run.tables, [t for t in self.entry.tables if t in self.batches.filled],
                                      self.hints)


def read(run: Extraction, entry: StripeObject, tables: frozenset[str]) -> Iterator[Any]:
    """The resource's generator: one `ResourceRun`, inside the run's lifecycle."""
    with run.lifecycle.running():
        yield from ResourceRun(run, entry, tables).items()

