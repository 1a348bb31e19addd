"""A Connect platform and its connected accounts in one run: which accounts, read how, with what outcome.

`stripe_source(accounts="all")` lists the platform's connected accounts (`/v1/accounts`) and loads
the platform and each of them into one dataset; `accounts=["acct_...", ...]` picks some. Each account
is an `AccountScope` (run.py): the platform's key sending `Stripe-Account`, the account's own
cursors and events feed. Every resource reads its accounts many at once (`fan_out.py`), through the
same per-account machinery a single-account run uses (`account_read.AccountRead`); each account's
outcome is reported (`account_report.py`).

Pacing: Stripe documents its rate limits per account and does not say which account's budget a
request with `Stripe-Account` spends, so by default every account's requests share the platform's
pacer (`pace="platform"`); `pace="per-account"` gives each account its own. Either slows down on 429s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .account_report import AccountsReport
from .client import PAGE_SIZE, Pacer, RateLimits, StripeApi
from .credentials import StripeCredentials
from .errors import InvalidInput
from .run import AccountScope, Extraction

ALL = "all"
PACE_SCOPES = ("platform", "per-account")
_ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9]+")


def parse_accounts(value: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    """`accounts` as given (None: the key's own account; "all"; ids as a list or separated by commas)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == ALL:
            return ALL
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if isinstance(value, bytes | Mapping) or not isinstance(value, Sequence) or not value:
        raise InvalidInput(f"accounts must be 'all' or Stripe account ids (acct_...) separated by commas, "
                           f"got {value!r}")
    wrong = [str(account) for account in value if not isinstance(account, str) or not _ACCOUNT_ID.fullmatch(account)]
    if wrong:
        raise InvalidInput(f"accounts: {', '.join(repr(w) for w in wrong)} is not a Stripe account id: give ids "
                           "like acct_1Nv0FGQ9RKHgCVdK separated by commas, or 'all'")
    return tuple(dict.fromkeys(value))


def check_pace(pace: str) -> None:
    if pace not in PACE_SCOPES:
        raise InvalidInput(f"pace must be one of {', '.join(PACE_SCOPES)}, got {pace!r}")


def check_platform_credentials(credentials: StripeCredentials) -> None:
    """Reading connected accounts takes the platform's own key: not a connected account's, not an OAuth token."""
    if credentials.stripe_account:
        raise InvalidInput(
            f"the credentials read the connected account {credentials.stripe_account}: loading a platform's "
            "accounts needs the platform's own key, without stripe_account"
        )
    if credentials.refresh_token:
        raise InvalidInput("loading a platform's accounts needs the platform's secret key (sk_...), not an OAuth "
                           "token: run `stripe-pipeline connect` with the platform key")


def list_connected_accounts(api: StripeApi) -> list[dict]:
    """The platform's connected accounts, newest first (`/v1/accounts`; empty for an account that is
    not a platform, as Stripe documents)."""
    accounts: list[dict] = []
    after: str | None = None
    while True:
        page = api.get("/v1/accounts", {"limit": PAGE_SIZE, "starting_after": after})
        data = page.get("data") or []
        accounts.extend(data)
        if not page.get("has_more") or not data:
            return accounts
        after = data[-1]["id"]


def platform_scopes(run: Extraction, api: StripeApi, wanted: str | tuple[str, ...], platform: Mapping[str, Any],
                    platform_created: int | None, limits: RateLimits, pace: str, report: AccountsReport,
                    loaded_before: Sequence[str] = ()) -> list[AccountScope]:
    """One scope per account to read: the platform first, then its connected accounts (oldest first), or
    the accounts asked for. Accounts an earlier run loaded that the platform no longer lists are skipped."""
    platform_id = str(platform.get("id") or run.owner)
    run.listed_accounts = list_connected_accounts(api)  # the `accounts` table is this list: read once a run
    # Oldest first: older accounts tend to hold more, and a large account read last is a run's long tail
    # (its pages can only go as fast as one endpoint's limit while the rest of the budget idles).
    listed = {account["id"]: account for account in sorted(run.listed_accounts,
                                                            key=lambda a: (a.get("created") or 0, a["id"]))}
    if wanted == ALL:
        ids = [platform_id, *listed]
        for gone in sorted(set(loaded_before) - set(ids)):
            report.skip(gone, "no longer connected to the platform (deauthorized, or removed): not read; its "
                              "rows stay in the dataset")
    else:
        ids = list(wanted)  # one not listed is read all the same: Stripe's answer says why it cannot be
    if platform_id in ids:  # the platform's Connect lists learn from these accounts' events what changed
        run.connected = frozenset(ids) - {platform_id}
    scopes = []
    for account in ids:
        pacer = Pacer(limits) if pace == "per-account" else api.pacer
        if account == platform_id:
            view, created, obj = api.for_account(None, pacer), platform_created, platform
        else:
            obj = listed.get(account) or {}
            view, created = api.for_account(account, pacer), obj.get("created")
        scopes.append(AccountScope(run, view, account, created, obj, inline=True))
    return scopes
