"""Fixtures for the emulator's own tests: a shared read-only world and a client per key."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import stripe

from stripe_emulator import Emulator


@pytest.fixture(scope="package")
def world() -> Iterator[Emulator]:
    """Read-only: tests that change data or the clock start their own (`own_world`)."""
    with Emulator(seed=5, scale=3000) as emu:
        yield emu


@pytest.fixture
def own_world() -> Iterator[Emulator]:
    with Emulator(seed=9, scale=300) as emu:
        yield emu


def client_for(emu: Emulator, key: str | None = None, **options) -> stripe.StripeClient:
    return stripe.StripeClient(key or emu.api_key, base_addresses={"api": emu.api_base, "connect": emu.connect_base},
                               **options)


@pytest.fixture(scope="package")
def client(world: Emulator) -> stripe.StripeClient:
    return client_for(world)


@pytest.fixture
def raw(world: Emulator) -> Callable[..., dict]:
    """GET a path with exact query parameters; returns the decoded body (errors raise the SDK's types)."""
    sdk = client_for(world)

    def get(path: str, **params) -> dict:
        return sdk.raw_request("get", path, **params).data  # type: ignore[attr-defined]

    return get
