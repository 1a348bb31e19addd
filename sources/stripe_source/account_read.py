"""What one resource reads of one account this run: planned from the account's cursors (`plan.py`),
the changes caught up (`catch_up.py`), the list read, rows the read no longer found swept, and the
cursors moved once the read is complete."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

from .catalog import StripeObject
from .catch_up import CatchUp, CaughtUp
from .cursors import cursors_of, save_cursors
from .pages import PageJob, TableRows
from .plan import ResourcePlan, plan_resource
from .run import AccountScope
from .shaping import tombstone_rows

logger = logging.getLogger(__name__)


class AccountRead:
    """One resource's read of one account this run (see above): rows per table, which `resource.read`
    turns into dlt items."""

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
        if self.entry.singleton:
            yield from self._singleton()
            return
        run, entry = self.run, self.entry
        with run.state_lock:
            cursors = cursors_of(self.state, self.account, self.tables, self.scope.legacy_account())
            known = set(self.state.get("known_fields", ()))
        settling = run.destination().oldest_pending(entry.table, self.account, entry.created_field, entry.settles_at,
                                                    run.bounds.now) if entry.settles_at and cursors.created else None
        plan = plan_resource(entry, cursors, run.bounds, run.destination().holds_rows(self.tables, self.account),
                             settling)
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
            yield from self._listed(plan, replace(job, skip_ids=caught_up.handled), known)
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
        yield from self.run.digester.made_rows({entry.table: [obj]})

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
            yield from self.run.digester.made_rows(tombstone_rows(entry, sorted(swept), self.account, self.tables))
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
            orphans = tombstone_rows(entry, orphaned, self.account, frozenset({sub.table}))
            yield from self.run.digester.made_rows(orphans)

    def cannot_sweep(self) -> None:
        logger.warning("%s%s: the destination cannot be asked which rows it holds: rows of objects deleted at "
                       "Stripe since the last run may remain", self._of_account(), self.entry.table)
