"""Items made on other threads, handed to one generator through a bounded queue.

dlt pulls items from a resource's generator and suspends it while it works on them; reading
Stripe from the generator itself would leave the requests idle all that time. So producers run on
threads of their own and the generator hands on what they made. The queue's bound keeps memory
flat: a slow consumer makes the producers wait, not pile up pages. A producer's failure is raised
in the consumer, where dlt sees it; a consumer that stops (closed, failed) releases the producers.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Handoff:
    """A bounded queue from `producers` threads to one consumer (`items`); `close` releases the producers."""

    def __init__(self, bound: int, producers: int = 1) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=bound)
        self._stop = threading.Event()
        self._producers = producers

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def put(self, item: Any) -> bool:
        """Hand an item on, waiting for room; False once the consumer has stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def fail(self, error: BaseException) -> None:
        """A producer's failure: raised in the consumer."""
        self.put(_Failed(error))

    def done(self) -> None:
        """A producer has finished (call it whatever happened)."""
        self.put(_DONE)

    def items(self) -> Iterator[Any]:
        """What the producers hand on, until all of them are done."""
        remaining = self._producers
        try:
            while remaining:
                item = self._queue.get()
                if item is _DONE:
                    remaining -= 1
                elif isinstance(item, _Failed):
                    raise item.error
                else:
                    yield item
        finally:
            self.close()

    def close(self) -> None:
        """The consumer has stopped: producers waiting to hand an item on give up."""
        self._stop.set()
