"""Checking what the user asked for, before any request is made."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pendulum

from .catalog import BY_TABLE, CATALOG
from .errors import InvalidInput

DateLike = str | int | float | dt.date | dt.datetime | None


def parse_date(value: DateLike, name: str) -> int | None:
    """A bound on `created` as Unix seconds (UTC). Dates mean midnight UTC; naive times are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a date, got {value!r}")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(moment.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
    if isinstance(value, str) and value.strip().isdigit():  # Unix seconds, as Stripe writes times
        return int(value)
    try:
        return int(pendulum.parse(str(value), tz="UTC").timestamp())  # type: ignore[union-attr]
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError):
        raise InvalidInput(
            f"{name} '{value}' is not a date: use ISO 8601 (2024-01-31 or 2024-01-31T12:00:00Z) or Unix seconds"
        ) from None


def check_window(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end_date must be after start_date: swap them or widen the window")


def select_tables(names: Iterable[str] | str | None) -> dict[str, frozenset[str]]:
    """Requested tables grouped by the list endpoint that produces them (sub-lists by their parent).

    Returns {root table: tables wanted from it}. None or empty selects everything.
    """
    if isinstance(names, str):
        names = [n for n in names.replace(" ", ",").split(",") if n]
    names = list(names or [])
    unknown = [n for n in names if n not in BY_TABLE]
    if unknown:
        raise InvalidInput(
            f"Unknown Stripe resource(s): {', '.join(unknown)}. Choose from: {', '.join(BY_TABLE)}"
        )
    wanted = names or [entry.table for entry in CATALOG]
    selection: dict[str, set[str]] = {}
    for table in wanted:
        selection.setdefault(BY_TABLE[table].parent or table, set()).add(table)
    return {root: frozenset(tables) for root, tables in selection.items()}
