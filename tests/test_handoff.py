"""The hand-over from producer threads to a resource's generator: its bound, the run's read-ahead
budget, failures and a consumer that stops."""

from __future__ import annotations

import threading
import time

import pytest

from stripe_source.handoff import Handoff, ReadAhead


def _produce(handoff: Handoff, items: list[tuple[str, int]]) -> threading.Thread:
    def run() -> None:
        try:
            for item, weight in items:
                if not handoff.put(item, weight=weight):
                    return
        finally:
            handoff.done()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the producer never got there"
        time.sleep(0.01)


def _settle(thread: threading.Thread) -> None:
    """Give a producer time to put what it can (the assertions after it hold either way)."""
    thread.join(timeout=0.2)


def test_a_producer_waits_at_the_bound_for_its_consumer() -> None:
    handoff = Handoff(2)
    producer = _produce(handoff, [(f"page {i}", 100) for i in range(5)])
    _settle(producer)
    assert producer.is_alive()  # two pages handed on, the third waits
    assert list(handoff.items()) == [f"page {i}" for i in range(5)]


def test_a_producer_runs_ahead_on_the_runs_budget_and_gives_it_back() -> None:
    ahead = ReadAhead(250)
    handoff = Handoff(1, ahead=ahead)
    producer = _produce(handoff, [(f"page {i}", 100) for i in range(4)])
    # one page within the bound, two on the budget (200 of 250), the fourth waits
    _until(lambda: ahead.left == 50)
    _settle(producer)
    assert producer.is_alive() and ahead.left == 50
    assert list(handoff.items()) == [f"page {i}" for i in range(4)]
    assert ahead.left == 250  # all of it came back


def test_two_reads_share_one_budget() -> None:
    ahead = ReadAhead(100)
    first, second = Handoff(1, ahead=ahead), Handoff(1, ahead=ahead)
    one = _produce(first, [("a0", 100), ("a1", 100)])
    one.join(timeout=10)
    assert not one.is_alive() and ahead.left == 0  # a1 took the whole budget
    two = _produce(second, [("b0", 100), ("b1", 100)])
    _settle(two)
    assert two.is_alive()  # b1 finds nothing left
    assert list(first.items()) == ["a0", "a1"]
    assert list(second.items()) == ["b0", "b1"]


def test_a_consumer_that_stops_releases_its_producer_and_the_budget() -> None:
    ahead = ReadAhead(100)
    handoff = Handoff(1, ahead=ahead)
    producer = _produce(handoff, [(f"page {i}", 100) for i in range(5)])
    items = handoff.items()
    assert next(items) == "page 0"
    items.close()
    producer.join(timeout=10)
    assert not producer.is_alive()
    assert ahead.left == 100


def test_a_producers_failure_is_raised_in_the_consumer() -> None:
    handoff = Handoff(1)

    def run() -> None:
        handoff.put("page 0")
        handoff.fail(ValueError("the page was not JSON"))
        handoff.done()

    threading.Thread(target=run, daemon=True).start()
    items = handoff.items()
    assert next(items) == "page 0"
    with pytest.raises(ValueError, match="not JSON"):
        next(items)


def test_the_consumer_waits_for_every_producer() -> None:
    handoff = Handoff(4, producers=2)
    _produce(handoff, [("a", 1)])
    _produce(handoff, [("b", 1)])
    assert sorted(handoff.items()) == ["a", "b"]


@pytest.mark.parametrize("arrow", [True, False])
def test_only_the_arrow_path_reads_ahead(arrow: bool) -> None:
    """Rows kept as dicts take several times their page: those reads keep to their bound."""
    from stripe_source.plan import RunBounds
    from stripe_source.run import READ_AHEAD_BYTES, Extraction

    run = Extraction(RunBounds(now=0, start=None, end=None, lookback=0, full_refresh=False), {}, arrow=arrow,
                     processes=0, workers=2)
    try:
        ahead = run.reader(api=None, job=None, oldest_created=0).ahead
        assert (ahead.left == READ_AHEAD_BYTES) if arrow else ahead is None
    finally:
        run.executor.shutdown()
        run.sub_list_executor.shutdown()
