"""CPU cost of reading Stripe pages, four ways, side by side against the local emulator (no latency).

    .venv/bin/python benchmarks/bench_client.py [--pages 200]

1. `client.v1.invoices.list()` + `to_dict()` per object (what SDK-based sources do)
2. `client.raw_request()` + `json.loads(resp.body)` (the SDK's escape hatch)
3. our `StripeApi.get()` (pooled urllib3 connections, headers built once, one orjson parse, SDK error types)
4. a bare pooled `requests.Session` + `orjson.loads` (what our client used before urllib3)

Why (2) is slower than (3): `raw_request` rebuilds the client user-agent JSON and telemetry headers
on every call, decodes the body to `str`, parses it with the stdlib `json` and an `OrderedDict`
hook inside `StripeResponse` (then the caller parses it again), and goes through the requestor's
retry wrapper; the connection itself is reused in both (thread-local `requests.Session`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import orjson
import requests
import stripe

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "sources")]


def timed(label: str, pages: int, fetch) -> tuple[str, float]:
    fetch()  # warm up (connection, caches)
    started = time.process_time()
    objects = sum(fetch() for _ in range(pages))
    cpu = time.process_time() - started
    return label, objects / cpu


def main() -> None:
    from stripe_emulator import Emulator
    from stripe_source.client import StripeApi
    from stripe_source.credentials import StripeCredentials

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=100)
    args = parser.parse_args()
    with Emulator(seed=3, scale=3000) as emu:
        params = {"limit": 100}
        sdk = stripe.StripeClient(emu.api_key, base_addresses={"api": emu.api_base})
        ours = StripeApi(StripeCredentials(api_key=emu.api_key), emu.api_base)
        ours.pacer.limits.global_rps = ours.pacer.limits.endpoint_rps = 1e9
        session = requests.Session()
        headers = {"Authorization": f"Bearer {emu.api_key}", "Stripe-Version": stripe.api_version}

        def sdk_objects() -> int:
            return len([o.to_dict() for o in sdk.v1.invoices.list(params=params).data])

        def raw_request() -> int:
            return len(json.loads(sdk.raw_request("get", "/v1/invoices", **params).body)["data"])

        def ours_get() -> int:
            return len(ours.get("/v1/invoices", params)["data"])

        def bare() -> int:
            response = session.get(emu.api_base + "/v1/invoices", params=params, headers=headers)
            return len(orjson.loads(response.content)["data"])

        results = [
            timed("SDK list + to_dict()", args.pages, sdk_objects),
            timed("SDK raw_request + json.loads", args.pages, raw_request),
            timed("ours: StripeApi.get (orjson)", args.pages, ours_get),
            timed("bare requests.Session + orjson", args.pages, bare),
        ]
    base = results[0][1]
    print(f"\n{'client path':34} {'invoices/s of client CPU':>26} {'vs SDK':>8}")
    for label, rate in results:
        print(f"{label:34} {rate:>26,.0f} {rate / base:>7.1f}x")


if __name__ == "__main__":
    main()
