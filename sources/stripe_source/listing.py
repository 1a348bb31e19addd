"""Every table as a user sees it: endpoint, how it syncs, on by default or not, permission, cost.

Derived from the catalog, so `stripe-pipeline tables` and the README's table cannot drift from what
a run does. The cost models: a **list** costs one request per 100 objects; a **sub-list** comes
embedded in its parent (the first 10 items) and costs one more request per 100 items beyond them;
a **fan-out** is read one parent at a time (one request per parent at least, on one endpoint at
Stripe's 25 requests/s: the cost that can dominate a backfill); a **snapshot** is one request a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import BY_TABLE, CATALOG, StripeObject, SubList, sub_list_of
from .selection import costly


@dataclass(frozen=True)
class TableInfo:
    table: str
    group: str
    endpoint: str
    sync: str
    default: bool
    permission: str
    cost: str


def describe(entry: StripeObject) -> TableInfo:
    return TableInfo(entry.table, entry.group, endpoint(entry), sync_mode(entry), entry.default, permission(entry),
                     cost(entry))


def tables() -> list[TableInfo]:
    return [describe(entry) for entry in CATALOG]


def endpoint(entry: StripeObject) -> str:
    if entry.parent is None:
        return f"GET {entry.path}"
    sub = sub_list_of(entry)
    query = "&".join(f"{name}={value}" for name, value in sub.params)
    return f"{BY_TABLE[entry.parent].path} → {sub.path}" + (f"?{query}" if query else "")


def sync_mode(entry: StripeObject) -> str:
    if entry.table == "events":
        return "append-only log"
    if entry.history:
        return "snapshot, appended each run"
    if entry.singleton:
        return "one row, replaced each run"
    if entry.connected_events:  # the platform's connected accounts: their events are theirs, not the platform's
        return "whole list each run (`--all-accounts` reuses its own)"
    if entry.parent is not None:
        parent = BY_TABLE[entry.parent]
        sub = sub_list_of(entry)
        how = f"fan-out per {_noun(parent, sub)}" if sub.fan_out else "with its parent"
        how += ", every run" if sub.every_run else ""
        if parent.connected_events:
            return how + " + the account's events"  # read in a run of all accounts; without them, every run
        return how + (" + its own events" if entry.events else "")
    if not entry.created_filter:  # its list takes no `created`
        return "whole list, then events" if entry.follows_events else "whole list each run"
    if entry.settles_at:  # pending rows change, unannounced, when they settle
        return "incremental, from the oldest row due to settle"
    return "incremental + events" if entry.follows_events else "incremental"


def cost(entry: StripeObject) -> str:
    if entry.singleton:
        return "1 request a run"
    if entry.parent is None:
        return "1 request per 100"
    sub = sub_list_of(entry)
    if sub.fan_out:
        return f"1 request per {_noun(BY_TABLE[entry.parent], sub)}" + (" a run" if sub.every_run else "")
    asked = " (asked with expand[])" if sub.expand else ""
    return f"embedded{asked}; +1 request per 100 beyond 10 per {_noun(BY_TABLE[entry.parent])}"


def permission(entry: StripeObject) -> str:
    """The restricted-key permissions a table needs: its own, and its parent's list when it differs."""
    parent = BY_TABLE[entry.parent] if entry.parent else None
    if parent is not None and parent.permission != entry.permission:
        return f"{entry.permission} + {parent.permission}"
    return entry.permission


def _noun(parent: StripeObject, sub: SubList | None = None) -> str:
    kind = parent.table.removesuffix("s").replace("_", " ")  # checkout_sessions: "checkout session"
    return f"{sub.only_for} {kind}" if sub is not None and sub.only_for else kind


def render_text() -> str:
    """`stripe-pipeline tables`: one aligned line per table."""
    header = ("table", "group", "endpoint", "sync", "default", "permission", "cost")
    lines = [header] + [(t.table, t.group, t.endpoint, t.sync, "on" if t.default else "off", t.permission, t.cost)
                        for t in tables()]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]])
                     for line in lines)


def render_markdown() -> str:
    """The README's table of tables."""
    lines = ["| table | Stripe endpoint | how it syncs | default | permission | cost |", "|---|---|---|---|---|---|"]
    lines += [f"| `{t.table}` | `{t.endpoint}` | {t.sync} | {'on' if t.default else '**off**'} | `{t.permission}` "
              f"| {t.cost} |" for t in tables()]
    return "\n".join(lines)


def why_off(entry: StripeObject) -> str:
    """Why a table is off by default, in a few words."""
    if costly(entry.table):
        return cost(entry)
    return f"needs Stripe {entry.group.title()} on the account"
