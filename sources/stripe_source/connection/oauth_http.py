"""One POST to Stripe's OAuth endpoints (code exchange, refresh, deauthorize, uninstall), errors in one line.

Plain `requests`, not the SDK's `oauth` service: the SDK logs request and response bodies at DEBUG,
and here both carry tokens. No retries: reusing an authorization code revokes the connection, and
a refresh that may have arrived has already rotated the refresh token, so a POST that may have
reached Stripe is never sent twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from ..answers import server_time
from ..client import user_agent
from ..credentials import mask
from ..errors import EXIT_REAUTHENTICATE, StripeSourceError, StripeUnavailable

HTTP_TIMEOUT = 30.0


class OAuthFailed(StripeSourceError):
    """OAuth did not produce tokens (denied, wrong state, bad code, timeout): nothing stored."""

    exit_code = EXIT_REAUTHENTICATE

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error  # Stripe's OAuth error code (invalid_grant, ...), when Stripe gave one


_MESSAGES = {
    "invalid_grant": "Stripe rejected the authorization (invalid_grant: the code or refresh token is "
    "unknown, expired, already used, or from the other mode than the key)",
    "invalid_client": "Stripe rejected the client_id (invalid_client: it does not belong to this key, "
    "or the account is not connected to it)",
    "invalid_scope": "Stripe rejected the OAuth scope (invalid_scope)",
    "access_denied": "Access was denied on Stripe's consent page",
}


def oauth_post(
    url: str, secret_key: str, data: Mapping[str, str], *, retry: str, headers: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], int | None]:
    """POST `data` to `url` with `secret_key` (the platform's or the app's); (JSON body, Stripe's clock).

    Stripe's clock comes from the answer's Date header: token lifetimes are counted on it, so a
    machine whose clock is off still renews in time. `retry` is the command the user runs when
    Stripe refuses (in the one-line error).
    """
    path = urlsplit(url).path
    try:
        response = requests.post(
            url,
            data=dict(data),
            # Bearer, as the SDK sends it; Stripe also takes the key as HTTP Basic user or `client_secret`.
            headers={"Authorization": f"Bearer {secret_key}", "User-Agent": user_agent(), **(headers or {})},
            timeout=HTTP_TIMEOUT,
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise StripeUnavailable(
            f"Stripe did not answer POST {path} ({type(exc).__name__}): check the network, --api-base or "
            "--connect-base, and try again"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body, dict):
        return body, server_time(response.headers)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # OAuth errors: {"error": "invalid_grant", "error_description": ...}
        message = _MESSAGES.get(error, f"Stripe's {path} returned {error}")
        raise OAuthFailed(f"{message}: run `{retry}` again", error)
    if response.status_code == 401:
        raise OAuthFailed(
            f"Stripe rejected the secret key ({mask(secret_key)}) on {path}: pass the current secret key to "
            f"`{retry}`", "invalid_client"
        )
    if isinstance(error, dict) and response.status_code < 500:  # the API's error object (/v1/apps/...)
        code = error.get("code") or error.get("type") or "an error"
        raise OAuthFailed(f"Stripe refused POST {path} ({code})", str(code))
    raise StripeUnavailable(f"Stripe answered POST {path} with HTTP {response.status_code}")


