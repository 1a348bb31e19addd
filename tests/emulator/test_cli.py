"""`stripe-emulator` as a user runs it: ready line, options honoured, clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import stripe

from stripe_emulator import Emulator


def launch(*args: str) -> tuple[subprocess.Popen, str]:
    script = Path(sys.executable).with_name("stripe-emulator")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "stripe_emulator.cli"]
    proc = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Stripe emulator ready: http://127.0.0.1:"), line + proc.stderr.read()  # type: ignore[union-attr]
    return proc, line.split(": ", 1)[1].strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_with_its_options_and_stops_cleanly(stop_signal):
    key = "sk_test_" + secrets.token_hex(12)
    proc, url = launch("--api-key", key, "--seed", "4", "--scale", "300", "--latency-ms", "40",
                       "--rate-limit", "test")
    try:
        client = stripe.StripeClient(key, base_addresses={"api": url})
        started = time.perf_counter()
        served = [c.id for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()]
        assert time.perf_counter() - started >= 0.04
        with Emulator(seed=4, scale=300) as same_seed:
            assert served == [c["id"] for c in same_seed.objects("customers")]
        with ThreadPoolExecutor(40) as pool:  # a burst: 40 at once against test mode's 25 requests/s
            statuses = list(pool.map(lambda _: requests.get(url + "/v1/charges", timeout=5,
                                                            headers={"Authorization": f"Bearer {key}"}).status_code,
                                     range(40)))
        assert 429 in statuses and 200 in statuses
    finally:
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)  # a hang, not slowness: shared CI machines can be busy
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert key not in out  # a key given on the command line is not echoed
