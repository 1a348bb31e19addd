"""The sync model, table by table: what a resource reads given its cursors, the bounds and the
destination (`plan.plan_resource`, a pure function)."""

from __future__ import annotations

import pytest

from stripe_source.catalog import BY_TABLE
from stripe_source.plan import EVENTS_RETENTION_SECONDS, Cursors, ResourcePlan, RunBounds, Window, plan_resource

NOW = 1_800_000_000
LOOKBACK = 300
DAY = 86400


def bounds(**kw) -> RunBounds:
    return RunBounds(**{"now": NOW, "start": None, "end": None, "lookback": LOOKBACK, "full_refresh": False, **kw})


WHOLE = Window(None, NOW + 1)
HORIZON = NOW - EVENTS_RETENTION_SECONDS
RECENT = Cursors(created=NOW - DAY, events=NOW - DAY)


@pytest.mark.parametrize(("table", "cursors", "run", "holds_rows", "expected"), [
    # a first load: nothing of the account's yet, so the fast path
    ("charges", Cursors(), bounds(), False, ResourcePlan("append", WHOLE)),
    # no cursor, but the destination holds rows (state lost, an earlier backfill window): merge and sweep
    ("charges", Cursors(), bounds(), True, ResourcePlan("merge", WHOLE, sweep=True)),
    # the usual later run: changes since the events cursor, new charges among them (Stripe announces
    # each one's creation), so no list
    ("charges", RECENT, bounds(), True,
     ResourcePlan("merge", Window(NOW - DAY - LOOKBACK, NOW + 1), changes_since=NOW - DAY - LOOKBACK,
                  creations_from_events=True)),
    # a start date later than the cursor bounds the window
    ("charges", RECENT, bounds(start=NOW - 3600), True,
     ResourcePlan("merge", Window(NOW - 3600, NOW + 1), changes_since=NOW - DAY - LOOKBACK,
                  creations_from_events=True)),
    # invoice items: created with an event too, but whose snapshot may be stale (see resource.py)
    ("invoice_items", RECENT, bounds(), True,
     ResourcePlan("merge", Window(NOW - DAY - LOOKBACK, NOW + 1), changes_since=NOW - DAY - LOOKBACK,
                  creations_from_events=True)),
    # objects that never change: no events pass
    ("balance_transactions", Cursors(NOW - DAY, None), bounds(), True,
     ResourcePlan("merge", Window(NOW - DAY - LOOKBACK, NOW + 1))),
    # the 30-day rule: events are gone, so the list is read whole again and swept
    ("charges", Cursors(NOW - 40 * DAY, NOW - 40 * DAY), bounds(), True,
     ResourcePlan("merge", WHOLE, sweep=True, gap=True)),
    # a cursor without an events cursor (a table that did not follow changes before): a gap too
    ("customers", Cursors(NOW - DAY, None), bounds(), True, ResourcePlan("merge", WHOLE, sweep=True, gap=True)),
    # --full-refresh: whatever the cursors
    ("charges", RECENT, bounds(full_refresh=True), True, ResourcePlan("merge", WHOLE, sweep=True)),
    # an --end-date window is stateless: its window whatever the cursors
    ("charges", RECENT, bounds(start=NOW - 10 * DAY, end=NOW - 5 * DAY), True,
     ResourcePlan("merge", Window(NOW - 10 * DAY, NOW - 5 * DAY), sweep=True)),
    # the events log: from the feed after its first run, never older than Stripe keeps
    ("events", Cursors(NOW - DAY, None), bounds(), True,
     ResourcePlan("merge", Window(NOW - DAY - LOOKBACK, NOW + 1), events_since=NOW - DAY - LOOKBACK)),
    ("events", Cursors(NOW - 40 * DAY, None), bounds(), True,
     ResourcePlan("merge", Window(HORIZON, NOW + 1), events_since=HORIZON)),
    # ... and its first run lists what Stripe holds, with nothing to sweep (a log keeps what Stripe no longer holds)
    ("events", Cursors(), bounds(), True, ResourcePlan("merge", Window(HORIZON, NOW + 1))),
])
def test_plan(table, cursors, run, holds_rows, expected):
    assert plan_resource(BY_TABLE[table], cursors, run, holds_rows) == expected


@pytest.mark.parametrize(("settling", "run", "start"), [
    # a pending balance transaction now due (its available_on passed): the list is read again from it
    (NOW - 5 * DAY, bounds(), NOW - 5 * DAY),
    # none due: the window starts behind the cursor, as always
    (None, bounds(), NOW - DAY - LOOKBACK),
    # one due inside the lookback changes nothing
    (NOW - 60, bounds(), NOW - DAY - LOOKBACK),
    # a start date still bounds the window
    (NOW - 5 * DAY, bounds(start=NOW - 2 * DAY), NOW - 2 * DAY),
])
def test_rows_that_settle_unannounced_are_read_again(settling, run, start):
    plan = plan_resource(BY_TABLE["balance_transactions"], Cursors(NOW - DAY, None), run, True, settling)
    assert plan == ResourcePlan("merge", Window(start, NOW + 1))


def test_the_lookback_reaches_behind_the_cursor_at_the_edge_of_the_retention():
    # an events cursor just inside the 30 days, but its lookback outside: the events needed are gone
    cursors = Cursors(NOW - DAY, NOW - EVENTS_RETENTION_SECONDS + LOOKBACK // 2)
    assert plan_resource(BY_TABLE["invoices"], cursors, bounds(), True).gap
