"""A dlt source for Stripe: payments, invoices, billing and everything they reference.

    pipeline = dlt.pipeline("stripe_library", destination="duckdb", dataset_name="stripe")
    pipeline.run(stripe_source(start_date="2024-01-01"), loader_file_format="parquet")

One resource per listed Stripe object, built from the catalog (`catalog.py`); each plans its run
(`plan.py`) and reads through the engine (`engine.py`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from .catalog import BY_TABLE, CATALOG, StripeObject
from .client import (
    API_BASE_ENV,
    API_VERSION,
    CONNECT_BASE_ENV,
    DEFAULT_API_BASE,
    DEFAULT_CONNECT_BASE,
    RateLimits,
    StripeApi,
)
from .connection import check_connection
from .credentials import StripeCredentials, resolve_credentials
from .listing import why_off
from .options import DateLike, check_start_is_past, check_tuning, check_window, parse_date, select_tables
from .plan import RunBounds
from .resource import read
from .run import SUB_LIST_WORKERS, Extraction
from .selection import left_out
from .workers import default_processes

try:
    __version__ = version("dlt-source-stripe")
except PackageNotFoundError:  # imported from a checkout without installing
    __version__ = "0+unknown"

__all__ = ["stripe_source", "StripeCredentials", "CATALOG", "API_VERSION", "__version__"]

logger = logging.getLogger(__name__)


# root_key: nested tables always carry _dlt_root_id, so a table can switch between append
# (a first load) and merge (every later run) without a schema change.
@dlt.source(name="stripe", section="stripe", parallelized=True, root_key=True)
def stripe_source(
    credentials: StripeCredentials | None = dlt.secrets.value,
    resources: str | Sequence[str] | None = None,  # str first: dlt then takes a comma-separated env value
    start_date: DateLike = None,
    end_date: DateLike = None,
    api_base: str | None = None,
    connect_base: str | None = None,
    lookback_seconds: int = 300,
    full_refresh: bool = False,
    max_requests_per_second: float | None = None,
    max_requests_per_endpoint: float | None = None,
    workers: int = 64,
    arrow: bool = True,
    flatten_processes: int | None = None,
) -> Iterator[DltResource]:
    """Stripe objects as tables, loaded completely the first time and incrementally after.

    Args:
        credentials: key (sk_/rk_ or OAuth access token) and optional connected account; read from
            `[sources.stripe.credentials]`, SOURCES__STRIPE__CREDENTIALS__API_KEY or STRIPE_API_KEY.
        resources: tables or groups to load (payments, billing, connect, issuing, documents, core, default,
            all); default: every table on by default. Sub-list tables load with their parent.
        start_date / end_date: bound `created` (ISO 8601 strings, dates, datetimes or Unix seconds).
            An end_date makes the run a stateless backfill window.
        api_base: Stripe's API base URL (or STRIPE_API_BASE); the emulator's for local runs.
        lookback_seconds: re-read objects and events this far behind the last cursor.
        full_refresh: ignore cursors and read everything again.
        max_requests_per_second / max_requests_per_endpoint: pacing (default from the key's mode:
            live 100 and 25, test 25 and 25); raise them for accounts with raised limits.
        workers: concurrent list requests at most; sub-list pages (invoice lines, ...) run on as
            many threads again, at most 40.
        arrow: hand dlt Arrow tables flattened the way its normalizer would (the default: same
            tables, a fraction of the CPU); False uses dlt's own normalizer on dicts.
        flatten_processes: worker processes that do that flattening, off the process that fetches
            and extracts (default: one per core beyond the first, at most 4; 0 keeps it in-process).
    """
    # Everything the user gave is checked before the first request.
    start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    check_window(start, end)
    check_tuning(lookback_seconds, workers, max_requests_per_second, max_requests_per_endpoint, flatten_processes)
    selection = select_tables(resources)
    for table in left_out(selection, given=bool(resources)):
        logger.info("%s is off by default (%s): name it in `resources` (or give 'all') to load it", table,
                    why_off(BY_TABLE[table]))
    creds = resolve_credentials(credentials)
    api_base = (api_base or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/")
    connect_base = connect_base or os.environ.get(CONNECT_BASE_ENV) or DEFAULT_CONNECT_BASE

    limits = RateLimits.for_mode(creds.livemode)
    if max_requests_per_second is not None:
        limits.global_rps = max_requests_per_second
    if max_requests_per_endpoint is not None:
        limits.endpoint_rps = max_requests_per_endpoint
    # a connection for every thread that may request at once: list pages, sub-list pages, and
    # dlt's extract threads (objects re-fetched after a partial event, singletons)
    api = StripeApi(creds, api_base, connect_base=connect_base, limits=limits,
                    pool_size=workers + min(SUB_LIST_WORKERS, workers) + len(selection) + 1)

    account_id, account_created = check_connection(api, creds, selection)  # the same check as `connect`
    now = api.server_time or int(time.time())
    check_start_is_past(start, now)
    bounds = RunBounds(now=now, start=start, end=end, lookback=lookback_seconds, full_refresh=full_refresh)
    processes = default_processes() if flatten_processes is None else flatten_processes
    run = Extraction(api, account_id or "", account_created, bounds, selection, arrow=arrow, processes=processes,
                     workers=workers)
    for root, tables in selection.items():
        yield _resource(run, BY_TABLE[root], tables)


def _resource(run: Extraction, entry: StripeObject, tables: frozenset[str]) -> DltResource:
    def items() -> Iterator[Any]:
        yield from read(run, entry, tables)

    return dlt.resource(items, name=entry.table, table_name=entry.table, parallelized=True)
