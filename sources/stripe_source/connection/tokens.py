"""Token lifetime: when an OAuth access token must be renewed, and renewing it without losing it.

A Stripe App's access token expires after an hour and its refresh token after a year; every
refresh returns a new refresh token and invalidates the old one. A refresh is therefore a
rotation, and these rules keep a connection from being stranded:

- The new tokens are stored (atomically, 0600) before the new access token is used. A crash after
  the store loses nothing; a crash between Stripe's answer and the store leaves a refresh token
  Stripe no longer takes, which the next run reports as "re-authenticate" (exit 3), never silently.
- Refresh-and-store runs under a lock on the store, and each refresher first rereads the store:
  two runs (cron overlap, two orchestrator workers) share one rotation instead of invalidating each
  other. A refresh answered `invalid_grant` rereads once more, for stores whose lock another
  machine cannot see (a network filesystem).
- Credentials that cannot be written back (environment variables) rotate only into a token store
  (`token_store`: a writable file kept between runs); without one, a run that must rotate stops
  with a message that says so instead of throwing the only valid refresh token away.

Connect OAuth's access token does not expire and its refresh token stays valid: it is renewed only
when Stripe refuses the access token, and written back where it came from.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client import DEFAULT_API_BASE, DEFAULT_CONNECT_BASE
from ..credentials import APP_SCOPE, StripeCredentials
from ..errors import InvalidInput, ReauthenticationRequired
from .oauth_http import OAuthFailed, oauth_post
from .storage import locked, read_credentials, save_credentials, secrets_path

logger = logging.getLogger(__name__)

REFRESH_MARGIN = 300  # renew a token with less than this left (seconds) before a run starts
APP_ACCESS_SECONDS = 3600  # Stripe Apps: an access token lives an hour
APP_REFRESH_SECONDS = 365 * 86400  # and a refresh token a year
TOKEN_FIELDS = ("api_key", "refresh_token", "expires_at", "refresh_expires_at")  # what a rotation changes
_STORE_FIELDS = ("stripe_account", "client_id", "scope", *TOKEN_FIELDS)  # what a token store keeps
_process_lock = threading.Lock()  # refreshes without a store: one at a time in this process


def token_fields(token: dict[str, Any], issued_at: int | None) -> dict[str, Any]:
    """The credential fields an answer of Stripe's token endpoint sets (a code exchange or a refresh).

    Lifetimes count from Stripe's clock when it gave one (the answer's Date header). Stripe's
    documented lifetimes apply when the answer does not state them (`expires_in`).
    """
    issued_at = issued_at or int(time.time())
    fields: dict[str, Any] = {"api_key": token["access_token"], "expires_at": None, "refresh_expires_at": None}
    if token.get("refresh_token"):
        fields["refresh_token"] = token["refresh_token"]
    if token.get("scope") == APP_SCOPE or token.get("expires_in"):
        fields["expires_at"] = issued_at + int(token.get("expires_in") or APP_ACCESS_SECONDS)
        fields["refresh_expires_at"] = issued_at + int(token.get("refresh_token_expires_in") or APP_REFRESH_SECONDS)
    return fields


def is_due(credentials: StripeCredentials, now: float) -> bool:
    """The access token expires within `REFRESH_MARGIN` seconds (or has expired)."""
    return credentials.expires_at is not None and int(credentials.expires_at) - now <= REFRESH_MARGIN


@dataclass
class TokenStore:
    """A TOML file that holds the newest tokens of one connection, for every process to reread.

    `origin` (token stores only, not secrets.toml): a fingerprint of the refresh token the
    credentials were configured with. The stored tokens descend from it; when the configured token
    changes (the user connected again), the store's older chain is ignored and then replaced.
    """

    path: Path
    origin: str | None = None

    def read(self, credentials: StripeCredentials) -> StripeCredentials | None:
        """The stored tokens of the same connection (account and client), or None."""
        found = read_credentials(self.path)
        if found is None:
            return None
        stored, extra = found
        if self.origin is not None and extra.get("origin") != self.origin:
            return None
        if not stored.refresh_token or not _same_connection(stored, credentials):
            return None
        return stored

    def write(self, credentials: StripeCredentials) -> None:
        # No dlt reload: this may run on an extract thread mid-run; the next reader rereads the file.
        fields, extra = (TOKEN_FIELDS, None) if self.origin is None else (_STORE_FIELDS, {"origin": self.origin})
        save_credentials(credentials, path=self.path, fields=fields, extra=extra, reload=False)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.path)


def token_store_for(
    credentials: StripeCredentials, project_dir: str | Path | None = None
) -> TokenStore | None:
    """Where rotated tokens of these credentials go: their `token_store` file, else the project's
    secrets.toml when it holds this connection (`connect` wrote it), else nowhere."""
    if credentials.token_store:
        return TokenStore(Path(str(credentials.token_store)).expanduser(), origin=_fingerprint(credentials))
    path = secrets_path(project_dir)
    found = read_credentials(path)
    if found is not None and _same_connection(found[0], credentials):
        return TokenStore(path)
    return None


@dataclass(kw_only=True, eq=False)
class TokenRefresher:
    """Renews OAuth access tokens: the `refresh` callable `StripeApi` calls when Stripe refuses one.

    `clock` tells Stripe's time (the client's last Date header), against which lifetimes count.
    """

    api_base: str = DEFAULT_API_BASE
    connect_base: str = DEFAULT_CONNECT_BASE
    store: TokenStore | None = None
    clock: Callable[[], float] = time.time

    def due(self, credentials: StripeCredentials) -> bool:
        return is_due(credentials, self.clock())

    def adopt_stored(self, credentials: StripeCredentials) -> bool:
        """Take newer tokens of this connection from the store (another run renewed them); True if taken."""
        if self.store is None:
            return False
        with self.store.lock():
            return self._adopt(credentials)

    def __call__(self, credentials: StripeCredentials) -> StripeCredentials:
        """Credentials whose access token works: another run's newer one, or one renewed now.

        Changes `credentials` in place (the client shares them) and returns them. Raises
        `ReauthenticationRequired` when Stripe refuses the refresh token, `InvalidInput` when a
        Stripe App's rotation would have nowhere to be kept.
        """
        account = credentials.stripe_account
        if not (credentials.refresh_token and credentials.client_secret):
            raise ReauthenticationRequired("no refresh token is stored", account)
        used = credentials.api_key
        with self._lock():
            if self._adopt(credentials) and credentials.api_key != used and not self.due(credentials):
                logger.info("Using the access token another run renewed for %s", account or "the account")
                return credentials
            if credentials.is_app and self.store is None:
                raise InvalidInput(
                    f"The Stripe App's access token for {account or 'the account'} must be renewed, which rotates "
                    "its refresh token, but these credentials come from environment variables with nowhere to keep "
                    "the new one: set SOURCES__STRIPE__CREDENTIALS__TOKEN_STORE to a writable file kept between "
                    "runs, or run `stripe-pipeline connect --app` in the project"
                )
            try:
                token, issued_at = self._post(credentials)
            except OAuthFailed as exc:
                # `invalid_grant` may mean another process rotated the token and stored the new one
                # after we reread the store (its lock did not reach us): take that one.
                spent = exc.error == "invalid_grant"
                if spent and self._adopt(credentials, spent=True) and credentials.api_key != used:
                    return credentials
                raise ReauthenticationRequired(_refused_reason(credentials, exc), account) from None
            fields = token_fields(token, issued_at)
            if self.store is not None:
                # before the new access token is used: a crash now loses nothing
                self.store.write(_updated(copy.copy(credentials), fields))
            _updated(credentials, fields)
        logger.info("Renewed the OAuth access token for %s", account or "the account")
        return credentials

    def _post(self, credentials: StripeCredentials) -> tuple[dict[str, Any], int | None]:
        if credentials.is_app:  # Stripe Apps renew at the API; Connect OAuth at connect.stripe.com
            url, retry = self.api_base.rstrip("/") + "/v1/oauth/token", "stripe-pipeline connect --app"
        else:
            url, retry = self.connect_base.rstrip("/") + "/oauth/token", "stripe-pipeline connect --oauth"
        data = {"grant_type": "refresh_token", "refresh_token": str(credentials.refresh_token)}
        return oauth_post(url, str(credentials.client_secret), data, retry=retry)

    def _adopt(self, credentials: StripeCredentials, spent: bool = False) -> bool:
        """Take the stored tokens when they are newer than ours; `spent`: Stripe refused our refresh
        token, so any other stored for this connection is the one to try."""
        stored = self.store.read(credentials) if self.store is not None else None
        if stored is None or (stored.api_key, stored.refresh_token) == (credentials.api_key, credentials.refresh_token):
            return False
        if stored.refresh_token == credentials.refresh_token:
            newer = True  # Connect OAuth: the refresh token stays; another run renewed the access token
        else:  # a rotation, or a connection made again (`connect` just got these): the later issue wins
            newer = spent or (stored.expires_at or 0) > (credentials.expires_at or 0)
        if not newer:
            return False
        for name in TOKEN_FIELDS:
            setattr(credentials, name, getattr(stored, name))
        return True

    def _lock(self) -> contextlib.AbstractContextManager[Any]:
        return _process_lock if self.store is None else self.store.lock()


def refresher_for(
    credentials: StripeCredentials,
    api_base: str = DEFAULT_API_BASE,
    connect_base: str = DEFAULT_CONNECT_BASE,
    *,
    clock: Callable[[], float] = time.time,
    project_dir: str | Path | None = None,
) -> TokenRefresher | None:
    """The refresher for these credentials (None without a refresh token), storing where they came from."""
    if not credentials.refresh_token:
        return None
    return TokenRefresher(api_base=api_base, connect_base=connect_base,
                          store=token_store_for(credentials, project_dir), clock=clock)


def refresh_access_token(
    credentials: StripeCredentials,
    *,
    api_base: str = DEFAULT_API_BASE,
    connect_base: str = DEFAULT_CONNECT_BASE,
    project_dir: str | Path | None = None,
) -> StripeCredentials:
    """Renew the access token now, in place, persisting the new tokens where the credentials came from."""
    refresher = refresher_for(credentials, api_base, connect_base, project_dir=project_dir)
    if refresher is None:
        raise ReauthenticationRequired("no refresh token is stored", credentials.stripe_account)
    return refresher(credentials)


def _refused_reason(credentials: StripeCredentials, exc: OAuthFailed) -> str:
    if exc.error == "invalid_client":
        key = "the app's" if credentials.is_app else "the platform's"
        return f"Stripe refused {key} secret key that renews the access token"
    if credentials.is_app:
        return "the Stripe App's refresh token was revoked, has expired or was already used; was the app uninstalled?"
    return "the OAuth refresh token was revoked or has expired"


def _same_connection(a: StripeCredentials, b: StripeCredentials) -> bool:
    return a.client_id == b.client_id and a.stripe_account == b.stripe_account


def _fingerprint(credentials: StripeCredentials) -> str:
    return hashlib.sha256(str(credentials.refresh_token or "").encode()).hexdigest()[:16]


def _updated(credentials: StripeCredentials, fields: dict[str, Any]) -> StripeCredentials:
    for name, value in fields.items():
        setattr(credentials, name, value)
    return credentials
