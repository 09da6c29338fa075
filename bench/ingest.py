"""Ingest benchmark: signed GitHub webhooks into JetStream, next to a trivial aiohttp JSON handler.

Runs, in one go and all on loopback: a real nats-server, ``trigger-router serve`` against it, and a
baseline aiohttp app that parses the JSON body and answers 202 (no signature, no publish). The same
closed-loop load (fixed number of requests, fixed concurrency) goes to both; then an open-loop load
paced at half of trigger-router's measured throughput gives the latency under moderate load.

    .venv/bin/python bench/ingest.py [--requests 4000] [--concurrency 16]

Prints a Markdown table for README. Every loop is bounded by a request count.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.natsserver import NatsServer  # noqa: E402

SECRET = "bench-secret"
BODY = (ROOT.parent / "shared/fixtures/github/push/payload.json").read_bytes()
SIGNATURE = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()

BASELINE_APP = """
import json, sys
from aiohttp import web
async def handle(request):
    json.loads(await request.read())
    return web.json_response({"accepted": True}, status=202)
app = web.Application()
app.router.add_post("/webhooks/github", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.post(url, data=b"{}") as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never came up")


def headers(n: int, run: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"{run}-{n}", "X-Hub-Signature-256": SIGNATURE}


async def closed_loop(url: str, requests: int, concurrency: int, run: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def worker() -> None:
            for n in counter:
                start = time.perf_counter()
                async with http.post(url, data=BODY, headers=headers(n, run)) as response:
                    await response.read()
                    if response.status >= 300:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return requests / elapsed, latencies


async def open_loop(url: str, rate: float, requests: int, run: str) -> list[float]:
    """Send at a fixed rate regardless of answers (no coordinated omission)."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http:
        async def one(n: int) -> None:
            start = time.perf_counter()
            async with http.post(url, data=BODY, headers=headers(n, run)) as response:
                await response.read()
            latencies.append(time.perf_counter() - start)

        tasks, begin = [], time.perf_counter()
        for n in range(requests):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        nats_server = NatsServer(Path(tmp) / "js").start()
        router_port, baseline_port = free_port(), free_port()
        env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_server.url, "TRIGGER_ROUTER_HTTP__PORT": str(router_port),
               "TRIGGER_ROUTER_GITHUB__SECRETS": f'["{SECRET}"]', "TRIGGER_ROUTER_LOG__LEVEL": "warning",
               "TRIGGER_ROUTER_STATE_DIR": tmp}
        processes = [
            subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=env, cwd=ROOT, start_new_session=True),
            subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(baseline_port)], start_new_session=True),
        ]
        router_url = f"http://127.0.0.1:{router_port}/webhooks/github"
        baseline_url = f"http://127.0.0.1:{baseline_port}/webhooks/github"
        try:
            await wait_up(baseline_url)
            await wait_up(f"http://127.0.0.1:{router_port}/readyz")
            await closed_loop(router_url, 300, args.concurrency, "warm")  # warm-up
            await closed_loop(baseline_url, 300, args.concurrency, "warm")
            base_rate, base_lat = await closed_loop(baseline_url, args.requests, args.concurrency, "base")
            rate, lat = await closed_loop(router_url, args.requests, args.concurrency, "max")
            paced = await open_loop(router_url, rate / 2, args.requests // 2, "paced")
            base_paced = await open_loop(baseline_url, rate / 2, args.requests // 2, "bpaced")
        finally:
            for process in processes:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(15)
            nats_server.stop()

    print(f"\n{args.requests} signed GitHub push webhooks ({len(BODY)} B), concurrency {args.concurrency}, "
          f"{os.cpu_count()} cores, loopback\n")
    print("| load | target | req/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|")
    print(f"| closed loop | trivial aiohttp JSON handler | {base_rate:,.0f} | {pct(base_lat, 50):.2f} | {pct(base_lat, 99):.2f} |")
    print(f"| closed loop | trigger-router (verify + publish + JetStream ack) | {rate:,.0f} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} |")
    print(f"| open loop at {rate / 2:,.0f} req/s | trivial aiohttp JSON handler | - | {pct(base_paced, 50):.2f} | {pct(base_paced, 99):.2f} |")
    print(f"| open loop at {rate / 2:,.0f} req/s | trigger-router | - | {pct(paced, 50):.2f} | {pct(paced, 99):.2f} |")
    print(f"\nthroughput ratio trigger-router / trivial: {rate / base_rate:.2f} (target >= 0.60)")
    print(f"p99 at half rate: {pct(paced, 99):.2f} ms (target <= 5 ms)")


if __name__ == "__main__":
    asyncio.run(main())
