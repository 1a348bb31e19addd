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

from .account_report import AccountsReport
from .accounts import check_pace, check_platform_credentials, parse_accounts, platform_scopes
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
from .cursors import loaded_without_account
from .fan_out import ACCOUNTS_IN_FLIGHT, FanOut
from .listing import why_off
from .options import DateLike, check_start_is_past, check_tuning, check_window, parse_date, select_tables
from .plan import RunBounds
from .resource import read
from .run import SUB_LIST_WORKERS, AccountScope, Extraction
from .selection import left_out
from .workers import default_processes

try:
    __version__ = version("dlt-source-stripe")
except PackageNotFoundError:  # imported from a checkout without installing
    __version__ = "0+unknown"

__all__ = ["stripe_source", "StripeCredentials", "CATALOG", "API_VERSION", "AccountsReport", "__version__"]

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
    accounts: str | Sequence[str] | None = None,
    pace: str = "platform",
    report: AccountsReport | None = None,
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
        accounts: a Connect platform's accounts, with the platform's key: "all" (the platform and
            every connected account, `/v1/accounts`) or account ids; each row carries its
            `stripe_account_id`, each account keeps its own cursors, and an account that fails is
            reported in `report` while the others load. None: the key's own account (or the
            credentials' `stripe_account`), and any failure is the run's.
        pace: with `accounts`, whose rate budget the accounts' requests share: "platform" (one, the
            default) or "per-account".
        report: receives each account's outcome (`accounts.AccountsReport`: rows, requests, status).
    """
    # Everything the user gave is checked before the first request.
    start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    check_window(start, end)
    check_tuning(lookback_seconds, workers, max_requests_per_second, max_requests_per_endpoint, flatten_processes)
    selection = select_tables(resources)
    wanted_accounts = parse_accounts(accounts)
    check_pace(pace)
    for table in left_out(selection, given=bool(resources)):
        logger.info("%s is off by default (%s): name it in `resources` (or give 'all') to load it", table,
                    why_off(BY_TABLE[table]))
    creds = resolve_credentials(credentials)
    if wanted_accounts is not None:
        check_platform_credentials(creds)
    api_base = (api_base or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/")
    connect_base = connect_base or os.environ.get(CONNECT_BASE_ENV) or DEFAULT_CONNECT_BASE

    limits = RateLimits.for_mode(creds.livemode)
    if max_requests_per_second is not None:
        limits.global_rps = max_requests_per_second
    if max_requests_per_endpoint is not None:
        limits.endpoint_rps = max_requests_per_endpoint
    # a connection for every thread that may request at once: list pages, sub-list pages, and
    # dlt's extract threads (objects re-fetched after a partial event, singletons)
    # (with `accounts`, threads reading accounts at once also re-fetch objects on connections of their own)
    pool_size = workers + min(SUB_LIST_WORKERS, workers) + len(selection) + 1
    if wanted_accounts is not None:
        pool_size += ACCOUNTS_IN_FLIGHT * len(selection)
    api = StripeApi(creds, api_base, connect_base=connect_base, limits=limits, pool_size=pool_size)

    account_id, account_created, account = check_connection(api, creds, selection)  # the same check as `connect`
    state = _source_state()
    if account_id and not account.get("id") and not creds.stripe_account and loaded_without_account(state):
        # Named now, the account would be read again as a new one, beside the rows it already has.
        logger.warning("This dataset was loaded before its account was known (a restricted key without "
                       "rak_account_read): its rows keep an empty stripe_account_id. Load into a new dataset "
                       "to have %s on every row.", account_id)
        account_id = ""
    now = api.server_time or int(time.time())
    check_start_is_past(start, now)
    bounds = RunBounds(now=now, start=start, end=end, lookback=lookback_seconds, full_refresh=full_refresh)
    processes = default_processes() if flatten_processes is None else flatten_processes
    run = Extraction(bounds, selection, arrow=arrow, processes=processes, workers=workers, owner=account_id or "")
    report = report if report is not None else AccountsReport()
    if wanted_accounts is None:
        scopes = [AccountScope(run, api, account_id or "", account_created, account)]
        fan_out = FanOut(report, isolate=False)
    else:
        report.platform = True
        run.expect_many_accounts()
        scopes = platform_scopes(run, api, wanted_accounts, account, account_created, limits, pace, report,
                                 loaded_before=list(state.get("accounts", ())))
        fan_out = FanOut(report, run.thread_prefix)
    report.expect(scopes, list(selection), base=api)
    for root, tables in selection.items():
        yield _resource(run, BY_TABLE[root], tables, scopes, fan_out)


def _resource(run: Extraction, entry: StripeObject, tables: frozenset[str], scopes: list[AccountScope],
              fan_out: FanOut) -> DltResource:
    def items() -> Iterator[Any]:
        yield from read(run, entry, tables, scopes, fan_out)

    # Not `parallelized=True` here: the source parallelizes its resources, and dlt wraps a resource
    # twice when asked twice; the outer wrapper then spins, asking the inner one for its next item
    # thousands of times a second while it waits (what made a paced run cost ~2x the CPU of an unpaced one).
    return dlt.resource(items, name=entry.table, table_name=entry.table)


def _source_state() -> dict:
    """This pipeline's state of the source (what earlier runs left); empty outside a pipeline."""
    try:
        return dlt.current.source_state()
    except Exception:  # the source iterated outside a pipeline
        return {}
