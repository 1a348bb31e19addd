"""One account per partition: a Connect platform's accounts loaded by an orchestrator, each account
a partition (Dagster) or a mapped task (Airflow) of its own, all into one dataset.

    for account in list_accounts():                  # the platform's own account, then its connected ones
        load_account(account, platform=accounts[0], destination="postgres")

Each account gets its own pipeline (`stripe_<account id>`: its working dir, state, run lock and,
in PostgreSQL, staging dataset), so any number of them can run at once on as many processes or
machines; rows of different accounts never touch (README, "The sync model"). Parallel runs need a
destination that takes concurrent writers: PostgreSQL (`stripe_source.postgres`) or a warehouse,
not a DuckDB file, which takes one writer at a time.
"""

from __future__ import annotations

import os
from typing import Any

import dlt
from dlt.common.configuration import with_config
from dlt.extract.source import DltSource

from . import stripe_source
from .accounts import list_connected_accounts
from .client import API_BASE_ENV, DEFAULT_API_BASE, StripeApi
from .credentials import StripeCredentials, resolve_credentials
from .loading import load

__all__ = ["list_accounts", "platform_account", "pipeline_name", "account_pipeline", "account_source", "load_account"]


@with_config(sections=("sources", "stripe"))
def list_accounts(credentials: StripeCredentials | None = dlt.secrets.value, api_base: str | None = None) -> list[str]:
    """The platform's own account id, then the ids of its connected accounts (`GET /v1/accounts`,
    newest first; none for an account that is not a platform). Credentials are found as the
    source finds them: `[sources.stripe.credentials]`, SOURCES__STRIPE__CREDENTIALS__API_KEY or
    STRIPE_API_KEY; they must be the platform's own key."""
    api = _platform_api(credentials, api_base)
    return [api.get("/v1/account")["id"], *(account["id"] for account in list_connected_accounts(api))]


@with_config(sections=("sources", "stripe"))
def platform_account(credentials: StripeCredentials | None = dlt.secrets.value, api_base: str | None = None) -> str:
    """The platform's own account id (one request: `GET /v1/account`)."""
    return _platform_api(credentials, api_base).get("/v1/account")["id"]


def _platform_api(credentials: StripeCredentials | None, api_base: str | None) -> StripeApi:
    creds = resolve_credentials(credentials)
    return StripeApi(creds, (api_base or os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/"), pool_size=1)


def pipeline_name(account: str) -> str:
    return f"stripe_{account}"


def account_pipeline(account: str, destination: Any = "postgres", dataset: str = "stripe",
                     pipelines_dir: str | None = None) -> dlt.Pipeline:
    """The account's own pipeline; "postgres" is the source's PostgreSQL destination for concurrent
    writers, and any other dlt destination (name or factory) is used as given."""
    name = pipeline_name(account)
    if destination == "postgres":
        from .postgres import postgres_destination

        destination = postgres_destination(name)
    return dlt.pipeline(name, destination=destination, dataset_name=dataset, pipelines_dir=pipelines_dir)


def account_source(account: str, platform: str, **options: Any) -> DltSource:
    """The source for one account: the platform's own (`account == platform`), or a connected
    account read with the platform's key (`Stripe-Account`). `options` are stripe_source's."""
    connected = None if account == platform else account
    return stripe_source(credentials=StripeCredentials(stripe_account=connected), **options)


def load_account(account: str, platform: str, destination: Any = "postgres", dataset: str = "stripe",
                 pipelines_dir: str | None = None, **options: Any) -> dict[str, int]:
    """Load one account as `stripe-pipeline run` does (a package a killed run left is loaded
    first); returns the rows loaded per table. Raises the source's errors (`errors.py`)."""
    pipeline = account_pipeline(account, destination, dataset, pipelines_dir)
    return load(pipeline, account_source(account, platform, **options))
