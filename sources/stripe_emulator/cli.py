"""`stripe-emulator`: serve a seeded Stripe account on 127.0.0.1 until stopped."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from . import Emulator, FaultConfig, RateLimits


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stripe-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a random free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=int, default=1000, help="approximate number of objects")
    parser.add_argument("--span-days", type=int, default=730, help="how far back `created` goes")
    parser.add_argument("--api-key", help="register this key as a secret test key of the platform account")
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--jitter-ms", type=float, default=0)
    parser.add_argument("--rate-limit", choices=["off", "live", "test"], default="off")
    parser.add_argument("--global-rps", type=float, help="override the overall requests/s limit")
    parser.add_argument("--endpoint-rps", type=float, help="override the per-endpoint requests/s limit")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="share of connections reset")
    parser.add_argument("--slow-rate", type=float, default=0.0, help="share of requests delayed by --slow-ms")
    parser.add_argument("--slow-ms", type=float, default=2000.0)
    args = parser.parse_args(argv)

    limits = None
    if args.rate_limit != "off":
        limits = RateLimits.live() if args.rate_limit == "live" else RateLimits.test()
        limits.global_rps = args.global_rps or limits.global_rps
        limits.endpoint_rps = args.endpoint_rps or limits.endpoint_rps
    faults = FaultConfig(error_rate=args.error_rate, reset_rate=args.reset_rate, slow_rate=args.slow_rate,
                         slow_ms=args.slow_ms)
    emu = Emulator(seed=args.seed, scale=args.scale, span_days=args.span_days, latency_ms=args.latency_ms,
                   jitter_ms=args.jitter_ms, rate_limits=limits, faults=faults, host=args.host, port=args.port,
                   api_key=args.api_key)
    stop = threading.Event()
    # Both set here: a process started from a background job inherits SIGINT as ignored, and
    # Python then installs no KeyboardInterrupt for it; Ctrl-C and `kill -INT` must still stop us.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    with emu:
        print(f"Stripe emulator ready: {emu.api_base}", flush=True)
        if not args.api_key:
            print(f"Platform secret key: {emu.api_key}", flush=True)
        print(f"Account {emu.account_id}; Connect OAuth at {emu.connect_base} (client_id {emu.client_id})",
              flush=True)
        print(f"Stripe App (OAuth install link) at {emu.api_base}: client_id {emu.apps.client_id}, app "
              f"{emu.apps.app_id}; its secret key is the platform's", flush=True)
        # Wake up now and then: a signal delivered to a server thread only runs its Python
        # handler once the main thread executes again, which a bare wait() never does.
        while not stop.wait(0.25):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
