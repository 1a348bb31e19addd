"""Connect OAuth end to end through the SDK: consent, code exchange, single use, expiry, refresh, revoke."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import requests
import stripe

from stripe_emulator import Emulator

from .conftest import client_for

REDIRECT = "http://127.0.0.1:9/callback"


def consent(emu: Emulator, state: str = "st4te") -> dict[str, str]:
    """Open the authorize URL like a browser and read the redirect's query."""
    url = client_for(emu, client_id=emu.client_id).oauth.authorize_url(
        params={"scope": "read_only", "state": state, "redirect_uri": REDIRECT})
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def exchange(emu: Emulator, **params) -> stripe.OAuth.OAuthToken:
    return client_for(emu).oauth.token(params=params)  # type: ignore[arg-type]


def test_authorize_then_token_reads_the_connected_account(own_world: Emulator):
    answer = consent(own_world)
    assert answer["state"] == "st4te" and answer["code"].startswith("ac_")
    token = exchange(own_world, grant_type="authorization_code", code=answer["code"])
    account = token.stripe_user_id
    assert account in own_world.connected_account_ids and token.token_type == "bearer"
    reader = client_for(own_world, token.access_token)
    listed = [c.id for c in reader.v1.customers.list(params={"limit": 100}).auto_paging_iter()]
    assert listed == [c["id"] for c in own_world.objects("customers", account=account)]
    assert reader.v1.accounts.retrieve_current().id == account


def test_reused_code_is_invalid_grant_and_revokes_its_tokens(own_world: Emulator):
    code = consent(own_world)["code"]
    token = exchange(own_world, grant_type="authorization_code", code=code)
    with pytest.raises(stripe.oauth_error.InvalidGrantError):
        exchange(own_world, grant_type="authorization_code", code=code)
    with pytest.raises(stripe.AuthenticationError):
        client_for(own_world, token.access_token).v1.customers.list()


def test_code_expires_after_five_minutes(own_world: Emulator):
    code = consent(own_world)["code"]
    own_world.advance(seconds=6 * 60)
    with pytest.raises(stripe.oauth_error.InvalidGrantError) as err:
        exchange(own_world, grant_type="authorization_code", code=code)
    assert "expired" in str(err.value)


def test_unknown_code_and_bad_client(own_world: Emulator):
    with pytest.raises(stripe.oauth_error.InvalidGrantError):
        exchange(own_world, grant_type="authorization_code", code="ac_madeup")
    code = consent(own_world)["code"]
    stranger = client_for(own_world, "sk_test_" + "notaplatformkey0000")
    with pytest.raises(stripe.oauth_error.InvalidClientError):
        stranger.oauth.token(params={"grant_type": "authorization_code", "code": code})


def test_denied_consent_redirects_with_access_denied(own_world: Emulator):
    own_world.oauth_consent = "deny"
    answer = consent(own_world, state="xyz")
    assert answer["error"] == "access_denied" and answer["state"] == "xyz" and "code" not in answer


def test_refresh_token_grant_issues_a_working_token(own_world: Emulator):
    first = exchange(own_world, grant_type="authorization_code", code=consent(own_world)["code"])
    again = exchange(own_world, grant_type="refresh_token", refresh_token=first.refresh_token)
    assert again.access_token != first.access_token and again.stripe_user_id == first.stripe_user_id
    assert client_for(own_world, again.access_token).v1.customers.list().data
    with pytest.raises(stripe.oauth_error.InvalidGrantError):
        exchange(own_world, grant_type="refresh_token", refresh_token="rt_madeup")


def test_deauthorize_revokes_access(own_world: Emulator):
    token = exchange(own_world, grant_type="authorization_code", code=consent(own_world)["code"])
    platform = client_for(own_world, client_id=own_world.client_id)
    assert platform.oauth.deauthorize(params={"stripe_user_id": token.stripe_user_id}).stripe_user_id == \
        token.stripe_user_id
    with pytest.raises(stripe.AuthenticationError):
        client_for(own_world, token.access_token).v1.customers.list()
    with pytest.raises(stripe.oauth_error.InvalidGrantError):
        exchange(own_world, grant_type="refresh_token", refresh_token=token.refresh_token)
