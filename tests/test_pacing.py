"""Rate limits and failures: pacing stays under Stripe's limits, and no 429, 5xx or dropped
connection fails a load; what lands still equals what the emulator holds."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from stripe_emulator import Emulator
from stripe_emulator.server import FaultConfig
from stripe_emulator.server import RateLimits as EmulatorLimits
from stripe_source.client import Pacer, RateLimits
from stripe_source.pacing import TokenBuckets
from tests.helpers import assert_equals_emulator, run_pipeline


def most_in_one_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    most, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_bucket_lets_a_burst_of_two_go_then_one_per_interval() -> None:
    buckets = TokenBuckets(RateLimits(global_rps=100, endpoint_rps=10, headroom=1.0))
    now = 1000.0
    buckets.take("/v1/charges", now)
    assert buckets.endpoint_ready("/v1/charges") <= now  # the burst's second token
    buckets.take("/v1/charges", now)
    assert buckets.endpoint_ready("/v1/charges") == pytest.approx(now + 0.1)
    assert buckets.endpoint_ready("/v1/invoices") <= now  # other endpoints have their own bucket
    assert buckets.global_ready() == pytest.approx(now + 0.01)  # both requests count for the account too


def test_a_slowed_bucket_spaces_requests_more_but_allows_no_bigger_burst() -> None:
    buckets = TokenBuckets(RateLimits(global_rps=100, endpoint_rps=10, headroom=1.0))
    buckets.slow_down()  # a 429: 70% of the rate
    assert buckets.slowed
    now = 1000.0
    buckets.take("/v1/charges", now)
    # due one slowed interval later, of which only one full-rate interval is burst
    assert buckets.endpoint_ready("/v1/charges") == pytest.approx(now + 1 / 7 - 0.1)
    for _ in range(100):
        buckets.recover()
    assert not buckets.slowed


def test_pacer_never_exceeds_either_limit() -> None:
    limits = RateLimits(global_rps=40, endpoint_rps=15, headroom=1.0)
    pacer = Pacer(limits)
    stamps: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()

    def request(endpoint: str, n: int, priority: int) -> None:
        for _ in range(n):
            granted = pacer.wait_turn(endpoint, priority)  # the moment the pacer let it go
            with lock:
                stamps[endpoint].append(granted)

    threads = [threading.Thread(target=request, args=(endpoint, 10, int(endpoint == "lines")))
               for endpoint in ("a", "b", "c", "d", "lines") for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    everything = [s for endpoint_stamps in stamps.values() for s in endpoint_stamps]
    assert len(everything) == 100
    # token buckets: at most rate * 1 s + burst in any second, however the threads were scheduled
    assert most_in_one_second(everything) <= 40 + 2
    for endpoint_stamps in stamps.values():
        assert most_in_one_second(endpoint_stamps) <= 15 + 2
    assert elapsed >= (100 - 2) / 40  # it did pace: 100 requests need ~2.5 s at 40/s


def test_pacing_at_the_accounts_limits_meets_no_429(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with Emulator(seed=5, scale=300, rate_limits=EmulatorLimits(global_rps=8, endpoint_rps=3)) as emu:
        db = tmp_path / "paced.duckdb"
        assert run_pipeline(emu, monkeypatch, db, "--max-rps", "8", "--max-rps-per-endpoint", "3") == 0
        stats = emu.stats()
        assert stats["rate_limited"] == 0
        assert stats["requests_total"] > 2 * 8  # enough requests for the limits to bind
        assert_equals_emulator(emu, db)


def test_a_test_mode_key_is_paced_at_stripes_test_mode_limits_by_default(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    # Stripe allows a test-mode key 25 requests a second overall, not live mode's 100 (a peer connector
    # had the two swapped): with no --max-rps the run must still meet no 429
    for name in ("MAX_REQUESTS_PER_SECOND", "MAX_REQUESTS_PER_ENDPOINT"):  # the suite's own, for speed
        monkeypatch.delenv(f"SOURCES__STRIPE__{name}")
    with Emulator(seed=5, scale=300, rate_limits=EmulatorLimits.test()) as emu:
        db = tmp_path / "test_mode.duckdb"
        assert run_pipeline(emu, monkeypatch, db) == 0
        stats = emu.stats()
        assert stats["rate_limited"] == 0
        assert stats["requests_total"] > 2 * 25  # enough requests for the limit to bind (~3 s of them)
        assert_equals_emulator(emu, db)


def test_429s_5xx_and_dropped_connections_never_fail_a_load(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    # The account's limits are far below what the source is told (it meets 429s: a merchant's own
    # traffic shares them), and the emulator answers some requests with 500, lock timeouts or a
    # reset connection.
    faults = FaultConfig(error_rate=0.05, reset_rate=0.05, seed=3,
                         schedule={2: "429", 4: "lock_timeout", 6: "500", 7: "reset"})
    with Emulator(seed=5, scale=300, rate_limits=EmulatorLimits(global_rps=6, endpoint_rps=3),
                  faults=faults) as emu:
        db = tmp_path / "faults.duckdb"
        assert run_pipeline(emu, monkeypatch, db, "--max-rps", "40", "--max-rps-per-endpoint", "16") == 0
        stats = emu.stats()
        # beyond the scheduled faults (one of them a 429): the limits refused some, faults hit others
        assert stats["rate_limited"] > 1 and stats["faults_injected"] > len(faults.schedule)
        assert_equals_emulator(emu, db)


def test_a_waiting_request_of_higher_priority_takes_the_next_slot() -> None:
    # two slots a second: the line forms at once, and the sub-list page that joins it later goes next
    pacer = Pacer(RateLimits(global_rps=2, endpoint_rps=100, headroom=1.0))
    order: list[str] = []
    lock = threading.Lock()

    def request(endpoint: str, priority: int) -> None:
        pacer.wait_turn(endpoint, priority)
        with lock:
            order.append(endpoint)

    waiting = [threading.Thread(target=request, args=("list", 0)) for _ in range(5)]
    for thread in waiting:
        thread.start()
    time.sleep(0.2)  # the burst of two went; three wait for their slot
    lines = threading.Thread(target=request, args=("lines", 1))
    lines.start()
    for thread in [*waiting, lines]:
        thread.join()
    assert order.index("lines") == 2 and len(order) == 6
