"""A Connect platform and its connected accounts in one run: which accounts, read how, with what outcome.

`stripe_source(accounts="all")` lists the platform's connected accounts (`/v1/accounts`) and loads
the platform and each of them into one dataset; `accounts=["acct_...", ...]` picks some. Each account
is an `AccountScope` (run.py): the platform's key sending `Stripe-Account`, the account's own
cursors and events feed. Every resource reads its accounts many at once (`FanOut`), through the same
per-account machinery a single-account run uses (`resource.AccountRead`). An account that fails (its
access revoked, Stripe giving up on it) is reported and the others go on; its cursors stay where they
were, so the next run reads it again from there, while the accounts that loaded cost that run only
what changed. `AccountsReport` holds each account's outcome: progress lines, the summary, the exit code.

Pacing: Stripe documents its rate limits per account and does not say which account's budget a
request with `Stripe-Account` spends, so by default every account's requests share the platform's
pacer (`pace="platform"`); `pace="per-account"` gives each account its own. Either slows down on 429s.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import stripe

from .client import PAGE_SIZE, Pacer, RateLimits, StripeApi
from .credentials import StripeCredentials
from .errors import (
    EXIT_LOAD_FAILED,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_REAUTHENTICATE,
    EXIT_SOME_ACCOUNTS_FAILED,
    InvalidInput,
    ReauthenticationRequired,
    StripeSourceError,
)
from .handoff import Handoff
from .pages import TableRows
from .run import AccountScope, Extraction

logger = logging.getLogger(__name__)

ALL = "all"
PACE_SCOPES = ("platform", "per-account")
# Accounts one resource reads at once. A small account costs a request or two per resource, ~300 ms
# each; with ~20 resources this keeps enough requests waiting for the pacer to use the whole budget.
ACCOUNTS_IN_FLIGHT = 16
_ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9]+")

LOADED, FAILED, REVOKED = "loaded", "failed", "revoked"


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


def check_pace(pace: str) -> str:
    if pace not in PACE_SCOPES:
        raise InvalidInput(f"pace must be one of {', '.join(PACE_SCOPES)}, got {pace!r}")
    return pace


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


@dataclass
class AccountOutcome:
    """How one account's part of the run ended."""

    account: str
    status: str = "pending"  # loaded, failed (retried next run), revoked (no access: retried next run)
    rows: Counter = field(default_factory=Counter)  # table -> rows read (tombstones included)
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    exit_code: int = EXIT_OK
    failed_resources: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "status": self.status, "rows": sum(self.rows.values()),
                "tables": dict(sorted(self.rows.items())), "requests": self.requests,
                "seconds": round(self.seconds, 3), "error": self.error}


