"""What came back from a server (or why nothing did), in words for an error message; and whether
an answer is Stripe's at all, or a proxy's or a web server's page; refusals raised as the SDK's errors."""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import NoReturn

import orjson
import stripe
import urllib3

from .errors import NotStripe, ReauthenticationRequired, StripeUnavailable
from .retries import GiveUp


def looks_like_a_stripe_object(body: bytes) -> bool:
    """Cheaply (pages are parsed elsewhere): a JSON object that names its `object`, as all of Stripe's do."""
    return body[:64].lstrip()[:1] == b"{" and body[-64:].rstrip()[-1:] == b"}" and b'"object"' in body


def stripe_error_body(response: urllib3.BaseHTTPResponse) -> dict | None:
    """Stripe's `{"error": {...}}`, or None when the body is something else."""
    try:
        body = orjson.loads(response.data)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def what_came(response: urllib3.BaseHTTPResponse) -> str:
    """A short description of a body, for a message: its type and its first characters."""
    body = response.data or b""
    error = stripe_error_body(response)
    if error is not None:
        return f"Stripe's error {str(error.get('message') or error.get('type') or 'without a message')[:80]!r}"
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
    if not body.strip():
        return f"an empty body ({kind})"
    text = " ".join(body[:200].decode("utf-8", "replace").split())
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text!r}"


def auth_failure_reason(exc: stripe.StripeError) -> str:
    """The short reason of an auth error without the (masked) key Stripe echoes in its message."""
    # The SDK leaves `code` unset on AuthenticationError; the parsed error body has it.
    code = getattr(exc, "code", None) or getattr(getattr(exc, "error", None), "code", None)
    if code == "api_key_expired":
        return "the key or access token has expired"
    if code in ("invalid_api_key", None):
        return "the key is invalid or was revoked"
    return str(code)


def server_time(headers: Mapping[str, str]) -> int | None:
    """Stripe's clock, from an answer's Date header."""
    date = headers.get("Date")
    try:
        return int(parsedate_to_datetime(date).timestamp()) if date else None
    except (TypeError, ValueError):
        return None


def raise_refusal(sdk: stripe.StripeClient, response: urllib3.BaseHTTPResponse, url: str,
                  account: str | None) -> NoReturn:
    """Raise what the SDK would raise for this refusal; 401 becomes our re-authenticate error.

    An answer without Stripe's error object (a proxy's or a web server's page) is not Stripe's:
    the SDK would fail on it with a traceback, so it is named as such instead.
    """
    if stripe_error_body(response) is None:
        raise NotStripe(url, response.status, what_came(response))
    try:
        sdk._requestor._interpret_response(response.data, response.status, response.headers, "V1")
    except stripe.AuthenticationError as exc:
        raise ReauthenticationRequired(auth_failure_reason(exc), account) from None
    raise stripe.APIError(f"Unexpected HTTP {response.status} from Stripe")  # not reached


def parse_object(body: bytes, url: str) -> dict:
    """A successful answer's JSON object; anything else is not Stripe's."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        text = " ".join(body[:60].decode("utf-8", "replace").split())
        raise NotStripe(url, 200, f"malformed JSON {text!r}")
    return parsed


def unavailable(why: GiveUp, api_base: str, path: str, attempts: int, reason: str) -> StripeUnavailable:
    """The error for requests that never got an answer: a wrong address or no network (`UNREACHABLE`,
    nothing ever answered), or Stripe gone silent after answering."""
    if why is GiveUp.UNREACHABLE:
        return StripeUnavailable(f"Cannot reach {api_base} ({reason}): check --api-base (or STRIPE_API_BASE, "
                                 "[sources.stripe] api_base), the network and any proxy, then run again")
    return StripeUnavailable(f"Stripe did not answer GET {api_base}{path} after {attempts} attempts ({reason}): "
                             "check the network or Stripe's status page and run again")


def kept_failing(url: str, response: urllib3.BaseHTTPResponse, attempts: int) -> StripeUnavailable:
    return StripeUnavailable(f"Stripe answered GET {url} with HTTP {response.status} {attempts} times "
                             f"({what_came(response)}): check Stripe's status page and run again")
