"""Parsed pages shaped into table rows: the same in the extracting process and in worker processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import StripeObject, SubList


@dataclass(frozen=True)
class PageEdges:
    """What continuing a list needs from a page."""

    has_more: bool
    count: int
    first_created: int = 0
    last_created: int = 0
    last_id: str = ""


def page_edges(page: dict, created_field: str) -> PageEdges:
    data = page["data"]
    if not data:
        return PageEdges(bool(page.get("has_more")), 0)
    # objects without `created` (payment links) list without windows: only the cursor matters
    return PageEdges(bool(page.get("has_more")), len(data), data[0].get(created_field, 0),
                     data[-1].get(created_field, 0), data[-1]["id"])


def shape_objects(
    entry: StripeObject, objects: list[dict], account_id: str, wanted: frozenset[str] | None,
    skip_ids: frozenset[str] = frozenset(), merging: bool = False,
) -> tuple[dict[str, list[dict]], list[tuple[SubList, str, str | None]]]:
    """Rows per table (the object's own first, then its sub-lists' items) and the sub-list pages
    still to read as (sub-list, parent id, starting_after). When `merging` (not appending), an
    empty sub-list gives a `removed_row` so the rows its parent had go."""
    rows: list[dict] = []
    tables: dict[str, list[dict]] = {entry.table: rows}
    sub_pages: list[tuple[SubList, str, str | None]] = []
    for obj in objects:
        if obj["id"] in skip_ids:
            continue
        for sub in entry.sub_lists:
            embedded = obj.pop(sub.field, None) if sub.field else None
            if (wanted is not None and sub.table not in wanted) or not has_sub_list(sub, obj):
                continue
            if embedded is None:  # not embedded (e.g. a minimal event snapshot): page it whole
                sub_pages.append((sub, obj["id"], None))
                continue
            items = embedded.get("data", [])
            tables.setdefault(sub.table, []).extend(child_rows(sub, obj["id"], items, account_id))
            if merging and not items and not embedded.get("has_more"):
                tables[sub.table].append(removed_row(sub, obj["id"], account_id, "emptied"))
            if embedded.get("has_more"):
                sub_pages.append((sub, obj["id"], items[-1]["id"] if items else None))
        for name in entry.drop:
            obj.pop(name, None)
        obj["stripe_account_id"] = account_id
        rows.append(obj)
    if wanted is not None and entry.table not in wanted:
        del tables[entry.table]
    return {table: rows for table, rows in tables.items() if rows}, sub_pages


def has_sub_list(sub: SubList, parent: dict) -> bool:
    """Whether Stripe keeps this sub-list for the parent (`balance_transactions?payout=` only for
    automatic payouts)."""
    return all(value_at(parent, name) == value for name, value in sub.only_if)


def value_at(obj: Any, path: str) -> Any:
    """The value at a dotted path into nested objects (`controller.is_controller`); None if absent."""
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def child_rows(sub: SubList, parent_id: str, items: list[dict], account_id: str) -> list[dict]:
    for item in items:
        item.setdefault(sub.parent_column, parent_id)
        item["stripe_account_id"] = account_id
    return items


def shape_sub_page(sub: SubList, parent_id: str, page: dict, account_id: str,
                   merging: bool = False) -> tuple[list[dict], str | None]:
    """A sub-list page's rows, and the cursor of its next page (None: this was the last).
    `merging`: this is the list's first page, and an empty list removes the parent's rows."""
    items = page["data"]
    after = items[-1]["id"] if page.get("has_more") and items else None
    if merging and not items:
        return [removed_row(sub, parent_id, account_id, "emptied")], None
    return child_rows(sub, parent_id, items, account_id), after


def removed_row(sub: SubList, parent_id: str, account_id: str | None, why: str) -> dict:
    """A row that makes a merge delete every row of `parent_id` in the sub-list's table (its merge
    key) and is not loaded itself (dlt's hard-delete hint on `deleted`)."""
    return {"id": f"{parent_id}:{why}", sub.parent_column: parent_id, "deleted": True, "stripe_account_id": account_id}


def tombstone_rows(entry: StripeObject, deleted_ids: list[str], account_id: str,
                   wanted: frozenset[str] | None = None) -> dict[str, list[dict]]:
    """Rows per table that make a merge delete objects and, through the merge key, all of their
    sub-list rows."""
    ids = sorted(deleted_ids)
    tables: dict[str, list[dict]] = {}
    if not ids:
        return tables
    if wanted is None or entry.table in wanted:
        tables[entry.table] = [{"id": i, "deleted": True, "stripe_account_id": account_id} for i in ids]
    for sub in entry.sub_lists:
        if wanted is None or sub.table in wanted:
            tables[sub.table] = [removed_row(sub, i, account_id, "deleted") for i in ids]
    return tables
