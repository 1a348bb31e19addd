"""Injected faults as the SDK sees them, and the counters that report them."""

from __future__ import annotations

import pytest
import requests
import stripe

from stripe_emulator import Emulator, FaultConfig

from .conftest import client_for


def test_scheduled_500_is_api_error_and_retried_when_asked():
    with Emulator(seed=3, scale=100, connected_accounts=0, faults=FaultConfig(schedule={1: "500", 3: "500"})) as emu:
        with pytest.raises(stripe.APIError) as err:
            client_for(emu).v1.customers.list()
        assert err.value.http_status == 500 and err.value.headers["Stripe-Should-Retry"] == "true"
        assert client_for(emu).v1.customers.list().data  # request 2
        assert client_for(emu, max_network_retries=2).v1.customers.list().data  # 3 fails, 4 answers
        stats = emu.stats()
        assert stats["requests"]["GET /v1/customers"] == 4
        assert stats["faults_injected"] == 2 and stats["by_status"][500] == 2


def test_lock_timeout_is_a_retryable_429():
    with Emulator(seed=3, scale=100, connected_accounts=0, faults=FaultConfig(schedule={1: "lock_timeout",
                                                                                       3: "lock_timeout"})) as emu:
        with pytest.raises(stripe.RateLimitError) as err:
            client_for(emu).v1.charges.list()
        assert err.value.json_body["error"]["code"] == "lock_timeout"
        assert err.value.headers["Stripe-Should-Retry"] == "true"
        assert client_for(emu).v1.charges.list().data
        assert client_for(emu, max_network_retries=1).v1.charges.list().data


def test_reset_is_a_connection_error():
    with Emulator(seed=3, scale=100, connected_accounts=0, faults=FaultConfig(schedule={1: "reset"})) as emu:
        with pytest.raises(stripe.APIConnectionError):
            client_for(emu).v1.customers.list()
        assert client_for(emu).v1.customers.list().data
        assert emu.stats()["faults_injected"] == 1


def test_random_faults_are_seeded():
    def outcomes() -> list[int]:
        with Emulator(seed=3, scale=100, connected_accounts=0, faults=FaultConfig(error_rate=0.3, seed=42)) as emu:
            session = requests.Session()
            auth = {"Authorization": f"Bearer {emu.api_key}"}
            return [session.get(emu.api_base + "/v1/customers", headers=auth, timeout=5).status_code
                    for _ in range(30)]
    first = outcomes()
    assert first == outcomes() and 500 in first and 200 in first


def test_stats_count_per_endpoint_template_and_reset(own_world: Emulator):
    client = client_for(own_world)
    own_world.reset_stats()
    client.v1.customers.list()
    client.v1.customers.list()
    ids = [c["id"] for c in own_world.objects("customers")[:2]]
    for customer_id in ids:
        client.v1.customers.retrieve(customer_id)
    invoice = own_world.objects("invoices")[0]["id"]
    client.v1.invoices.line_items.list(invoice)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.list(params={"limit": 500})
    answer = requests.get(own_world.api_base + "/_emulator/stats", timeout=5).json()
    assert answer["requests"] == {"GET /v1/customers": 3, "GET /v1/customers/{id}": 2,
                                  "GET /v1/invoices/{id}/lines": 1}
    assert answer["requests_total"] == 6 and answer["by_status"] == {"200": 5, "400": 1}
    assert answer["rate_limited"] == 0 and answer["faults_injected"] == 0
    assert requests.post(own_world.api_base + "/_emulator/stats/reset", timeout=5).status_code == 200
    assert own_world.stats()["requests_total"] == 0
