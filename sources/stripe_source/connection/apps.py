"""Stripe Apps OAuth: the install link, the code exchange, and uninstalling the app.

How a "Connect Stripe" button works today: the data team registers a Stripe App with
`stripe_api_access_type: oauth` and lists the CLI's loopback redirect in the manifest's
`allowed_redirect_uris`. The user installs the app from its install link
(`https://marketplace.stripe.com/oauth/v2/authorize?client_id=ca_...&redirect_uri=...&state=...`);
Stripe redirects back with a single-use code (valid 5 minutes), which the CLI exchanges at
`POST https://api.stripe.com/v1/oauth/token` with the app's secret key. The tokens answer with
`scope: "stripe_apps"`; they expire and rotate (`tokens.py` keeps them alive).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import stripe

from ..client import API_VERSION, DEFAULT_API_BASE, StripeApi
from ..credentials import APP_SCOPE, StripeCredentials
from ..errors import CONNECT_COMMAND, StripeSourceError
from .callback import OAUTH_TIMEOUT, receive_code
from .oauth_http import OAuthFailed, oauth_post
from .tokens import token_fields

DEFAULT_MARKETPLACE_BASE = "https://marketplace.stripe.com"
MARKETPLACE_BASE_ENV = "STRIPE_MARKETPLACE_BASE"  # where install links point (the emulator's, for local runs)
RETRY = f"{CONNECT_COMMAND} --app --client-id ca_..."


def install_link(
    client_id: str, redirect_uri: str, state: str, marketplace_base: str = DEFAULT_MARKETPLACE_BASE
) -> str:
    """The app's install link; Stripe redirects to `redirect_uri` (one of the manifest's
    `allowed_redirect_uris`) with `code` and `state` once the user has installed the app."""
    if not client_id.startswith("ca_"):
        raise OAuthFailed(
            "The Stripe App's client_id must start with ca_ (the app's page in the Dashboard, External test or "
            f"Settings): run `{RETRY}`"
        )
    query = {"client_id": client_id, "redirect_uri": redirect_uri, "state": state}
    return f"{marketplace_base.rstrip('/')}/oauth/v2/authorize?{urlencode(query)}"


def run_app_flow(
    client_id: str,
    app_key: str,
    *,
    api_base: str = DEFAULT_API_BASE,
    marketplace_base: str = DEFAULT_MARKETPLACE_BASE,
    app_id: str | None = None,
    open_browser: Callable[[str], Any] | None = None,
    announce: Callable[[str], None] = print,
    timeout: float = OAUTH_TIMEOUT,
    redirect_port: int = 0,
) -> StripeCredentials:
    """Install the app through its install link and return the installing account's credentials.

    `app_key`: the secret key of the account that owns the app (it exchanges the code and renews
    tokens). `app_id` (app_...), when given, is kept so `disconnect` can uninstall the app.
    """
    code = receive_code(
        lambda redirect_uri, state: install_link(client_id, redirect_uri, state, marketplace_base),
        retry=RETRY, redirect_port=redirect_port, timeout=timeout, announce=announce, open_browser=open_browser,
    )  # fmt: skip
    return exchange_app_code(code, app_key, client_id=client_id, api_base=api_base, app_id=app_id)


def exchange_app_code(
    code: str, app_key: str, *, client_id: str, api_base: str = DEFAULT_API_BASE, app_id: str | None = None
) -> StripeCredentials:
    """Trade the single-use code for the account's tokens (POST /v1/oauth/token, the app's key)."""
    token, issued_at = oauth_post(
        api_base.rstrip("/") + "/v1/oauth/token", app_key, {"grant_type": "authorization_code", "code": code},
        retry=RETRY,
    )  # fmt: skip
    if token.get("scope") != APP_SCOPE:
        raise OAuthFailed(
            f"Stripe answered with scope {token.get('scope')!r}, not a Stripe App's ({APP_SCOPE}): is {client_id} a "
            f"Connect client_id? Use `{CONNECT_COMMAND} --oauth` for Connect OAuth"
        )
    return StripeCredentials(
        stripe_account=token.get("stripe_user_id"), client_secret=app_key, client_id=client_id, scope=APP_SCOPE,
        app_id=app_id, **token_fields(token, issued_at),
    )  # fmt: skip


def uninstall(credentials: StripeCredentials, *, api_base: str = DEFAULT_API_BASE) -> str:
    """Uninstall the app from the account that installed it; returns that account.

    Stripe's Install API: the app's developer finds the install with `GET /v1/apps/installs?app=...`
    and uninstalls it with `POST /v1/apps/installs/{id}/uninstall`, both with the app's secret key
    and `Stripe-Account`. It needs the app's id (app_...), which the install link does not carry:
    without it the account's owner uninstalls the app in the Dashboard (the app's settings page).
    """
    account = credentials.stripe_account
    if not (credentials.app_id and account and credentials.client_secret):
        raise OAuthFailed(
            "the app's id (app_...) is not stored, so its install cannot be found: uninstall the app from its "
            f"settings page in the Stripe Dashboard of {account or 'the account'}, or connect with --app-id app_... "
            "next time"
        )
    key = str(credentials.client_secret)
    api = StripeApi(StripeCredentials(api_key=key, stripe_account=account), api_base, max_attempts=3)
    try:
        installs = api.get("/v1/apps/installs", {"app": credentials.app_id, "limit": 100})
    except stripe.StripeError as exc:
        raise OAuthFailed(f"Stripe refused to list the app's installs on {account} ({exc.code or exc.http_status})",
                          exc.code) from None
    except StripeSourceError as exc:
        raise OAuthFailed(f"Stripe refused to list the app's installs on {account} ({exc})") from None
    finally:
        api.close()
    found = [item["id"] for item in installs.get("data", []) if item.get("status") not in ("uninstalling",)]
    if not found:
        raise OAuthFailed(f"the app {credentials.app_id} is not installed on {account} (already uninstalled?)")
    for install_id in found:
        oauth_post(
            api_base.rstrip("/") + f"/v1/apps/installs/{install_id}/uninstall", key, {}, retry=RETRY,
            headers={"Stripe-Account": account, "Stripe-Version": API_VERSION},
        )  # fmt: skip
    return account
