"""Stripe Apps OAuth as the emulator serves it: install link, codes, expiring and rolling tokens, uninstall."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import requests
import stripe

from stripe_emulator import Emulator

from .conftest import client_for

REDIRECT = "http://127.0.0.1:9/stripe/callback"


def install(emu: Emulator, state: str = "st4te", redirect: str = REDIRECT) -> dict[str, str]:
    """Open the install link like a browser and read the redirect's query."""
    answer = requests.get(f"{emu.api_base}/oauth/v2/authorize", allow_redirects=False, timeout=5,
                          params={"client_id": emu.apps.client_id, "redirect_uri": redirect, "state": state})
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(redirect + "?")
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def token(emu: Emulator, key: str | None = None, **form: str) -> requests.Response:
    return requests.post(f"{emu.api_base}/v1/oauth/token", data=form, timeout=5,
                         headers={"Authorization": f"Bearer {key or emu.api_key}"})


def exchange(emu: Emulator) -> dict:
    answer = token(emu, grant_type="authorization_code", code=install(emu)["code"])
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_install_link_gives_a_code_that_reads_the_installing_account(own_world: Emulator):
    answer = install(own_world)
    assert answer["state"] == "st4te" and answer["code"].startswith("ac_")
    tokens = token(own_world, grant_type="authorization_code", code=answer["code"]).json()
    assert tokens["scope"] == "stripe_apps" and tokens["livemode"] is False and tokens["token_type"] == "bearer"
    account = tokens["stripe_user_id"]
    assert account == own_world.connected_account_ids[0]
    assert client_for(own_world, tokens["access_token"]).v1.accounts.retrieve_current().id == account


def test_the_install_link_redirects_only_to_an_allowed_uri(own_world: Emulator):
    own_world.apps.allowed_redirect_uris = ["https://example.com/callback/stripe"]
    refused = requests.get(f"{own_world.api_base}/oauth/v2/authorize", allow_redirects=False, timeout=5,
                           params={"client_id": own_world.apps.client_id, "redirect_uri": REDIRECT, "state": "s"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_redirect_uri"
    assert install(own_world, redirect="https://example.com/callback/stripe")["code"].startswith("ac_")
    unknown = requests.get(f"{own_world.api_base}/oauth/v2/authorize", allow_redirects=False, timeout=5,
                           params={"client_id": "ca_unknown", "redirect_uri": REDIRECT})
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_client"


def test_a_code_is_single_use_and_lives_five_minutes(own_world: Emulator):
    code = install(own_world)["code"]
    first = token(own_world, grant_type="authorization_code", code=code).json()
    replay = token(own_world, grant_type="authorization_code", code=code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    with pytest.raises(stripe.AuthenticationError):  # a replayed code revokes what it issued
        client_for(own_world, first["access_token"]).v1.customers.list()
    late = install(own_world)["code"]
    own_world.advance(seconds=5 * 60 + 1)
    expired = token(own_world, grant_type="authorization_code", code=late)
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]


def test_access_tokens_expire_after_an_hour_and_refresh_tokens_roll(own_world: Emulator):
    first = exchange(own_world)
    reader = client_for(own_world, first["access_token"])
    own_world.advance(seconds=3599)
    reader.v1.customers.list()
    own_world.advance(seconds=1)
    with pytest.raises(stripe.AuthenticationError) as refused:
        reader.v1.customers.list()
    assert refused.value.http_status == 401 and "Expired API Key" in str(refused.value)
    second = token(own_world, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"] and second["scope"] == "stripe_apps"
    client_for(own_world, second["access_token"]).v1.customers.list()
    again = token(own_world, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "This refresh token has already been used"}
    third = token(own_world, grant_type="refresh_token", refresh_token=second["refresh_token"]).json()
    with pytest.raises(stripe.AuthenticationError):  # a refresh revokes the access token it replaces
        client_for(own_world, second["access_token"]).v1.customers.list()
    own_world.advance(days=366)
    late = token(own_world, grant_type="refresh_token", refresh_token=third["refresh_token"])
    assert late.status_code == 400 and "expired" in late.json()["error_description"]


def test_only_the_apps_key_exchanges(own_world: Emulator):
    other = own_world.add_key(kind="secret", account=own_world.connected_account_ids[1])
    answer = token(own_world, key=other, grant_type="authorization_code", code=install(own_world)["code"])
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_the_install_api_uninstalls_and_revokes_every_token(own_world: Emulator):
    tokens = exchange(own_world)
    account = tokens["stripe_user_id"]
    headers = {"Authorization": f"Bearer {own_world.api_key}", "Stripe-Account": account}
    listed = requests.get(f"{own_world.api_base}/v1/apps/installs", params={"app": own_world.apps.app_id},
                          headers=headers, timeout=5).json()
    assert [i["account"] for i in listed["data"]] == [account] and listed["data"][0]["status"] == "installed"
    install_id = listed["data"][0]["id"]
    done = requests.post(f"{own_world.api_base}/v1/apps/installs/{install_id}/uninstall", headers=headers, timeout=5)
    assert done.status_code == 200 and done.json()["status"] == "uninstalling"
    with pytest.raises(stripe.AuthenticationError):
        client_for(own_world, tokens["access_token"]).v1.customers.list()
    refused = token(own_world, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert requests.get(f"{own_world.api_base}/v1/apps/installs", params={"app": own_world.apps.app_id},
                        headers=headers, timeout=5).json()["data"] == []
