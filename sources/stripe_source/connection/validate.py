"""The connection check: do the credentials reach the account, and what may they read?

One check for both entry points, so they cannot disagree: `connect` (and `connect --check`)
describes the account with `validate`; every run starts with `check_connection`, which raises
before anything is extracted. A key that cannot reach the account at all (revoked, or a platform
key with an account that is not connected) asks to re-authenticate (exit 3) in both; a restricted
key without a permission is "permission missing" (exit 4) for a run and a list for `connect`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe

from ..catalog import BY_TABLE, CATALOG, StripeObject, sub_list_of
from ..client import DEFAULT_API_BASE, DEFAULT_CONNECT_BASE, StripeApi
from ..credentials import StripeCredentials, mask, resolve_credentials
from ..errors import PermissionMissing, ReauthenticationRequired
from ..shaping import has_sub_list
from .tokens import TokenRefresher, refresher_for

logger = logging.getLogger(__name__)


@dataclass
class ConnectionReport:
    """What a successful validation learned about the account behind the credentials."""

    account_id: str | None
    name: str | None
    country: str | None
    livemode: bool
    key_type: str  # "secret", "restricted", "oauth" (Connect OAuth) or "stripe_app"
    masked_key: str  # keys as Stripe shows them; OAuth tokens are never shown, not even masked
    readable: dict[str, str] = field(default_factory=dict)  # table -> permission (restricted keys)
    unreadable: dict[str, str] = field(default_factory=dict)
    expires_at: int | None = None  # OAuth tokens that expire (Stripe Apps): Unix seconds, Stripe's clock
    refresh_expires_at: int | None = None
    now: int | None = None  # Stripe's clock when the report was made

    def lines(self) -> list[str]:
        out = [
            "Connection successful!",
            f"  Account:  {self.account_id or '(unknown)'}" + (f" ({self.name})" if self.name else ""),
            f"  Country:  {self.country or '(unknown)'}",
            f"  Mode:     {'live' if self.livemode else 'test'}",
            f"  Key type: {self.key_type} ({self.masked_key})",
        ]
        if self.expires_at is not None:
            out.append(f"  Access token expires:  {_when(self.expires_at, self.now)}; renewed automatically")
        if self.refresh_expires_at is not None:
            out.append(f"  Refresh token expires: {_when(self.refresh_expires_at, self.now)}; every renewal "
                       "replaces it")
        if self.key_type == "restricted":
            out.append("  Can read:    " + (", ".join(self.readable) or "nothing"))
            out.append(
                "  Cannot read: "
                + (", ".join(f"{t} (needs '{p}')" for t, p in self.unreadable.items()) or "nothing")
            )
        return out


@dataclass
class Access:
    """What one check found: the account (empty when the key may not read it) and per-table access."""

    account: Mapping[str, Any]
    account_readable: bool
    readable: dict[str, str]
    unreadable: dict[str, str]
    account_in_message: str | None = None  # a restricted key's 403 names the account


def key_type(credentials: StripeCredentials) -> str:
    """OAuth access tokens look like secret keys (sk_); the refresh token and scope tell them apart."""
    if credentials.is_app:
        return "stripe_app"
    return "oauth" if credentials.refresh_token else credentials.key_type


def validate(
    credentials: StripeCredentials | str | None,
    api_base: str = DEFAULT_API_BASE,
    *,
    connect_base: str = DEFAULT_CONNECT_BASE,
    probe_permissions: bool | None = None,
) -> ConnectionReport:
    """Prove the credentials work with one cheap read (GET /v1/account) and describe the account.

    A restricted key may lack `rak_account_read`: its 403 still proves the key is valid (an invalid
    one gets 401). Restricted keys then probe every catalog list (`limit=1`) to say what they can
    read; sub-lists share their parent's permission and are not probed. OAuth tokens that expire
    are renewed first when due (and stored where they came from).
    Raises `ReauthenticationRequired` on 401 (after one refresh for OAuth tokens).
    """
    credentials = resolve_credentials(credentials)
    # Few attempts: the user is waiting at a terminal, a dead network should fail in seconds.
    api = StripeApi(credentials, api_base, connect_base=connect_base, max_attempts=3)
    try:
        if probe_permissions is None:
            probe_permissions = credentials.key_type == "restricted"
        entries = [e for e in CATALOG if needs_probe(e)] if probe_permissions else []
        access = check_access(api, credentials, entries, strict=False)
        credentials = api.credentials
        return ConnectionReport(
            account_id=access.account.get("id") or credentials.stripe_account or access.account_in_message,
            name=_account_name(access.account),
            country=access.account.get("country"),
            livemode=credentials.livemode,
            key_type=key_type(credentials),
            masked_key="access token" if credentials.refresh_token else mask(credentials.api_key),
            readable=access.readable,
            unreadable=access.unreadable,
            expires_at=credentials.expires_at,
            refresh_expires_at=credentials.refresh_expires_at,
            now=api.server_time,
        )
    finally:
        api.close()


def check_connection(
    api: StripeApi, credentials: StripeCredentials, selection: Mapping[str, frozenset[str]]
) -> tuple[str | None, int | None, Mapping[str, Any]]:
    """The check every run starts with (`stripe_source`): (account id, its creation time, the account
    object as `/v1/account` gave it: empty when the key may not read it).

    Renews an OAuth token close to expiry, proves the credentials reach the account and, for
    restricted keys, that every selected resource can be read (and `events`, which later runs read
    to follow changes). Raises before anything is extracted: `ReauthenticationRequired` (exit 3)
    or `PermissionMissing` (exit 4).
    """
    entries: list[StripeObject] = []
    if credentials.key_type == "restricted":
        entries = [BY_TABLE[table] for root, tables in selection.items() for table in (root, *sorted(tables - {root}))
                   if table == root or needs_probe(BY_TABLE[table])]
        if "events" not in selection and any(entry.follows_events for entry in entries):
            entries.append(BY_TABLE["events"])  # runs after the first follow changes through /v1/events
    access = check_access(api, credentials, entries, strict=True)
    account_id = access.account.get("id") or api.credentials.stripe_account or access.account_in_message
    if access.unreadable:
        raise PermissionMissing(access.unreadable, account_id, follows_changes="events" not in selection)
    return account_id, access.account.get("created"), access.account


def check_access(
    api: StripeApi, credentials: StripeCredentials, entries: Iterable[StripeObject], *, strict: bool
) -> Access:
    """Read the account, renew an expiring OAuth token, then probe `entries` (`limit=1`).

    `strict`: a probe failing for another reason than a permission (an endpoint this account cannot
    use) raises, as the run would fail on it; otherwise it counts as unreadable and is logged.
    """
    refresher = _install_refresher(api, credentials)
    account: Mapping[str, Any] = {}
    readable_account, named = True, None
    try:
        account = api.get("/v1/account")
    except stripe.PermissionError as exc:
        _raise_if_no_account_access(exc, api.credentials)
        readable_account, named = False, _account_in_message(exc)
    if refresher is not None and refresher.due(api.credentials):
        api.auth.renew()  # before the run: a token about to expire is renewed now, not mid-page
    readable: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for entry in entries:
        if entry.path == "/v1/account":
            ok = readable_account
        elif entry.singleton:
            ok = _can_read(api, entry.path or "", strict, {})
        elif entry.parent is not None:
            ok = _can_read_items(api, entry, strict)
        else:
            ok = _can_read(api, entry.path or "", strict)
        (readable if ok else unreadable)[entry.table] = entry.permission
    return Access(account, readable_account, readable, unreadable, named)


def needs_probe(entry: StripeObject) -> bool:
    """Every table is probed, but sub-list items that share their parent's permission (invoice lines)."""
    return entry.parent is None or entry.permission != BY_TABLE[entry.parent].permission