class AccountsReport:
    """Each account's outcome in a run, told as each one ends (`on_account`, e.g. a progress line).

    An account ends when every resource has read it (or given up on it); its events feed is then let go.
    """

    def __init__(self, on_account: Callable[[AccountOutcome], None] | None = None) -> None:
        self.on_account = on_account
        self.platform = False  # the run reads a platform's accounts (`accounts=`), not the key's own alone
        self.outcomes: dict[str, AccountOutcome] = {}
        self.skipped: dict[str, str] = {}  # account -> why it was not read
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._pending: dict[str, set[str]] = {}
        self._first_start: dict[str, float] = {}
        self._scopes: dict[str, AccountScope] = {}
        self._apis: list[StripeApi] = []  # clients whose requests are the run's but no account's (listing)

    def expect(self, scopes: Sequence[AccountScope], resources: Sequence[str], base: StripeApi | None = None) -> None:
        """The accounts the run reads, and the resources each must be read by; `base`: the client of
        the run's own requests (the connection check, the list of accounts), when no account's."""
        with self._lock:
            for scope in scopes:
                self.outcomes[scope.account] = AccountOutcome(scope.account)
                self._pending[scope.account] = set(resources)
                self._scopes[scope.account] = scope
            if base is not None and all(scope.api is not base for scope in scopes):
                self._apis.append(base)

    def skip(self, account: str, reason: str) -> None:
        logger.warning("%s: %s", account, reason)
        with self._lock:
            self.skipped[account] = reason

    def start(self, account: str) -> None:
        with self._lock:
            self._first_start.setdefault(account, time.monotonic())

    def lost_access(self, account: str) -> bool:
        """Whether a read of this account was refused access already (the other resources need not ask)."""
        outcome = self.outcomes.get(account)
        return outcome is not None and outcome.status == REVOKED

    def finish(self, account: str, resource: str, rows: Counter) -> None:
        with self._lock:
            self.outcomes[account].rows.update(rows)
        self._done(account, resource)

    def pass_over(self, account: str, resource: str) -> None:
        """`resource` does not read `account` (it has failed for the rest already)."""
        self._done(account, resource)

    def fail(self, account: str, resource: str, error: BaseException) -> AccountOutcome:
        status, code, message = classify(error)
        with self._lock:
            outcome = self.outcomes[account]
            outcome.failed_resources.append(resource)
            if outcome.status != REVOKED:  # the first reason that explains the rest
                if outcome.error is None or status == REVOKED:
                    outcome.status, outcome.exit_code, outcome.error = status, code, message
        self._done(account, resource)
        return outcome

    def _done(self, account: str, resource: str) -> None:
        with self._lock:
            pending = self._pending.get(account)
            if pending is None or resource not in pending:
                return
            pending.discard(resource)
            if pending:
                return
            outcome = self._close(account)
        self._tell(outcome)

    def _close(self, account: str) -> AccountOutcome:
        del self._pending[account]
        outcome = self.outcomes[account]
        if outcome.status == "pending":
            outcome.status = LOADED
        scope = self._scopes.pop(account, None)
        if scope is not None:
            outcome.requests = scope.api.stats.requests
            scope.release()
        outcome.seconds = time.monotonic() - self._first_start.get(account, time.monotonic())
        return outcome

    def _tell(self, outcome: AccountOutcome) -> None:
        if outcome.status == LOADED:
            logger.info("%s: loaded %d rows in %d requests", outcome.account, sum(outcome.rows.values()),
                        outcome.requests)
        else:
            logger.warning("%s: %s: %s", outcome.account, outcome.status, outcome.error)
        if self.on_account is not None:
            self.on_account(outcome)

    def close(self) -> None:
        """End the accounts some resource never read (a source narrowed after it was built)."""
        with self._lock:
            closed = [self._close(account) for account in list(self._pending)]
        for outcome in closed:
            self._tell(outcome)

    # --- the run as a whole
    @property
    def exit_code(self) -> int:
        """0 when every account loaded; EXIT_SOME_ACCOUNTS_FAILED when some did not; when none did,
        the first failure's code (re-authenticate, permission, Stripe unavailable...)."""
        outcomes = list(self.outcomes.values())
        failed = [o for o in outcomes if o.status not in (LOADED, "pending")]
        if not failed:
            return EXIT_OK
        if len(failed) < len(outcomes):
            return EXIT_SOME_ACCOUNTS_FAILED
        return failed[0].exit_code

    @property
    def status(self) -> str:
        code = self.exit_code
        if code == EXIT_OK:
            return "loaded"
        return "some_accounts_failed" if code == EXIT_SOME_ACCOUNTS_FAILED else "failed"

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.outcomes.values()) + sum(api.stats.requests for api in self._apis)

    def summary(self, tables: Mapping[str, int] | None = None, error: str | None = None) -> dict[str, Any]:
        """What an orchestrator reads (`--summary-json`): the run, then each account."""
        status, code = ("failed", None) if error else (self.status, self.exit_code)
        outcomes = [o.as_dict() for o in self.outcomes.values()]
        return {
            "status": status, "exit_code": code, "error": error,
            "seconds": round(time.monotonic() - self.started, 3), "requests": self.requests,
            "rows": sum(tables.values()) if tables is not None else sum(o["rows"] for o in outcomes),
            "tables": dict(sorted((tables or {}).items())),
            "accounts": outcomes,
            "skipped": [{"account": account, "reason": reason} for account, reason in self.skipped.items()],
        }


