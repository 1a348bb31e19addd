"""Dagster (pipelines/dagster_stripe.py): account partitions materialized against the emulator,
in-process and with the multiprocess executor, into a real PostgreSQL database."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from stripe_emulator import Emulator
from tests.helpers import assert_equals_emulator, ids
from tests.processes import ROOT

dg = pytest.importorskip("dagster", reason="the dagster extra is not installed")
dagster_dlt = pytest.importorskip("dagster_dlt", reason="the dagster extra is not installed")

DEFINITIONS = ROOT / "pipelines" / "dagster_stripe.py"


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch):
    with Emulator(seed=17, scale=200) as emulator:
        monkeypatch.setenv("STRIPE_API_KEY", emulator.api_key)
        monkeypatch.setenv("STRIPE_API_BASE", emulator.api_base)
        monkeypatch.setenv("DAGSTER_DISABLE_TELEMETRY", "1")
        yield emulator


def definitions(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The definitions file as `dagster dev -f` loads it."""
    spec = importlib.util.spec_from_file_location("dagster_stripe", DEFINITIONS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dagster_stripe", module)
    spec.loader.exec_module(module)
    return module


def refresh_partitions(module: ModuleType, instance) -> list[str]:
    """One evaluation of the accounts sensor, applied as the daemon applies it."""
    result = module.stripe_accounts(dg.build_sensor_context(instance=instance))
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return [run.partition_key for run in result.run_requests]


def test_two_account_partitions_materialize_exactly(emu, postgres_url, monkeypatch):
    module = definitions(monkeypatch)
    instance = dg.DagsterInstance.ephemeral()
    accounts = [emu.account_id, *emu.connected_account_ids]
    assert sorted(refresh_partitions(module, instance)) == sorted(accounts)  # all new: each gets a run
    assert sorted(instance.get_dynamic_partitions("stripe_accounts")) == sorted(accounts)
    assert refresh_partitions(module, instance) == []

    platform, connected, untouched = accounts
    for account in (platform, connected):
        result = dg.materialize([module.stripe_assets], partition_key=account, instance=instance,
                                resources={"dlt": dagster_dlt.DagsterDltResource()})
        assert result.success
        materialized = {m.asset_key.path[-1] for m in result.asset_materializations_for_node("stripe")}
        assert "dlt_stripe_charges" in materialized
    for account in (platform, connected):
        assert_equals_emulator(emu, postgres_url, account)
    assert ids(postgres_url, "charges", account=untouched) == []

    emu.deauthorize(untouched)  # no longer listed: no longer a partition
    assert refresh_partitions(module, instance) == []
    assert sorted(instance.get_dynamic_partitions("stripe_accounts")) == sorted([platform, connected])


def test_partitions_run_in_parallel_processes(emu, postgres_url, monkeypatch, tmp_path):
    """Two partition runs at once, as Dagster runs them: each run a process (`dagster asset
    materialize`), each step in a process of its own (the multiprocess executor), one instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    accounts = emu.connected_account_ids
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("stripe_accounts", accounts)
    executor = json.dumps({"execution": {"config": {"multiprocess": {}}}})
    runs = {account: subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-f", str(DEFINITIONS),
         "--select", "*", "--partition", account, "--config-json", executor],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for account in accounts}
    for account, run in runs.items():
        output, _ = run.communicate(timeout=180)
        assert run.returncode == 0, f"{account}:\n{output[-3000:]}"
        assert "STEP_WORKER_STARTED" in output or "Launching subprocess" in output, output[-3000:]
    for account in accounts:
        assert_equals_emulator(emu, postgres_url, account)
    assert ids(postgres_url, "charges", account=emu.account_id) == []