def _can_read_items(api: StripeApi, entry: StripeObject, strict: bool) -> bool:
    """A sub-list's own permission, probed at its endpoint for the parent's first object (none: nothing
    to read, and no way to ask)."""
    sub = sub_list_of(entry)
    parent = BY_TABLE[entry.parent or ""]
    try:
        parents = api.get(parent.path or "", {"limit": 10})["data"]
    except stripe.StripeError:
        return True  # the parent's own probe reports it
    first = next((p["id"] for p in parents if has_sub_list(sub, p)), None)
    if first is None:
        return True
    try:
        api.get(sub.path.format(id=first), {"limit": 1, **{name: value.format(id=first) for name, value in sub.params}})
    except stripe.PermissionError as exc:
        _raise_if_no_account_access(exc, api.credentials)
        return False
    except stripe.InvalidRequestError:
        return True  # past the permission check: the object went meanwhile
    return True


def _install_refresher(api: StripeApi, credentials: StripeCredentials) -> TokenRefresher | None:
    """Give the client its token refresher (OAuth credentials only), with newer stored tokens taken first."""
    if not credentials.refresh_token:
        return None
    refresher = api.auth.refresh if isinstance(api.auth.refresh, TokenRefresher) else None
    if refresher is None and api.auth.refresh is None:
        refresher = refresher_for(credentials, api.api_base, api.connect_base,
                                  clock=lambda: api.server_time or time.time())
        api.auth.refresh = refresher
    if refresher is not None and refresher.adopt_stored(credentials):
        api.auth.use(credentials)  # another run rotated the tokens since these were read
    return refresher


def _can_read(api: StripeApi, path: str, strict: bool, params: dict[str, Any] | None = None) -> bool:
    try:
        api.get(path, {"limit": 1} if params is None else params)
    except stripe.PermissionError as exc:
        _raise_if_no_account_access(exc, api.credentials)
        return False
    except stripe.InvalidRequestError as exc:
        if strict:
            raise
        # Not a permission question (an endpoint this account cannot use): say so and move on.
        logger.info("Probe of %s failed with HTTP %s", path, exc.http_status)
        return False
    return True


def _raise_if_no_account_access(exc: stripe.StripeError, credentials: StripeCredentials) -> None:
    """A 403 naming no permission means the key cannot reach the account at all (Stripe-Account)."""
    message = str(exc.user_message or "")
    if "does not have access to account" in message or (
        credentials.key_type != "restricted" and "rak_" not in message
    ):
        raise ReauthenticationRequired(
            "the key has no access to this account: it is not connected, or access was revoked",
            credentials.stripe_account,
        ) from None


def _account_in_message(exc: stripe.StripeError) -> str | None:
    found = re.search(r"acct_[A-Za-z0-9]+", str(exc.user_message or ""))
    return found.group(0) if found else None


def _account_name(account: Mapping[str, Any]) -> str | None:
    profile = account.get("business_profile") or {}
    dashboard = (account.get("settings") or {}).get("dashboard") or {}
    return profile.get("name") or dashboard.get("display_name") or account.get("email")


def _when(moment: int, now: int | None) -> str:
    shown = datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%d %H:%M UTC")
    left = int(moment) - int(now or time.time())
    if left <= 0:
        return f"{shown} (expired)"
    if left < 7200:
        return f"{shown} (in {left // 60} min)"
    if left < 3 * 86400:
        return f"{shown} (in {left // 3600} h)"
    return f"{shown} (in {left // 86400} days)"
