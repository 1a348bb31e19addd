"""Airflow: a Stripe platform's accounts loaded hourly, one mapped task per account.

    pip install 'dlt-source-stripe[airflow]'
    cp pipelines/airflow_stripe.py $AIRFLOW_HOME/dags/
    # in the workers' environment: the platform's key and the warehouse
    export STRIPE_API_KEY=sk_live_...
    export DESTINATION__POSTGRES__CREDENTIALS=postgresql://loader:...@warehouse:5432/analytics

`accounts` lists the platform's own account and its connected accounts (`/v1/accounts`) when the
run starts, so an account connected since the last run is loaded by this one; `load` is mapped
over them (dynamic task mapping): a task per account, each through its own dlt pipeline
(`stripe_<account>`) into the one dataset, retried on its own, its failure failing no other
account's task. Airflow's executor decides where they run: LocalExecutor, processes on one
machine; CeleryExecutor or KubernetesExecutor, workers or pods on many, at most
MAX_PARALLEL_ACCOUNTS at once per run. Parallel tasks need a destination that takes concurrent
writers (PostgreSQL, the default here, or a warehouse); with STRIPE_DESTINATION=duckdb the tasks
run one at a time.

Why not dlt's `PipelineTasksGroup`: it builds the source when the scheduler parses the DAG file,
which for this source means a request to Stripe on every parse, and it needs the accounts then;
mapping lists them when the run starts.
"""

import os
from datetime import datetime

try:
    from airflow.sdk import dag, task  # Airflow 3
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task

# Inside Airflow, dlt looks up every configuration key as an Airflow Variable: ~600 requests to
# Airflow's API per account loaded (two thirds of the test's time). Credentials come from the
# workers' environment instead; set this to "true" to keep them in Airflow Variables (dlt's
# `dlt_secrets_toml`), at that cost.
os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")

DESTINATION = os.environ.get("STRIPE_DESTINATION", "postgres")
DATASET = os.environ.get("STRIPE_DATASET", "stripe")
MAX_PARALLEL_ACCOUNTS = 1 if DESTINATION == "duckdb" else int(os.environ.get("STRIPE_MAX_PARALLEL_ACCOUNTS", "8"))


@dag(schedule="@hourly", start_date=datetime(2024, 1, 1), catchup=False, max_active_runs=1, tags=["stripe", "dlt"])
def stripe_accounts():
    @task
    def accounts() -> list[str]:
        from stripe_source.partitions import list_accounts

        return list_accounts()

    @task(retries=2, max_active_tis_per_dagrun=MAX_PARALLEL_ACCOUNTS)
    def load(account: str) -> dict[str, int]:
        """Rows loaded per table (the task's XCom)."""
        from stripe_source.partitions import load_account, platform_account

        return load_account(account, platform_account(), destination=DESTINATION, dataset=DATASET)

    load.expand(account=accounts())


stripe_accounts()