def classify(error: BaseException) -> tuple[str, int, str]:
    """(status, exit code, one line) of an account's failure; never the key (Stripe echoes it masked)."""
    if isinstance(error, ReauthenticationRequired):
        return REVOKED, EXIT_REAUTHENTICATE, str(error)
    if isinstance(error, stripe.PermissionError):
        message = str(error.user_message or "")
        body = (getattr(error, "json_body", None) or {}).get("error") or {}
        if body.get("code") == "account_invalid" or "does not have access to account" in message:
            return REVOKED, EXIT_REAUTHENTICATE, ("the platform's key has no access to this account (it was "
                                                  "deauthorized, or access was revoked)")
        named = re.search(r"'(rak_\w+)'", message)
        needs = f" (needs '{named.group(1)}')" if named else ""
        return FAILED, EXIT_PERMISSION, f"the key was refused a read of this account{needs}"
    if isinstance(error, StripeSourceError):
        return FAILED, error.exit_code, str(error)
    if isinstance(error, stripe.StripeError):
        return FAILED, EXIT_LOAD_FAILED, f"Stripe answered HTTP {error.http_status}: {error.user_message or error}"
    return FAILED, EXIT_LOAD_FAILED, f"{type(error).__name__}: {error}"


class FanOut:
    """How a resource reads its accounts. Isolating (a platform's run): `in_flight` accounts at once,
    each on a thread of its own, rows handed to the resource's generator through a bounded queue, and
    an account's failure reported, not raised. Otherwise: one after another on the generator's thread,
    and a failure is the run's."""

    def __init__(self, report: AccountsReport, thread_prefix: str = "", *, isolate: bool = True,
                 in_flight: int = ACCOUNTS_IN_FLIGHT) -> None:
        self.report = report
        self.thread_prefix = thread_prefix
        self.isolate = isolate
        self.in_flight = in_flight

    def rows(self, resource: str, reads: Sequence[Any]) -> Iterator[TableRows]:
        """Rows of every read (`resource.AccountRead`) of `resource`."""
        if not self.isolate:
            for read in reads:
                yield from self._in_turn(resource, read)
            return
        yield from self._at_once(resource, reads)

    def _in_turn(self, resource: str, read: Any) -> Iterator[TableRows]:
        self.report.start(read.account)
        counted: Counter = Counter()
        try:
            for rows in read.rows():
                counted[rows.table] += rows.count
                yield rows
        except Exception as exc:
            self.report.fail(read.account, resource, exc)
            raise
        self.report.finish(read.account, resource, counted)

    def _at_once(self, resource: str, reads: Sequence[Any]) -> Iterator[TableRows]:
        if not reads:
            return
        handoff = Handoff(2 * self.in_flight, producers=len(reads))

        def read_one(read: Any) -> None:
            account = read.account
            try:
                if handoff.stopped:
                    return
                if self.report.lost_access(account):  # another resource was refused already: no use asking
                    self.report.pass_over(account, resource)
                    return
                self.report.start(account)
                counted: Counter = Counter()
                try:
                    for rows in read.rows():
                        counted[rows.table] += rows.count
                        if not handoff.put(rows):
                            return
                except Exception as exc:  # the account's failure, not the run's
                    self.report.fail(account, resource, exc)
                    return
                self.report.finish(account, resource, counted)
            except BaseException as exc:  # an interrupt (Ctrl-C, SIGTERM): the run's, re-raised where dlt sees it
                handoff.fail(exc)
            finally:
                handoff.done()

        # threads named like dlt's pools see its context (the pipeline's state) as the resource's own thread does
        pool = ThreadPoolExecutor(max_workers=min(self.in_flight, len(reads)),
                                  thread_name_prefix=f"{self.thread_prefix}stripe-{resource}")
        try:
            for read in reads:
                pool.submit(read_one, read)
            yield from handoff.items()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

