"""How the source finds its Stripe credentials: dlt config/secrets first, then STRIPE_API_KEY."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from dlt.common.configuration.specs import CredentialsConfiguration, configspec
from dlt.common.typing import TSecretStrValue

from .errors import InvalidInput, MissingCredentials

API_KEY_ENV = "STRIPE_API_KEY"
KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")
# What Stripe's keys and OAuth tokens are made of; anything else (a newline from `$(cat key.txt)`, a
# space, a non-ASCII character) would only fail later, in an HTTP header error that quotes the key.
_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_]+")
_TOKEN_CHARACTERS = re.compile(r"[!-~]+")  # refresh tokens: printable ASCII, no spaces
_SECRET_FIELDS = ("api_key", "refresh_token", "client_secret")
APP_SCOPE = "stripe_apps"  # the `scope` Stripe answers for a Stripe App's OAuth tokens


@configspec
class StripeCredentials(CredentialsConfiguration):
    """`[sources.stripe.credentials]` in `.dlt/secrets.toml`, written by `stripe-pipeline connect`."""

    api_key: TSecretStrValue | None = None  # secret/restricted key or OAuth access token (or STRIPE_API_KEY)
    stripe_account: str | None = None  # acct_...: read this connected account (Stripe-Account header)
    refresh_token: TSecretStrValue | None = None  # OAuth: renews api_key when Stripe rejects it
    client_secret: TSecretStrValue | None = None  # OAuth: the platform's secret key, for refresh
    client_id: str | None = None  # OAuth: the platform's or the Stripe App's ca_... id
    # Stripe Apps OAuth: its access tokens expire after an hour, and every refresh rotates the refresh token
    scope: str | None = None  # OAuth: "stripe_apps" for a Stripe App's tokens, else Connect OAuth's scope
    expires_at: int | None = None  # when the access token expires (Unix seconds, Stripe's clock)
    refresh_expires_at: int | None = None  # when the refresh token expires
    app_id: str | None = None  # the Stripe App's app_... id: lets `disconnect` uninstall it
    # A writable TOML file where rotated tokens are kept when these credentials come from somewhere
    # read-only (environment variables in an orchestrator); see tokens.py.
    token_store: str | None = None

    def parse_native_representation(self, native_value: Any) -> None:
        if isinstance(native_value, str):  # SOURCES__STRIPE__CREDENTIALS="sk_test_..."
            self.api_key = native_value
        elif isinstance(native_value, Mapping):
            super().parse_native_representation(native_value)
        else:  # `credentials = 123` in secrets.toml: say where, never what (it may be a key)
            raise InvalidInput(
                f"[sources.stripe] credentials is a {type(native_value).__name__}, not a key or a table: "
                "run `stripe-pipeline connect` to store the key, or fix .dlt/secrets.toml"
            )

    @property
    def livemode(self) -> bool:
        token = str(self.api_key or "")
        if not token.startswith(KEY_PREFIXES) and self.client_secret:  # an app token tells no mode: its app key does
            token = str(self.client_secret)
        return "_live_" in token[:8]

    @property
    def is_app(self) -> bool:
        """Tokens of a Stripe App (OAuth install link): they expire and their refresh token rotates."""
        return self.scope == APP_SCOPE

    @property
    def key_type(self) -> str:
        return "restricted" if str(self.api_key or "").startswith("rk_") else "secret"


def resolve_credentials(credentials: StripeCredentials | str | None) -> StripeCredentials:
    """Fill in from STRIPE_API_KEY when dlt found nothing, and check the key's shape.

    The shape check runs before any request, so a pasted publishable key (pk_) or a typo fails
    with a clear message instead of a 401.
    """
    if isinstance(credentials, str):
        credentials = StripeCredentials(api_key=credentials)
    if credentials is not None:
        for name in (*_SECRET_FIELDS, "stripe_account"):  # a trailing newline is how keys usually arrive from files
            value = getattr(credentials, name)
            if value is not None:
                setattr(credentials, name, str(value).strip() or None)
        for name in ("expires_at", "refresh_expires_at"):  # Unix seconds, also when given as text in code
            value = getattr(credentials, name)
            if value is not None and not isinstance(value, int):
                try:
                    setattr(credentials, name, int(str(value).strip()))
                except ValueError:
                    raise InvalidInput(f"{name} must be Unix seconds, got {value!r}") from None
    if credentials is None or not credentials.api_key:
        env_key = os.environ.get(API_KEY_ENV, "").strip()
        if not env_key:
            raise MissingCredentials()
        credentials = credentials or StripeCredentials()
        credentials.api_key = env_key
    key = str(credentials.api_key)
    for name in _SECRET_FIELDS:
        value = getattr(credentials, name)
        allowed = _KEY_CHARACTERS if name == "api_key" else _TOKEN_CHARACTERS
        if value is not None and not allowed.fullmatch(str(value)):
            shown = "key" if name == "api_key" else name
            raise InvalidInput(
                f"The Stripe {shown} contains characters a Stripe key never has (spaces, line breaks or non-ASCII "
                "characters): copy it again from the Stripe Dashboard and run `stripe-pipeline connect`"
            )
    if key.startswith("pk_"):
        raise InvalidInput(
            "The Stripe key is a publishable key (pk_...): use a secret (sk_) or restricted (rk_) key, "
            "then run `stripe-pipeline connect`"
        )
    if not key.startswith(KEY_PREFIXES) and not credentials.is_app:  # an app's token comes from Stripe, not a paste
        raise InvalidInput(
            "The Stripe key does not look like a Stripe API key (expected sk_test_, sk_live_, rk_test_ "
            "or rk_live_): run `stripe-pipeline connect` to store a valid one"
        )
    if credentials.stripe_account and not re.fullmatch(r"acct_[A-Za-z0-9]+", credentials.stripe_account):
        raise InvalidInput(
            f"stripe_account must be a Stripe account id (acct_...), got {credentials.stripe_account!r}"
        )
    return credentials


def mask(secret: str | None) -> str:
    """Stripe's own way of showing a key: prefix and last four characters."""
    if not secret:
        return "(none)"
    secret = str(secret)
    prefix = secret[: secret.find("_", 3) + 1] if secret.count("_") >= 2 else ""
    return f"{prefix}****{secret[-4:]}"
