"""When a request to Stripe is tried again, and after how long: a pure decision per failed attempt
(no clock, no sleep, the jitter's randomness passed in), so each case is a row in a table test.

Why not the SDK's policy: stripe-python does not retry a plain 429, and a backfill meets many
(a merchant's own traffic shares the account's limits); we wait every one of them out.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .api_settings import DEFAULT_REQUEST_TIMEOUT

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
RETRY_TIME_FACTOR = 4  # one request is retried for at most this many request timeouts (429s aside)
# A server that never answered this run is most likely the wrong one (a typo in --api-base, no
# network): give up after this many attempts instead of backing off for a minute.
FIRST_CONTACT_ATTEMPTS = 2
MAX_BACKOFF_SECONDS = 30.0


class GiveUp(enum.Enum):
    """Why a request is not tried again."""

    UNREACHABLE = "no server has answered this run"  # most likely a wrong URL or no network
    EXHAUSTED = "out of attempts or retry time"
    NOT_RETRYABLE = "the same request would get the same answer"


def backoff_seconds(attempt: int) -> float:
    """The longest wait after the `attempt`-th try (1-based); the jitter takes 50-100% of it."""
    return min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(attempt - 1, 6))


@dataclass(frozen=True)
class RetryPolicy:
    """What to do after a failed attempt: wait this many seconds and try again, or `GiveUp`.

    `retry_seconds` bounds how long one request is retried (measured from its first attempt); 429s
    have their own cap in attempts instead, so a load never fails on rate limits before it.
    `uniform` draws the jitter factor: `random.Random(seed).uniform` makes the waits repeatable.
    """

    max_attempts: int = 8
    max_rate_limit_attempts: int = 40
    retry_seconds: float = RETRY_TIME_FACTOR * DEFAULT_REQUEST_TIMEOUT
    first_contact_attempts: int = FIRST_CONTACT_ATTEMPTS
    uniform: Callable[[float, float], float] = random.uniform

    def after_answer(self, attempt: int, status: int, headers: Mapping[str, str], elapsed: float) -> float | GiveUp:
        """After the `attempt`-th try was answered with `status` (not 200), `elapsed` seconds after the first."""
        if status not in RETRY_STATUSES:
            return GiveUp.NOT_RETRYABLE
        if status == 429:
            # A rate-limit 429 is always worth waiting out; Stripe-Should-Retry only speaks for
            # lock timeouts and other 429s.
            return self._wait(attempt) if attempt < self.max_rate_limit_attempts else GiveUp.EXHAUSTED
        if headers.get("Stripe-Should-Retry") == "false":
            return GiveUp.NOT_RETRYABLE
        return self._wait_within_budget(attempt, elapsed)

    def after_failure(self, attempt: int, elapsed: float, answered: bool) -> float | GiveUp:
        """After the `attempt`-th try got no answer (refused, reset, timed out); `answered`: whether the
        server has answered any request of this run."""
        if not answered and attempt >= self.first_contact_attempts:
            return GiveUp.UNREACHABLE
        return self._wait_within_budget(attempt, elapsed)

    def _wait_within_budget(self, attempt: int, elapsed: float) -> float | GiveUp:
        # the shortest wait the jitter can draw must still end within the retry time
        if attempt >= self.max_attempts or elapsed + backoff_seconds(attempt) * 0.5 >= self.retry_seconds:
            return GiveUp.EXHAUSTED
        return self._wait(attempt)

    def _wait(self, attempt: int) -> float:
        return backoff_seconds(attempt) * self.uniform(0.5, 1.0)
