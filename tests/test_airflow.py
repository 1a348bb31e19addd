"""Airflow (pipelines/airflow_stripe.py): the DAG run with `dag.test()` against the emulator, one
mapped task per account, into a real PostgreSQL database.

Airflow has its own virtualenv in CI (.ci/run: `.venv-airflow`, the `airflow` extra): with Airflow
installed, dlt also looks for secrets in Airflow's Variables, which every other test would then
pay for. Elsewhere this module is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is None:
    pytest.skip("Airflow is not installed (the airflow extra; CI runs this in .venv-airflow)", allow_module_level=True)
# Airflow reads its home and configuration when first imported: a home of its own, made here.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="stripe-airflow-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(AIRFLOW_HOME / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from dlt.common.configuration.container import Container  # noqa: E402
from dlt.common.configuration.specs import PluggableRunContext  # noqa: E402

from stripe_emulator import Emulator  # noqa: E402
from tests.helpers import assert_equals_emulator  # noqa: E402
from tests.processes import ROOT  # noqa: E402

DAG_FILE = ROOT / "pipelines" / "airflow_stripe.py"


@pytest.fixture(scope="module")
def airflow_db() -> Path:
    """Airflow's metadata database (SQLite) and a DAGs folder holding the DAG, as a deployment has."""
    (AIRFLOW_HOME / "dags").mkdir(exist_ok=True)
    shutil.copy(DAG_FILE, AIRFLOW_HOME / "dags")
    migrated = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], capture_output=True,
                              text=True, timeout=300, env=os.environ)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    yield AIRFLOW_HOME / "dags" / DAG_FILE.name
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


def test_dag_loads_every_account_in_its_own_mapped_task(airflow_db, postgres_url, monkeypatch):
    with Emulator(seed=19, scale=200) as emu:
        monkeypatch.setenv("STRIPE_API_KEY", emu.api_key)
        monkeypatch.setenv("STRIPE_API_BASE", emu.api_base)
        monkeypatch.setenv("STRIPE_DESTINATION", "postgres")
        accounts = [emu.account_id, *emu.connected_account_ids]
        spec = importlib.util.spec_from_file_location("airflow_stripe", airflow_db)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        Container()[PluggableRunContext].reload()  # dlt's config providers as the DAG file sets them

        run = module.stripe_accounts().test()
        assert run is not None and run.state == "success", run
        loads = [ti for ti in run.get_task_instances() if ti.task_id == "load"]
        assert sorted(ti.map_index for ti in loads) == list(range(len(accounts)))
        for account in accounts:
            assert_equals_emulator(emu, postgres_url, account)
