"""Items made on other threads, handed to one generator through a bounded queue.

dlt pulls items from a resource's generator and suspends it while it works on them; reading
Stripe from the generator itself would leave the requests idle all that time. So producers run on
threads of their own and the generator hands on what they made. The queue's bound keeps memory
flat: a slow consumer makes the producers wait, not pile up pages. A producer's failure is raised
in the consumer, where dlt sees it; a consumer that stops (closed, failed) releases the producers.

Some producers must not wait for their consumer: the reads whose requests feed the endpoint that
bounds a backfill (dlt takes one item per resource in turn, so any one resource's consumer is
slow while the whole catalog loads). They may run ahead past the bound, on a budget in bytes
shared by the whole run (`ReadAhead`): memory stays bounded however many reads there are.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

_DONE = object()
# How often a producer waiting for room looks again: room on the run's budget is given back by
# other consumers, which do not wake it (a consumer stopping does).
_WAIT_SECONDS = 0.05


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead:
    """A run's budget (in bytes of the pages Stripe sent) that producers may hold beyond their
    queues' bounds."""

    def __init__(self, budget: int) -> None:
        self._lock = threading.Lock()
        self._left = budget

    @property
    def left(self) -> int:
        with self._lock:
            return self._left

    def take(self, amount: int) -> bool:
        with self._lock:
            if amount > self._left:
                return False
            self._left -= amount
            return True

    def give_back(self, amount: int) -> None:
        with self._lock:
            self._left += amount


class Handoff:
    """A bounded queue from `producers` threads to one consumer (`items`); `close` releases the producers.

    With `ahead`, an item that finds the queue full goes in anyway when the budget holds its weight.
    """

    def __init__(self, bound: int, producers: int = 1, ahead: ReadAhead | None = None) -> None:
        self._bound = bound
        self._items: deque[tuple[Any, int]] = deque()  # (item, what it borrowed from `ahead`)
        self._within_bound = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._producers = producers
        self._ahead = ahead

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def put(self, item: Any, weight: int = 0) -> bool:
        """Hand an item on, waiting for room; False once the consumer has stopped."""
        with self._changed:
            while not self._stop.is_set():
                if self._within_bound < self._bound:
                    self._within_bound += 1
                    self._items.append((item, 0))
                elif self._ahead is not None and weight and self._ahead.take(weight):
                    self._items.append((item, weight))
                else:
                    # only room on the run's budget comes back without a wake-up
                    self._changed.wait(_WAIT_SECONDS if self._ahead is not None else None)
                    continue
                self._changed.notify_all()
                return True
        return False

    def fail(self, error: BaseException) -> None:
        """A producer's failure: raised in the consumer."""
        self._put_always(_Failed(error))

    def done(self) -> None:
        """A producer has finished (call it whatever happened)."""
        self._put_always(_DONE)

    def _put_always(self, item: Any) -> None:
        # past the bound: a producer's last word must not wait for a consumer that will read it anyway
        with self._changed:
            self._items.append((item, 0))
            self._within_bound += 1
            self._changed.notify_all()

    def items(self) -> Iterator[Any]:
        """What the producers hand on, until all of them are done."""
        remaining = self._producers
        try:
            while remaining:
                item = self._take()
                if item is _DONE:
                    remaining -= 1
                elif isinstance(item, _Failed):
                    raise item.error
                else:
                    yield item
        finally:
            self.close()

    def _take(self) -> Any:
        with self._changed:
            while not self._items:
                self._changed.wait()
            item, borrowed = self._items.popleft()
            if borrowed:
                self._ahead.give_back(borrowed)
            else:
                self._within_bound -= 1
            self._changed.notify_all()
            return item

    def close(self) -> None:
        """The consumer has stopped: producers waiting to hand an item on give up; what they lent
        from the run's budget goes back to it."""
        self._stop.set()
        with self._changed:
            while self._items:
                _, borrowed = self._items.popleft()
                if borrowed:
                    self._ahead.give_back(borrowed)
            self._changed.notify_all()
