"""Checking what the user asked for, before any request is made."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Iterable

import pendulum

from .catalog import BY_TABLE
from .errors import InvalidInput
from .plan import EVENTS_RETENTION_SECONDS
from .selection import choices, default_tables, expand_names

DateLike = str | int | float | dt.date | dt.datetime | None
UNIX_SECONDS_DIGITS = 9  # 100000000 is 1973: Stripe has nothing older
LATEST_DATE = 253402300799  # 9999-12-31T23:59:59Z: the last moment a datetime (and Stripe) can name
# An end_date this far ahead of the local clock is a typo (2205 for 2025), not a window: the Stripe
# clock is not known before the first request, so the slack is generous.
END_DATE_SLACK_SECONDS = 366 * 86400
MAX_LOOKBACK_SECONDS = EVENTS_RETENTION_SECONDS  # a longer lookback finds no more events
MAX_WORKERS = 256  # ~100 req/s at ~300 ms needs ~30; a pool this size preallocates its slots
MAX_FLATTEN_PROCESSES = 64  # each is a forked process
# Below 0.1 req/s a backfill takes days; tiny rates also overflow the pacer's waits.
MIN_REQUESTS_PER_SECOND, MAX_REQUESTS_PER_SECOND = 0.1, 100_000.0


def parse_date(value: DateLike, name: str) -> int | None:
    """A bound on `created` as Unix seconds (UTC). Dates mean midnight UTC; naive times are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a date, got {value!r}")
    if isinstance(value, int) and 0 <= value < 10 ** (UNIX_SECONDS_DIGITS - 1):
        value = str(value)  # 2024 or 20240115 from a config file: a date, as for strings
    elif isinstance(value, int | float):
        return _in_range(value, value, name)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(moment.timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) >= UNIX_SECONDS_DIGITS:
        return _in_range(int(value), value, name)  # Unix seconds, as Stripe writes times (shorter: ISO 2024)
    try:
        return int(pendulum.parse(str(value), tz="UTC").timestamp())  # type: ignore[union-attr]
    except (ValueError, TypeError, OverflowError, pendulum.parsing.exceptions.ParserError):
        raise InvalidInput(
            f"{name} '{value}' is not a date: use ISO 8601 (2024-01-31 or 2024-01-31T12:00:00Z) or Unix seconds"
        ) from None


def _in_range(seconds: float, given: object, name: str) -> int:
    if not (math.isfinite(seconds) and 0 <= seconds <= LATEST_DATE):
        raise InvalidInput(
            f"{name} '{given}' is out of range: give a date from 1970 to 9999 (ISO 8601 or Unix seconds)"
        )
    return int(seconds)


def check_window(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end_date must be after start_date: swap them or widen the window")
    if end is not None and end > time.time() + END_DATE_SLACK_SECONDS:
        when = dt.datetime.fromtimestamp(end, dt.UTC).isoformat()
        raise InvalidInput(
            f"end_date {when} is in the future: give a past date, or leave it out to load up to now"
        )


def check_start_is_past(start: int | None, now: int) -> None:
    """A start_date after Stripe's clock loads nothing, yet would move the cursor past every object."""
    if start is not None and start > now:
        when = dt.datetime.fromtimestamp(start, dt.UTC).isoformat()
        raise InvalidInput(f"start_date {when} is in the future (Stripe's clock): give a past date")


def check_tuning(lookback_seconds: int, workers: int, max_requests_per_second: float | None,
                 max_requests_per_endpoint: float | None, flatten_processes: int | None) -> None:
    """Numbers the user may set: each must make sense, none may quietly switch something off."""
    _whole("lookback_seconds", lookback_seconds, 0, MAX_LOOKBACK_SECONDS)
    _whole("workers", workers, 1, MAX_WORKERS)
    if flatten_processes is not None:
        _whole("flatten_processes", flatten_processes, 0, MAX_FLATTEN_PROCESSES)
    for name, value in (("max_requests_per_second", max_requests_per_second),
                        ("max_requests_per_endpoint", max_requests_per_endpoint)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not MIN_REQUESTS_PER_SECOND <= value <= MAX_REQUESTS_PER_SECOND):
            raise InvalidInput(
                f"{name} must be a number above 0 (from {MIN_REQUESTS_PER_SECOND:g} to {MAX_REQUESTS_PER_SECOND:g}), "
                f"got {value!r}: leave it unset for Stripe's defaults"
            )


def _whole(name: str, value: object, least: int, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise InvalidInput(f"{name} must be a whole number of at least {least} and at most {most}, got {value!r}")


def select_tables(names: Iterable[str] | str | None) -> dict[str, frozenset[str]]:
    """Requested tables (or groups, see `selection.py`) grouped by the list endpoint that produces
    them (sub-lists by their parent). Returns {root table: tables wanted from it}. None or empty
    selects every table that is on by default.
    """
    if isinstance(names, str) and names.strip().startswith("["):
        try:  # a JSON list, as dlt config gives lists: ["charges", "invoices"]
            names = json.loads(names)
        except ValueError:
            raise InvalidInput(f"resources {names!r} is not a list: give table names separated by commas") from None
    if isinstance(names, str):
        names = [n for n in names.replace(" ", ",").split(",") if n]
    if not isinstance(names, Iterable | None) or any(not isinstance(n, str) for n in names or []):
        raise InvalidInput(f"resources must be table names separated by commas, got {names!r}")
    wanted, unknown = expand_names(names or [])
    if unknown:
        raise InvalidInput(f"Unknown Stripe resource(s): {', '.join(unknown)}. Choose {choices()}")
    wanted = wanted or default_tables()
    selection: dict[str, set[str]] = {}
    for table in wanted:
        selection.setdefault(BY_TABLE[table].parent or table, set()).add(table)
    return {root: frozenset(tables) for root, tables in selection.items()}
