"""Connect OAuth ("Connect with Stripe"): consent at connect.stripe.com, code exchange, deauthorize.

Stripe no longer lets new platforms register read-only "extensions" and points them to Stripe
Apps (`apps.py`); this flow stays for platforms that have Connect OAuth already. Its access token
does not expire and its refresh token does not rotate (`tokens.py` renews it if Stripe refuses it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from ..client import DEFAULT_CONNECT_BASE
from ..credentials import StripeCredentials
from ..errors import CONNECT_COMMAND
from .callback import OAUTH_TIMEOUT, receive_code
from .oauth_http import OAuthFailed, oauth_post

SCOPES = ("read_only", "read_write")
RETRY = f"{CONNECT_COMMAND} --oauth --client-id ca_..."


def authorize_url(
    client_id: str,
    redirect_uri: str,
    state: str,
    scope: str = "read_only",
    connect_base: str = DEFAULT_CONNECT_BASE,
) -> str:
    """Stripe's consent page for `client_id` (ca_...); Stripe redirects back with `code` and `state`."""
    if not client_id.startswith("ca_"):
        raise OAuthFailed(
            "The Connect client_id must start with ca_ (Dashboard > Settings > Connect > Onboarding "
            f"options > OAuth): run `{RETRY}`"
        )
    if scope not in SCOPES:
        raise OAuthFailed(f"OAuth scope must be one of {', '.join(SCOPES)}, got '{scope}'")
    query = {
        "response_type": "code",
        "client_id": client_id,
        "scope": scope,
        "state": state,
        "redirect_uri": redirect_uri,
    }
    return f"{connect_base.rstrip('/')}/oauth/authorize?{urlencode(query)}"


def run_oauth_flow(
    client_id: str,
    platform_key: str,
    *,
    scope: str = "read_only",
    connect_base: str = DEFAULT_CONNECT_BASE,
    open_browser: Callable[[str], Any] | None = None,
    announce: Callable[[str], None] = print,
    timeout: float = OAUTH_TIMEOUT,
    redirect_port: int = 0,
) -> StripeCredentials:
    """The whole "Connect with Stripe" dance; returns credentials for the connected account.

    `announce` shows the authorize URL (always: the user may be on a machine without a browser);
    `open_browser` (e.g. `webbrowser.open`) is called with it when given. `redirect_port`: where
    the redirect is received (0: any free port; Stripe needs the redirect URI registered).
    """
    code = receive_code(
        lambda redirect_uri, state: authorize_url(client_id, redirect_uri, state, scope, connect_base),
        retry=RETRY, redirect_port=redirect_port, timeout=timeout, announce=announce, open_browser=open_browser,
    )  # fmt: skip
    return exchange_code(code, platform_key, client_id=client_id, connect_base=connect_base)


def exchange_code(
    code: str, platform_key: str, *, client_id: str | None = None, connect_base: str = DEFAULT_CONNECT_BASE
) -> StripeCredentials:
    """Trade the single-use code for the connected account's tokens (POST /oauth/token)."""
    token, _ = oauth_post(
        connect_base.rstrip("/") + "/oauth/token", platform_key,
        {"grant_type": "authorization_code", "code": code}, retry=RETRY,
    )  # fmt: skip
    return StripeCredentials(
        api_key=token["access_token"],
        stripe_account=token.get("stripe_user_id"),
        refresh_token=token.get("refresh_token"),
        client_secret=platform_key,
        client_id=client_id,
        scope=token.get("scope"),
    )


def deauthorize(credentials: StripeCredentials, *, connect_base: str = DEFAULT_CONNECT_BASE) -> str:
    """Disconnect the connected account from the platform (POST /oauth/deauthorize)."""
    if not (credentials.client_id and credentials.stripe_account and credentials.client_secret):
        raise OAuthFailed("The stored credentials are not from Connect OAuth: nothing to deauthorize")
    answer, _ = oauth_post(
        connect_base.rstrip("/") + "/oauth/deauthorize",
        str(credentials.client_secret),
        {"client_id": credentials.client_id, "stripe_user_id": credentials.stripe_account},
        retry=RETRY,
    )
    return str(answer.get("stripe_user_id") or credentials.stripe_account)
