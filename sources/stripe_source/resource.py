"""One resource per listed Stripe object: each account's read of it planned (`plan.py`) and carried
out, the rows of all of them batched for dlt under one set of hints."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dlt

from .account_read import AccountRead
from .catalog import BY_TABLE, StripeObject, sub_list_of
from .connect import ConnectedAccountsRead
from .items import TableBatches, plan_for, realign_tables
from .run import AccountScope, Extraction

if TYPE_CHECKING:
    from .fan_out import FanOut


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


def _in_turns(entry: StripeObject, reads: list[AccountRead], owner: str) -> list[list[AccountRead]]:
    """The reads in one turn; the platform's list of its connected accounts after theirs (which note
    what their events announce for it)."""
    if not entry.connected_events:
        return [reads]
    return [[r for r in reads if r.account != owner], [r for r in reads if r.account == owner]]


def read(run: Extraction, entry: StripeObject, tables: frozenset[str], scopes: Sequence[AccountScope],
         fan_out: FanOut) -> Iterator[Any]:
    """The resource's generator, inside the run's lifecycle: every scope's read, as `fan_out` reads them
    (in turn or many at once), its tables' rows batched for dlt under one set of hints."""
    with run.lifecycle.running():
        # One disposition for the resource's tables: a table appended to by one account's first load and
        # merged into by another's later run would be both at once. Merging a first load is only slower.
        holds_rows = any(run.destination().holds_rows(tables, scope.account) for scope in scopes)
        disposition = "merge" if holds_rows else "append"
        # The resource's own disposition too: dlt starts every table it fills from it, nested
        # tables included (whose disposition must follow their root's).
        dlt.current.resource().apply_hints(write_disposition=table_hints(entry, disposition)["write_disposition"])
        hints = {table: table_hints(BY_TABLE[table], disposition) for table in entry.tables}
        if run.arrow:
            run.plans.update({table: plan_for(table, hints[table]) for table in entry.tables})
        state = dlt.current.resource_state(entry.table)
        kind = ConnectedAccountsRead if entry.connected_events else AccountRead
        reads = [kind(scope, entry, tables, state) for scope in scopes]
        batches = TableBatches(run.tables, entry.table)
        for turn in _in_turns(entry, reads, run.owner):
            for rows in fan_out.rows(entry.table, turn):
                yield from batches.add(rows, hints[rows.table])
        yield from batches.flush()
        if run.arrow:
            yield from realign_tables(run.tables, [t for t in entry.tables if t in batches.filled], hints,
                                      batches.written)
