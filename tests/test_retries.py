"""The retry policy, decision by decision: after each failed attempt, wait how long or give up.
No server, no clock, no sleep: the jitter's draws are injected."""

from __future__ import annotations

import random

import pytest

from stripe_source.client import StripeApi
from stripe_source.credentials import StripeCredentials
from stripe_source.retries import RETRY_STATUSES, GiveUp, RetryPolicy, backoff_seconds


def longest(low: float, high: float) -> float:
    """A jitter that always draws its upper bound: each wait is the full backoff."""
    return high


POLICY = RetryPolicy(max_attempts=8, max_rate_limit_attempts=40, retry_seconds=120.0, uniform=longest)
SHOULD_NOT_RETRY = {"Stripe-Should-Retry": "false"}
SHOULD_RETRY = {"Stripe-Should-Retry": "true"}


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_each_retryable_status_waits_the_first_backoff(status: int) -> None:
    assert POLICY.after_answer(1, status, {}, elapsed=0.0) == 0.5


@pytest.mark.parametrize(("status", "headers"), [
    (400, {}),  # a bad request stays bad
    (401, {}),  # the client renews the token or asks to re-authenticate, it does not wait
    (402, {}),
    (403, {}),
    (404, {}),
    (400, SHOULD_RETRY),  # the header only speaks for statuses that may be retried at all
    (409, SHOULD_NOT_RETRY),
    (500, SHOULD_NOT_RETRY),
    (503, SHOULD_NOT_RETRY),
])
def test_not_retried_at_once(status: int, headers: dict[str, str]) -> None:
    assert POLICY.after_answer(1, status, headers, elapsed=0.0) is GiveUp.NOT_RETRYABLE


@pytest.mark.parametrize(("case", "headers"), [
    ("rate limited", {}),
    ("lock timeout", SHOULD_RETRY),  # Stripe's lock_timeout is a 429 that says retry
    ("rate limited, told not to retry", SHOULD_NOT_RETRY),  # a rate limit is waited out regardless
])
@pytest.mark.parametrize(("attempt", "expected"), [
    (1, 0.5),
    (8, 30.0),  # past the attempts other statuses get
    (39, 30.0),
    (40, GiveUp.EXHAUSTED),  # the 429s' own cap
])
def test_a_429_is_waited_out_up_to_its_own_cap(case: str, headers: dict[str, str], attempt: int,
                                               expected: float | GiveUp) -> None:
    assert POLICY.after_answer(attempt, 429, headers, elapsed=0.0) == expected


def test_a_429_is_not_bound_by_the_retry_time() -> None:
    assert POLICY.after_answer(5, 429, {}, elapsed=10 * POLICY.retry_seconds) == 8.0
    assert POLICY.after_answer(5, 500, {}, elapsed=10 * POLICY.retry_seconds) is GiveUp.EXHAUSTED


@pytest.mark.parametrize(("attempt", "elapsed", "expected"), [
    (1, 0.0, 0.5),
    (7, 0.0, 30.0),
    (8, 0.0, GiveUp.EXHAUSTED),  # max_attempts tries in all
    # the shortest wait the jitter can draw (half the backoff) must end within the retry time
    (3, 120.0 - 1.0 - 0.001, 2.0),
    (3, 120.0 - 1.0, GiveUp.EXHAUSTED),
    (6, 120.0 - 8.0 - 0.001, 16.0),
    (6, 120.0 - 8.0, GiveUp.EXHAUSTED),
])
@pytest.mark.parametrize("status", [409, 500, 502, 503, 504])
def test_other_statuses_give_up_after_the_attempts_or_the_retry_time(status: int, attempt: int, elapsed: float,
                                                                     expected: float | GiveUp) -> None:
    assert POLICY.after_answer(attempt, status, {}, elapsed) == expected


@pytest.mark.parametrize(("attempt", "backoff"), [
    (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (8, 30.0), (39, 30.0),
])
def test_backoff_doubles_up_to_its_cap(attempt: int, backoff: float) -> None:
    assert backoff_seconds(attempt) == backoff
    assert POLICY.after_answer(attempt, 429, {}, elapsed=0.0) == backoff


@pytest.mark.parametrize("attempt", [1, 2, 4, 7, 20])
def test_jitter_draws_between_half_and_all_of_the_backoff(attempt: int) -> None:
    policy = RetryPolicy(uniform=random.Random(7).uniform)
    waits = [policy.after_answer(attempt, 429, {}, elapsed=0.0) for _ in range(500)]
    backoff = backoff_seconds(attempt)
    assert all(0.5 * backoff <= wait <= backoff for wait in waits)
    # spread over the range (requests that failed together do not come back together)
    assert min(waits) < 0.55 * backoff and max(waits) > 0.95 * backoff
    # the same seed, the same waits
    again = RetryPolicy(uniform=random.Random(7).uniform)
    assert [again.after_answer(attempt, 429, {}, elapsed=0.0) for _ in range(500)] == waits


@pytest.mark.parametrize(("attempt", "elapsed", "answered", "expected"), [
    # nothing has answered this run: most likely a wrong URL or no network; say so after two tries
    (1, 0.0, False, 0.5),
    (2, 0.0, False, GiveUp.UNREACHABLE),
    (2, 0.0, True, 1.0),  # the server answered before: a dropped connection is worth waiting out
    (7, 0.0, True, 30.0),
    (8, 0.0, True, GiveUp.EXHAUSTED),
    (3, 119.0, True, GiveUp.EXHAUSTED),  # half of the 2 s backoff would end past the retry time
    (3, 118.9, True, 2.0),
])
def test_no_answer(attempt: int, elapsed: float, answered: bool, expected: float | GiveUp) -> None:
    assert POLICY.after_failure(attempt, elapsed, answered) == expected


def test_the_client_retries_for_four_request_timeouts() -> None:
    api = StripeApi(StripeCredentials(api_key="sk_test_retries"), "http://127.0.0.1:9", timeout=5,
                    max_attempts=3, max_rate_limit_attempts=12, user_agent_suffix="")
    assert (api.retries.max_attempts, api.retries.max_rate_limit_attempts, api.retries.retry_seconds) == (3, 12, 20.0)
    # an account's view shares the policy
    assert api.for_account("acct_1").retries is api.retries
    api.close()
