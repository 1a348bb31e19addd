"""Each account's outcome in a run: progress lines, the summary an orchestrator reads, the exit code.

An account that fails (its access revoked, Stripe giving up on it) is reported and the others go on;
its cursors stay where they were, so the next run reads it again from there, while the accounts that
loaded cost that run only what changed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import stripe

from .client import StripeApi
from .errors import (
    EXIT_LOAD_FAILED,
    EXIT_OK,
    EXIT_PERMISSION,
    EXIT_REAUTHENTICATE,
    EXIT_SOME_ACCOUNTS_FAILED,
    ReauthenticationRequired,
    StripeSourceError,
)
from .run import AccountScope

logger = logging.getLogger(__name__)

LOADED, FAILED, REVOKED = "loaded", "failed", "revoked"


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

    def note_failure(self, error: BaseException) -> None:
        """A read of this account failed; the first reason that explains the rest is kept."""
        status, code, message = classify(error)
        if self.status != REVOKED and (self.error is None or status == REVOKED):
            self.status, self.exit_code, self.error = status, code, message

    def log(self) -> None:
        if self.status == LOADED:
            logger.info("%s: loaded %d rows in %d requests", self.account, sum(self.rows.values()), self.requests)
        else:
            logger.warning("%s: %s: %s", self.account, self.status, self.error)

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
        self.pass_over(account, resource)

    def fail(self, account: str, resource: str, error: BaseException) -> None:
        with self._lock:
            self.outcomes[account].note_failure(error)
        self.pass_over(account, resource)

    def pass_over(self, account: str, resource: str) -> None:
        """`resource` is done with `account`: read it, failed, or did not read it (it has failed for the
        rest already)."""
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
        outcome.log()
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
        return run_exit_code(self.outcomes.values())

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.outcomes.values()) + sum(api.stats.requests for api in self._apis)

    def summary(self, tables: Mapping[str, int] | None = None, error: str | None = None) -> dict[str, Any]:
        """What an orchestrator reads (`--summary-json`): the run, then each account."""
        code = None if error else self.exit_code
        status = {EXIT_OK: "loaded", EXIT_SOME_ACCOUNTS_FAILED: "some_accounts_failed"}.get(code, "failed")
        outcomes = [o.as_dict() for o in self.outcomes.values()]
        return {
            "status": status, "exit_code": code, "error": error,
            "seconds": round(time.monotonic() - self.started, 3), "requests": self.requests,
            "rows": sum(tables.values()) if tables is not None else sum(o["rows"] for o in outcomes),
            "tables": dict(sorted((tables or {}).items())),
            "accounts": outcomes,
            "skipped": [{"account": account, "reason": reason} for account, reason in self.skipped.items()],
        }


def run_exit_code(outcomes: Iterable[AccountOutcome]) -> int:
    """0 when every account loaded; EXIT_SOME_ACCOUNTS_FAILED when some did not; when none did, the
    first failure's code (re-authenticate, permission, Stripe unavailable...)."""
    outcomes = list(outcomes)
    failed = [o for o in outcomes if o.status not in (LOADED, "pending")]
    if not failed:
        return EXIT_OK
    if len(failed) < len(outcomes):
        return EXIT_SOME_ACCOUNTS_FAILED
    return failed[0].exit_code


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
