"""Dagster: a Stripe platform's accounts as partitions of one set of dlt assets (dagster-dlt).

    pip install 'dlt-source-stripe[dagster]' dagster-webserver
    export STRIPE_API_KEY=sk_live_...                      # the platform's key
    export DESTINATION__POSTGRES__CREDENTIALS=postgresql://loader:...@warehouse:5432/analytics
    dagster dev -f pipelines/dagster_stripe.py

One asset per Stripe table (`dlt_stripe_charges`, ...), partitioned by account: the platform's own
and each connected account, kept current by the `stripe_accounts` sensor (the platform's
`/v1/accounts`, every 10 minutes: new accounts become partitions and are loaded at once, accounts
no longer connected stop being partitions; their rows stay). The `stripe_hourly` schedule loads
every partition. Each partition run loads its account through its own dlt pipeline
(`stripe_<account>`) into the one dataset, so runs of different accounts go in parallel: Dagster
starts a process per run (its run launcher), as many at once as its run queue allows
(`max_concurrent_runs` in dagster.yaml), on one machine or, with the Kubernetes or Docker run
launcher, a pod or container each. The destination must take concurrent writers: PostgreSQL
(the default here) or a warehouse. Set STRIPE_DESTINATION=duckdb to load a single DuckDB file, and
then keep `max_concurrent_runs: 1`.
"""

# No `from __future__ import annotations`: Dagster reads the context's annotation as a type.
import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, dlt_assets

from stripe_source.options import select_tables
from stripe_source.partitions import account_pipeline, account_source, list_accounts, platform_account

DESTINATION = os.environ.get("STRIPE_DESTINATION", "postgres")
DATASET = os.environ.get("STRIPE_DATASET", "stripe")

ACCOUNTS = dg.DynamicPartitionsDefinition(name="stripe_accounts")


@dlt.source(name="stripe")
def stripe_tables() -> Iterator[Any]:
    """The source's resources by name only, for Dagster's asset definitions: building the real
    source checks the connection with Stripe, which has no place in loading code locations."""
    for table in select_tables(None):
        yield dlt.resource([], name=table)


@dlt_assets(
    dlt_source=stripe_tables(),
    # for the assets' metadata only (destination, dataset): each partition runs its account's own pipeline
    dlt_pipeline=dlt.pipeline("stripe_dagster_assets", destination=DESTINATION, dataset_name=DATASET),
    name="stripe",
    group_name="stripe",
    partitions_def=ACCOUNTS,
)
def stripe_assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    account = context.partition_key
    source = account_source(account, platform=platform_account())  # the platform's own is read without Stripe-Account
    yield from dlt.run(context=context, dlt_source=source, dlt_pipeline=account_pipeline(account, DESTINATION, DATASET))


stripe_job = dg.define_asset_job("stripe_accounts_job", selection=[stripe_assets])  # partitioned as its assets are


@dg.sensor(job=stripe_job, minimum_interval_seconds=600)
def stripe_accounts(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Partitions follow the platform's accounts; a new account is loaded at once."""
    accounts = list_accounts()
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS.name))
    new = [a for a in accounts if a not in known]
    gone = sorted(known - set(accounts))
    requests = [ACCOUNTS.build_add_request(new)] if new else []
    if gone:
        requests.append(ACCOUNTS.build_delete_request(gone))
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=a, run_key=a) for a in new],
                           dynamic_partitions_requests=requests)


@dg.schedule(job=stripe_job, cron_schedule="0 * * * *")
def stripe_hourly(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    for account in context.instance.get_dynamic_partitions(ACCOUNTS.name):
        yield dg.RunRequest(partition_key=account)


defs = dg.Definitions(
    assets=[stripe_assets],
    jobs=[stripe_job],
    sensors=[stripe_accounts],
    schedules=[stripe_hourly],
    resources={"dlt": DagsterDltResource()},
)
