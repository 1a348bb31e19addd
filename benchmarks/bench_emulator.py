"""How fast the local Stripe emulator serves: list pages/s, objects/s, concurrency, build time and RSS.

    .venv/bin/python benchmarks/bench_emulator.py [--scale 200000] [--seconds 5] [--threads 4]

The emulator runs in a child process (`stripe-emulator`), so client and server don't share a GIL.
1. sequential: one pooled `requests.Session` walking `/v1/charges?limit=100` by `starting_after`
2. concurrent: N client threads (one process, so they share the client's GIL), each with its session
3. concurrent: N client processes, each with its session
4. concurrent: N bare `http.client` processes that find the cursor without parsing the page (closest
   to what the server itself can serve on this machine, clients and server sharing its cores)
5. latency: 100 concurrent connections against an emulator answering after 300 ms
Each line also gives the server's CPU per page (from /proc), which says what the server could do
if the client were free: `requests` + `orjson.loads` of a 140 KB page cost the client more than
serving it costs the emulator. Issue 2 asks for >= 1,000 pages/s of 100 objects, latency off, 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk_test_bench" + secrets.token_hex(8)


class Server:
    """`stripe-emulator` in a child process; `url` once it said it is ready."""

    def __init__(self, *args: str) -> None:
        started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "stripe_emulator.cli", "--api-key", KEY, *args],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("Stripe emulator ready: "):
            raise SystemExit(f"emulator did not start: {line!r}")
        self.url = line.split(": ", 1)[1].strip()
        self.ready_s = time.perf_counter() - started

    def memory_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the emulator process."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def walk(url: str, stop_at: float, session: requests.Session, counts: list[int]) -> None:
    """Page through charges 100 at a time until the deadline, starting over at the end."""
    headers = {"Authorization": f"Bearer {KEY}"}
    cursor = None
    pages = objects = 0
    while time.perf_counter() < stop_at:
        params = {"limit": 100, **({"starting_after": cursor} if cursor else {})}
        answer = session.get(url + "/v1/charges", params=params, headers=headers, timeout=30)
        answer.raise_for_status()
        body = orjson.loads(answer.content)
        pages += 1
        objects += len(body["data"])
        cursor = body["data"][-1]["id"] if body["has_more"] else None
    counts.append(pages)
    counts.append(objects)


def walk_bare(url: str, stop_at: float, counts: list[int]) -> None:
    """Like `walk` on a bare keep-alive connection, reading the cursor off the page's last object."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    headers = {"Authorization": f"Bearer {KEY}"}
    cursor = b""
    pages = objects = 0
    while time.perf_counter() < stop_at:
        query = "&starting_after=" + cursor.decode() if cursor else ""
        connection.request("GET", "/v1/charges?limit=100" + query, headers=headers)
        answer = connection.getresponse()
        body = answer.read()
        assert answer.status == 200, body
        pages += 1
        objects += 100
        last = body.rfind(b'{"id":"')
        cursor = body[last + 7:body.index(b'"', last + 7)] if b'"has_more":true' in body[-60:] else b""
    counts += [pages, objects]


def _walk_in_process(url: str, stop_at: float, queue, bare: bool) -> None:
    counts: list[int] = []
    if bare:
        walk_bare(url, stop_at, counts)
    else:
        walk(url, stop_at, requests.Session(), counts)
    queue.put(counts)


def throughput(server: Server, clients: int, seconds: float, processes: bool = False, bare: bool = False) -> str:
    results: list[int] = []
    stop_at = time.perf_counter() + seconds
    if processes:
        queue = multiprocessing.get_context("fork").Queue()
        workers = [multiprocessing.get_context("fork").Process(target=_walk_in_process,
                                                               args=(server.url, stop_at, queue, bare))
                   for _ in range(clients)]
    else:
        workers = [threading.Thread(target=walk, args=(server.url, stop_at, requests.Session(), results))
                   for _ in range(clients)]
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    if processes:
        for _ in workers:
            results.extend(queue.get())
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    pages, objects = sum(results[0::2]), sum(results[1::2])
    server_ms = (server.cpu_seconds() - cpu) / pages * 1000
    return (f"{pages / elapsed:,.0f} pages/s, {objects / elapsed:,.0f} objects/s "
            f"(server CPU {server_ms:.2f} ms/page = {1000 / server_ms:,.0f} pages/s per core)")


def concurrent_latency(connections: int, latency_ms: int) -> None:
    with Server("--scale", "2000", "--latency-ms", str(latency_ms)) as server:
        barrier = threading.Barrier(connections)
        took: list[float] = []
        failures: list[BaseException] = []

        def one() -> None:
            session = requests.Session()
            barrier.wait()
            began = time.perf_counter()
            try:
                for _ in range(3):
                    session.get(server.url + "/v1/customers", headers={"Authorization": f"Bearer {KEY}"},
                                timeout=30).raise_for_status()
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures.append(exc)
            took.append(time.perf_counter() - began)

        workers = [threading.Thread(target=one) for _ in range(connections)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        print(f"{connections} concurrent connections x 3 requests at {latency_ms} ms: {elapsed:.2f} s, "
              f"{3 * connections / elapsed:.0f} req/s, slowest client {max(took):.2f} s "
              f"(ideal {3 * latency_ms / 1000:.2f} s), failures {len(failures)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--build-scales", default="200000,1000000", help="scales to time building (comma list)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")

    for scale in [int(s) for s in args.build_scales.split(",") if s]:
        with Server("--scale", str(scale)) as server:
            rss, peak = server.memory_mb()
            print(f"build scale={scale:,}: ready in {server.ready_s:.1f} s, RSS {rss:.0f} MB (peak {peak:.0f} MB)")

    with Server("--scale", str(args.scale)) as server:
        print(f"sequential, 1 pooled requests.Session: {throughput(server, 1, args.seconds)}")
        print(f"{args.threads} client threads: {throughput(server, args.threads, args.seconds)}")
        print(f"{args.threads} client processes: {throughput(server, args.threads, args.seconds, processes=True)}")
        bare = throughput(server, args.threads, args.seconds, processes=True, bare=True)
        print(f"{args.threads} bare http.client processes: {bare}")
    concurrent_latency(100, 300)


if __name__ == "__main__":
    main()
