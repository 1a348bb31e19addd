"""A Connect platform's accounts: `/v1/accounts`, deauthorization, and requests counted per account."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator

from .conftest import client_for


@pytest.fixture
def platform():
    with Emulator(seed=4, scale=60, connected_scales=[60, 60, 60, 60, 60]) as emu:
        yield emu


def test_lists_the_connected_accounts_newest_first_as_account_objects(platform: Emulator):
    client = client_for(platform)
    listed = list(client.v1.accounts.list(params={"limit": 2}).auto_paging_iter())
    assert [a.id for a in listed] == [a for a, _ in platform.listed_accounts()]
    assert set(a.id for a in listed) == set(platform.connected_account_ids)
    created = [a.created for a in listed]
    assert created == sorted(created, reverse=True) and len(set(created)) == len(created)
    first = listed[0].to_dict()
    assert first == platform.account_object(platform.store(first["id"]))
    assert first["object"] == "account" and first["type"] == "standard"
    assert first["external_accounts"]["url"] == f"/v1/accounts/{first['id']}/external_accounts"


def test_the_list_pages_both_ways_and_filters_on_created(platform: Emulator):
    order = [a for a, _ in platform.listed_accounts()]
    sdk = client_for(platform)

    def get(path: str, **params) -> dict:
        return sdk.raw_request("get", path, **params).data  # type: ignore[attr-defined]

    page = get("/v1/accounts", limit=2)
    assert [a["id"] for a in page["data"]] == order[:2] and page["has_more"] and page["url"] == "/v1/accounts"
    after = get("/v1/accounts", limit=2, starting_after=order[1])
    assert [a["id"] for a in after["data"]] == order[2:4]
    before = get("/v1/accounts", limit=2, ending_before=order[3])
    assert [a["id"] for a in before["data"]] == order[1:3]
    created = dict(platform.listed_accounts())
    middle = created[order[2]]
    window = get("/v1/accounts", **{"created[gte]": middle, "limit": 100})
    assert [a["id"] for a in window["data"]] == order[:3] and not window["has_more"]
    window = get("/v1/accounts", **{"created[lt]": middle, "limit": 100})
    assert [a["id"] for a in window["data"]] == order[3:]
    with pytest.raises(stripe.InvalidRequestError) as err:
        get("/v1/accounts", status="active")
    assert err.value.json_body["error"]["code"] == "parameter_unknown"


def test_an_account_that_is_not_a_platform_lists_none(platform: Emulator):
    # Stripe's reference: "If you're not a platform, the list is empty."
    connected = platform.connected_account_ids[0]
    own_key = platform.add_key(kind="secret", account=connected)
    assert client_for(platform, own_key).v1.accounts.list().data == []
    acting = client_for(platform).v1.accounts.list(options={"stripe_account": connected})
    assert acting.data == []
    # and it may not read another account
    with pytest.raises(stripe.PermissionError) as err:
        client_for(platform, own_key).v1.accounts.retrieve(platform.connected_account_ids[1])
    assert err.value.http_status == 403 and "Only Stripe Connect platforms" in err.value.user_message


def test_a_deauthorized_account_is_unlisted_refused_and_announced(platform: Emulator):
    client = client_for(platform)
    gone = platform.connected_account_ids[2]
    assert client.v1.customers.list(options={"stripe_account": gone}).data
    platform.deauthorize(gone)
    assert gone not in [a.id for a in client.v1.accounts.list(params={"limit": 100}).auto_paging_iter()]
    with pytest.raises(stripe.PermissionError) as err:
        client.v1.customers.list(options={"stripe_account": gone})
    body = err.value.json_body["error"]
    assert err.value.http_status == 403 and body["code"] == "account_invalid"
    assert f"does not have access to account '{gone}'" in body["message"]
    assert "Application access may have been revoked." in body["message"]
    assert platform.api_key not in body["message"]
    with pytest.raises(stripe.PermissionError):
        client.v1.accounts.retrieve(gone)
    (event,) = [e for e in client.v1.events.list(params={"type": "account.application.deauthorized"}).data]
    assert event.account == gone and event.data.object.object == "application"
    assert event.data.object.id == platform.client_id
    # the others are untouched
    other = platform.connected_account_ids[0]
    assert client.v1.customers.list(options={"stripe_account": other}).data
    platform.reconnect(gone)
    assert client.v1.customers.list(options={"stripe_account": gone}).data
    assert gone in [a.id for a in client.v1.accounts.list(params={"limit": 100}).auto_paging_iter()]
    assert client.v1.events.list(params={"type": "account.application.authorized"}).data[0].account == gone


def test_connect_oauth_deauthorize_disconnects_the_account(platform: Emulator):
    account = platform.connected_account_ids[1]
    client = client_for(platform, client_id=platform.client_id)
    client.oauth.deauthorize(params={"stripe_user_id": account})
    assert account in platform.deauthorized
    with pytest.raises(stripe.PermissionError):
        client.v1.charges.list(options={"stripe_account": account})


def test_requests_are_counted_per_account_read(platform: Emulator):
    client = client_for(platform)
    platform.reset_stats()
    first, second = platform.connected_account_ids[:2]
    client.v1.customers.list()
    client.v1.customers.list(options={"stripe_account": first})
    client.v1.charges.list(options={"stripe_account": first})
    client.v1.accounts.list()
    by_account = platform.stats()["by_account"]
    assert by_account[first] == {"GET /v1/customers": 1, "GET /v1/charges": 1}
    assert by_account[platform.account_id] == {"GET /v1/customers": 1, "GET /v1/accounts": 1}
    assert second not in by_account
