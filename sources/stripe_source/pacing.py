"""Pacing a run's requests under Stripe's rate limits: token buckets per account and per endpoint,
priorities for sub-list pages, slowing down on a 429; and waits that stop on Ctrl-C/SIGTERM."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field

from dlt.common.runtime import signals as dlt_signals


@dataclass
class RateLimits:
    """Stripe's read limits for one account; we pace every request of a run under them.

    Live mode allows ~100 requests/s per account and 25/s per endpoint; test mode 25/s overall.
    `headroom` keeps us slightly under, so bursts from network jitter do not trip Stripe's bucket.
    Accounts with raised limits set `max_requests_per_second` / `max_requests_per_endpoint`.
    """

    global_rps: float
    endpoint_rps: float
    headroom: float = 0.97

    @classmethod
    def for_mode(cls, livemode: bool) -> RateLimits:
        return cls(100.0, 25.0) if livemode else cls(25.0, 25.0)


# A thread waiting for its turn or a retry looks at dlt's signal flag this often, so Ctrl-C and
# SIGTERM stop a paced run at once instead of dlt's thread pool timing out on our waits.
_SIGNAL_POLL_SECONDS = 0.2


def interruptible_sleep(seconds: float) -> None:
    """Sleep `seconds`, or raise dlt's signal exception as soon as the run is told to stop."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        dlt_signals.raise_if_signalled()
        time.sleep(min(left, _SIGNAL_POLL_SECONDS))
    dlt_signals.raise_if_signalled()


@dataclass(order=True)
class _Waiter:
    """A request waiting for its turn: ordered by priority (higher first), then by arrival."""

    rank: tuple[int, int]  # (-priority, ticket)
    endpoint: str = field(compare=False)
    turn: threading.Condition = field(compare=False)  # notified when it may go, or must dispatch
    granted_at: float | None = field(default=None, compare=False)


class TokenBuckets:
    """Stripe's two limits as token buckets (as Stripe's own are, and as Stripe advises clients to
    pace): one for the account, one per endpoint, each a rate and a burst of `BURST` requests.

    The small burst is what keeps the rate when a waiting thread wakes late (a busy process hands
    the GIL over every 5 ms, half a global slot at 100 req/s): the next token is due one interval
    after the last one was due, not after it was taken, so lateness is made up instead of lost.
    Over any span T at most rate * T + BURST requests go. On a 429 the rates slow down
    multiplicatively, then recover a little with every success, so a shared account (the
    merchant's own traffic counts too) settles just under the limit. Not thread-safe: the pacer
    holds its lock around every call.
    """

    BURST = 2

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        # when each bucket's next token is due (its "theoretical arrival time")
        self._global_due = 0.0
        self._due_by_endpoint: dict[str, float] = {}
        self._factor = 1.0

    def global_ready(self) -> float:
        """When the account's bucket has a token."""
        return self._global_due - (self.BURST - 1) * self._intervals(slowed=False)[0]

    def endpoint_ready(self, endpoint: str) -> float:
        """When `endpoint`'s bucket has a token."""
        return self._due_by_endpoint.get(endpoint, 0.0) - (self.BURST - 1) * self._intervals(slowed=False)[1]

    def take(self, endpoint: str, now: float) -> None:
        global_interval, endpoint_interval = self._intervals()
        self._global_due = max(self._global_due, now) + global_interval
        due = self._due_by_endpoint.get(endpoint, 0.0)
        self._due_by_endpoint[endpoint] = max(due, now) + endpoint_interval

    def slow_down(self) -> None:
        self._factor = max(0.25, self._factor * 0.7)

    def recover(self) -> None:
        self._factor = min(1.0, self._factor + 0.02)

    @property
    def slowed(self) -> bool:
        return self._factor < 1.0

    # The burst allowance stays that of the full rate (`slowed=False`): slowing down after a 429 must
    # not enlarge it.
    def _intervals(self, slowed: bool = True) -> tuple[float, float]:
        scale = self.limits.headroom * (self._factor if slowed else 1.0)
        return 1.0 / (self.limits.global_rps * scale), 1.0 / (self.limits.endpoint_rps * scale)


