"""Keys, their errors as the SDK's typed exceptions, rate limits, and Stripe-Account scoping."""

from __future__ import annotations

import time

import pytest
import stripe

from stripe_emulator import Emulator, RateLimits

from .conftest import client_for


def test_unknown_key_is_401(world: Emulator):
    key = "sk_test_" + "unknown0000key9999"
    with pytest.raises(stripe.AuthenticationError) as err:
        client_for(world, key).v1.customers.list()
    assert err.value.http_status == 401
    assert err.value.user_message == "Invalid API Key provided: sk_test_**************9999"


def test_expired_key_is_401_api_key_expired(world: Emulator):
    key = world.add_key(kind="secret")
    world.expire_key(key)
    with pytest.raises(stripe.AuthenticationError) as err:
        client_for(world, key).v1.customers.list()
    assert err.value.http_status == 401 and err.value.json_body["error"]["code"] == "api_key_expired"


def test_revoked_key_is_401(world: Emulator):
    key = world.add_key(kind="secret")
    assert client_for(world, key).v1.customers.list().data
    world.revoke_key(key)
    with pytest.raises(stripe.AuthenticationError):
        client_for(world, key).v1.customers.list()


def test_restricted_key_reads_what_it_may_and_403s_naming_the_permission(world: Emulator):
    key = world.add_key(kind="restricted", permissions={"customers": "read"})
    assert key.startswith("rk_test_")
    client = client_for(world, key)
    assert client.v1.customers.list().data
    with pytest.raises(stripe.PermissionError) as err:
        client.v1.subscriptions.list()
    assert err.value.http_status == 403
    assert "'rak_subscription_read'" in err.value.user_message and world.account_id in err.value.user_message


def test_live_keys_are_live(world: Emulator):
    key = world.add_key(kind="secret", livemode=True)
    assert key.startswith("sk_" + "live_")
    assert client_for(world, key).v1.customers.list().data


def test_rate_limit_answers_429_as_rate_limit_error():
    with Emulator(seed=2, scale=100, connected_accounts=0, rate_limits=RateLimits(global_rps=5, endpoint_rps=3)) as emu:
        client = client_for(emu)
        with pytest.raises(stripe.RateLimitError) as err:
            for _ in range(10):
                client.v1.customers.list()
        assert err.value.http_status == 429 and err.value.json_body["error"]["code"] == "rate_limit"
        assert err.value.headers["Stripe-Rate-Limited-Reason"] == "endpoint-rate"
        # The overall bucket limits across endpoints.
        time.sleep(1.0)
        with pytest.raises(stripe.RateLimitError) as err:
            for resource in ("customers", "charges", "invoices") * 3:
                getattr(client.v1, resource).list()
        assert err.value.headers["Stripe-Rate-Limited-Reason"] == "global-rate"
        assert emu.stats()["rate_limited"] == 2


def test_rate_limits_presets():
    assert (RateLimits.live().global_rps, RateLimits.live().endpoint_rps) == (100, 25)
    assert (RateLimits.test().global_rps, RateLimits.test().endpoint_rps) == (25, 25)


def ids(objects) -> set[str]:
    return {o.id for o in objects}


def test_platform_key_reads_a_connected_account(world: Emulator, client):
    account = world.connected_account_ids[0]
    expected = [c["id"] for c in world.objects("customers", account=account)]
    listed = client.v1.customers.list(params={"limit": 100}, options={"stripe_account": account}).auto_paging_iter()
    assert [c.id for c in listed] == expected
    assert client.v1.accounts.retrieve_current(options={"stripe_account": account}).id == account


def test_connected_accounts_data_is_disjoint(world: Emulator, client):
    platform = ids(client.v1.customers.list(params={"limit": 100}).auto_paging_iter())
    seen = [platform]
    for account in world.connected_account_ids:
        theirs = ids(client.v1.customers.list(params={"limit": 100}, options={"stripe_account": account})
                     .auto_paging_iter())
        assert theirs and all(not theirs & other for other in seen)
        seen.append(theirs)
    # An id from one account is unknown in another.
    other = world.objects("customers", account=world.connected_account_ids[0])[0]["id"]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve(other)
    assert err.value.http_status == 404


def test_stripe_account_needs_a_platform_key(world: Emulator):
    connected = world.connected_account_ids[0]
    key = world.add_key(kind="secret", account=connected)  # the connected account's own key
    client = client_for(world, key)
    assert client.v1.customers.list().data
    with pytest.raises(stripe.PermissionError) as err:
        client.v1.customers.list(options={"stripe_account": world.account_id})
    assert err.value.http_status == 403
    with pytest.raises(stripe.PermissionError):
        client_for(world).v1.customers.list(options={"stripe_account": "acct_1doesnotexist00"})
