"""What one resource reads in one run: the sync model as a pure function of its inputs.

- First run for an account (no cursor): every object is listed, within `start_date`/`end_date`.
- Later runs bring changed objects up to date from `/v1/events` since the last run. Objects whose
  creation Stripe announces (`customer.created`...) come from there too: their list is not read
  again. Other lists are read for objects created since the cursor, minus `lookback_seconds`.
- Stripe keeps events 30 days. A cursor older than that is a gap: the run says so and lists the
  object again, whole, so nothing changed or deleted meanwhile is missed.
- `full_refresh` lists everything again; an `end_date` makes a stateless backfill window that reads
  its window whatever the cursors and moves none.
- Rows land appended when the destination holds none of the account's rows in the tables (the
  fast path of a first load) and merged on `id` otherwise. A whole list read again while rows are
  there also removes the account's rows the read no longer found (`sweep`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import StripeObject

EVENTS_RETENTION_SECONDS = 30 * 86400


@dataclass(frozen=True)
class Window:
    """`created` in [start, end): start inclusive, end exclusive; None means unbounded."""

    start: int | None = None
    end: int | None = None

    def params(self) -> dict[str, int]:
        params = {}
        if self.start is not None:
            params["created[gte]"] = self.start
        if self.end is not None:
            params["created[lt]"] = self.end
        return params


@dataclass(frozen=True)
class RunBounds:
    """What the user asked for this run, fixed before the first request."""

    now: int  # Stripe's clock at the start of the run
    start: int | None
    end: int | None  # explicit end_date: a stateless window, cursors are left alone
    lookback: int
    full_refresh: bool

    @property
    def list_end(self) -> int:
        # Exclusive bound: objects created from `now` on belong to the next run (via lookback).
        return self.end if self.end is not None else self.now + 1

    @property
    def stateful(self) -> bool:
        return self.end is None

    @property
    def events_horizon(self) -> int:
        """The oldest moment Stripe still holds events for."""
        return self.now - EVENTS_RETENTION_SECONDS


@dataclass(frozen=True)
class Cursors:
    """Where the last runs left one resource's tables for one account (None: never loaded)."""

    created: int | None = None
    events: int | None = None


@dataclass(frozen=True)
class ResourcePlan:
    disposition: str  # "append" or "merge"
    window: Window  # the `created` range the list reads
    changes_since: int | None = None  # bring changed objects up to date from events since then
    sweep: bool = False  # remove the account's rows in `window` the read no longer finds
    gap: bool = False  # the cursor is older than Stripe's events: the list is read whole again
    events_since: int | None = None  # the events table: take them from the change feed since then
    # new objects come with their creation events since `changes_since`: the list is not read (for
    # objects whose updates Stripe does not announce, only when the events show some of them)
    creations_from_events: bool = False


def is_gap(events_cursor: int, bounds: RunBounds) -> bool:
    """Whether events we would need have already expired at Stripe."""
    return events_cursor - bounds.lookback < bounds.events_horizon


def changes_since(cursors: Cursors, bounds: RunBounds) -> int | None:
    """Since when a table read before catches up from events; None when it is read whole (a first load,
    `full_refresh`, a backfill window, a cursor older than the events Stripe keeps)."""
    if bounds.full_refresh or not bounds.stateful or cursors.created is None or cursors.events is None:
        return None
    return None if is_gap(cursors.events, bounds) else cursors.events - bounds.lookback


def plan_resource(entry: StripeObject, cursors: Cursors, bounds: RunBounds, holds_rows: bool,
                  settling: int | None = None) -> ResourcePlan:
    """The plan for `entry`'s list this run. `holds_rows`: the destination holds rows of this
    account in the resource's tables (so they merge, and a whole read sweeps). `settling`: the
    creation of the oldest row still pending whose `entry.settles_at` has passed (read again)."""
    created, events = (None, None) if bounds.full_refresh or not bounds.stateful else (cursors.created,
                                                                                       cursors.events)
    gap = entry.follows_events and created is not None and (events is None or is_gap(events, bounds))
    if gap:
        created = None
    disposition = "merge" if holds_rows else "append"
    if created is None:
        start = bounds.start
        if entry.table == "events":  # none older than Stripe's horizon: a window from there is read in fewer pages
            start = max(start or 0, bounds.events_horizon)
        return ResourcePlan(disposition, Window(start, bounds.list_end), sweep=holds_rows and not entry.singleton
                            and entry.table != "events", gap=gap)
    start = max(created - bounds.lookback, bounds.start or 0)
    if entry.table == "events":  # the log itself: Stripe holds none older than its horizon
        since = max(start, bounds.events_horizon)
        return ResourcePlan(disposition, Window(since, bounds.list_end), events_since=since)
    if settling is not None:
        start = min(start, max(settling, bounds.start or 0))
    since = changes_since(cursors, bounds) if entry.follows_events else None
    return ResourcePlan(disposition, Window(start, bounds.list_end), changes_since=since,
                        creations_from_events=since is not None and entry.creations_announced)