class Pacer:
    """Spaces requests so the account-wide and per-endpoint rates (`TokenBuckets`) are never exceeded.

    A request goes when its endpoint's bucket and the global one both have a token now. Slots are
    never reserved ahead, so a backlog on one endpoint cannot hold the global schedule hostage.
    When several requests wait for the same global slot, the one with the higher priority wins,
    then the one that has waited longest: sub-list pages (invoice lines) get priority because one
    endpoint carries them all, and it is what bounds a backfill's length when it has to fight
    twenty list endpoints for every global slot.

    Waiting costs nothing: one waiter at a time (the dispatcher) sleeps until the next slot is due
    and hands it out; every other waiter sleeps until it is handed a slot or the dispatching. A run
    of many accounts keeps hundreds of requests waiting: had each of them woken for every slot to
    see whether it was its own, the waiting would have cost more CPU than the requests.
    """

    def __init__(self, limits: RateLimits) -> None:
        self.buckets = TokenBuckets(limits)
        self._lock = threading.Lock()
        self._queues: dict[str, list[_Waiter]] = {}  # endpoint -> its waiters (a heap)
        self._dispatcher: _Waiter | None = None
        self._tickets = itertools.count()

    @property
    def limits(self) -> RateLimits:
        return self.buckets.limits

    def wait_turn(self, endpoint: str, priority: int = 0) -> float:
        """Block until a request to `endpoint` may go; returns that moment (`time.monotonic()`)."""
        with self._lock:
            now = time.monotonic()
            buckets = self.buckets
            if not self._queues and max(buckets.global_ready(), buckets.endpoint_ready(endpoint)) <= now:
                buckets.take(endpoint, now)  # nobody waits and both buckets have a token: go
                return now
            me = _Waiter((-priority, next(self._tickets)), endpoint, threading.Condition(self._lock))
            heapq.heappush(self._queues.setdefault(endpoint, []), me)
            if self._dispatcher is None:
                self._dispatcher = me
            else:
                self._dispatcher.turn.notify()  # it may go sooner than the slot the dispatcher sleeps for
            try:
                while me.granted_at is None:
                    if self._dispatcher is None:
                        self._dispatcher = me
                    if self._dispatcher is me:
                        self._dispatch(me)
                    else:
                        me.turn.wait(timeout=5.0)  # woken when granted or made the dispatcher
                return me.granted_at
            finally:
                if me.granted_at is None:  # interrupted: out of the line, someone else dispatches
                    self._leave(me)

    def _dispatch(self, me: _Waiter) -> None:
        """Hand out slots as they fall due until `me` has one, then pass the dispatching on."""
        while me.granted_at is None:
            dlt_signals.raise_if_signalled()
            now = time.monotonic()
            when, waiter = self._next(now)
            if when > now:
                me.turn.wait(timeout=min(when - now, _SIGNAL_POLL_SECONDS))
                continue
            heapq.heappop(self._queues[waiter.endpoint])
            if not self._queues[waiter.endpoint]:
                del self._queues[waiter.endpoint]
            self.buckets.take(waiter.endpoint, now)
            waiter.granted_at = now
            if waiter is not me:
                waiter.turn.notify()
        self._pass_dispatching()

    def _next(self, now: float) -> tuple[float, _Waiter]:
        """When the next slot falls due and whose it is: at the global bucket's next token, the best
        waiter among the endpoints ready by then, or else the first endpoint to become ready."""
        start = max(now, self.buckets.global_ready())
        return min((max(start, self.buckets.endpoint_ready(endpoint)), queue[0])
                   for endpoint, queue in self._queues.items())

    def _pass_dispatching(self) -> None:
        self._dispatcher = None
        if self._queues:
            self._dispatcher = self._next(time.monotonic())[1]
            self._dispatcher.turn.notify()

    def _leave(self, me: _Waiter) -> None:
        queue = self._queues.get(me.endpoint, [])
        if me in queue:
            queue.remove(me)
            heapq.heapify(queue)
            if not queue:
                del self._queues[me.endpoint]
        if self._dispatcher is me:
            self._pass_dispatching()

    def slow_down(self) -> None:
        with self._lock:
            self.buckets.slow_down()

    def recover(self) -> None:
        if self.buckets.slowed:
            with self._lock:
                self.buckets.recover()
