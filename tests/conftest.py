"""Shared fixtures: a running Stripe emulator and an isolated dlt project per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs import PluggableRunContext
from dlt.common.pipeline import PipelineContext

from stripe_emulator import Emulator
from tests import postgres
from tests.postgres import PostgresServer

# Never read a developer's real key or dlt settings from the environment.
for _name in list(os.environ):
    if _name == "STRIPE_API_KEY" or _name.startswith(("SOURCES__", "DESTINATION__")):
        del os.environ[_name]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked `shared_load` first: xdist's worksteal gives each worker a contiguous half of the
    tests and steals from the end of a queue, so their tests stay on one worker, which loads once."""
    items.sort(key=lambda item: item.get_closest_marker("shared_load") is None)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """A shared read-only world; tests that change data start their own (`fresh_emulator`)."""
    with Emulator(seed=7, scale=1000) as emu:
        yield emu


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    with Emulator(seed=11, scale=600) as emu:
        yield emu


@pytest.fixture(autouse=True)
def dlt_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run every test in its own dlt project dir: .dlt/, pipelines and DuckDB files under tmp_path."""
    yield from isolated_project(tmp_path, monkeypatch)


def isolated_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A dlt project dir under `root` for as long as the generator runs (fixtures of any scope)."""
    project = root / "project"
    (project / ".dlt").mkdir(parents=True)
    (root / "local").mkdir()
    monkeypatch.setenv("DLT_PROJECT_DIR", str(project))
    monkeypatch.setenv("DLT_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("DLT_LOCAL_DIR", str(root / "local"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    # The emulator enforces no limits unless a test asks; pacing at test mode's 25 req/s would only
    # slow the suite down (pacing has its own tests).
    monkeypatch.setenv("SOURCES__STRIPE__MAX_REQUESTS_PER_SECOND", "5000")
    monkeypatch.setenv("SOURCES__STRIPE__MAX_REQUESTS_PER_ENDPOINT", "5000")
    monkeypatch.chdir(project)
    Container()[PluggableRunContext].reload()
    yield project
    if Container()[PipelineContext].is_active():
        Container()[PipelineContext].deactivate()
    Container()[PluggableRunContext].reload()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (tests/postgres.py); skipped only where none can start."""
    try:
        server = postgres.start()
    except postgres.PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL cannot start on this machine: {exc}")
    try:
        yield server
    finally:
        postgres.remove(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of that server, given to dlt's postgres destination as a run would get it."""
    url = postgres_server.url(postgres_server.create_database())
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
    return url
