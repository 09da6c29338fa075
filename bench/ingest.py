"""Ingest benchmark: signed GitHub webhooks into JetStream, next to two baselines in the same run.

All on loopback, against one real nats-server:

- **trivial**: an aiohttp app that parses the JSON body and answers 202 (no signature, no publish);
- **minimal publish**: the limit for this stack, an aiohttp app that verifies the HMAC, publishes the
  body to JetStream and awaits the storage ack, and nothing else (no normalization, no CloudEvent);
- **trigger-router**: ``serve`` (``event_loop: auto``: uvloop when installed; ``--no-uvloop`` for the
  stock loop). The baselines run on the stock asyncio loop, as a plain aiohttp app does.

Each run sends the same closed-loop load (fixed request count and concurrency) to each target,
then an open-loop load paced at half of trigger-router's measured throughput to each (latency under
moderate load, no coordinated omission). ``--runs`` repeats that against the same processes. Also
printed: each server process's CPU time per request (user + system, from /proc) under the closed loop.

    .venv/bin/python bench/ingest.py [--requests 4000] [--concurrency 16] [--runs 3] [--no-uvloop]
    .venv/bin/python bench/ingest.py --breakdown   # µs per step of the handler, in process

Prints Markdown tables for docs/benchmarks.md. Every loop is bounded by a request count.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.natsserver import NatsServer  # noqa: E402
from tests.support.ports import free_port  # noqa: E402, F401 (bench/cluster.py imports it from here)

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

# The limit for this stack: what one aiohttp process can do when it verifies the HMAC, publishes the
# body to JetStream and awaits the storage ack, and nothing else (no normalization, no CloudEvent).
PUBLISH_APP = """
import hashlib, hmac, sys
import nats
from aiohttp import web
SECRET = sys.argv[3].encode()
async def start(app):
    app["nc"] = await nats.connect(sys.argv[2])
    app["js"] = app["nc"].jetstream()
    await app["js"].add_stream(name="BENCH", subjects=["bench.>"])
async def stop(app):
    await app["nc"].close()
async def handle(request):
    body = await request.read()
    digest = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(digest, request.headers.get("X-Hub-Signature-256", "")):
        return web.json_response({"error": "bad signature"}, status=401)
    delivery = request.headers["X-GitHub-Delivery"]
    await request.app["js"].publish("bench.github.push", body, headers={"Nats-Msg-Id": delivery})
    return web.json_response({"accepted": True}, status=202)
app = web.Application()
app.on_startup.append(start)
app.on_cleanup.append(stop)
app.router.add_post("/webhooks/github", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


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


async def wait_ready(url: str) -> None:
    """``GET url`` (a router's /readyz) answers 200: streams and buckets exist, ingest can store."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered 200")


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

        await paced(rate, requests, one)
    return latencies


async def paced(rate: float, requests: int, one: Callable[[int], Awaitable[None]]) -> None:
    """``one(n)`` for each n below ``requests``, started ``rate`` times a second whatever the answers."""
    tasks, begin = [], time.perf_counter()
    for n in range(requests):
        delay = begin + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def breakdown(samples: int = 3000) -> list[tuple[str, float]]:
    """In this process, without HTTP or NATS: µs per call of each step trigger-router does for this
    webhook beyond the minimal handler's (which verifies the HMAC and publishes the body as it is)."""
    from multidict import CIMultiDict

    from router.bus.connection import Bus
    from router.config import settings as settings_mod
    from router.model import jsontext, tracecontext
    from router.plugins import catalog
    from router.plugins.sources import Delivery

    plugins = catalog.load()
    settings = settings_mod.load(None, env={"TRIGGER_ROUTER_GITHUB__SECRETS": f'["{SECRET}"]',
                                            "TRIGGER_ROUTER_NATS__URL": "nats://127.0.0.1:4222"})
    source = plugins.webhook_sources["github"](settings)
    request_headers = CIMultiDict(headers(0, "breakdown"))
    delivery = Delivery(request_headers, BODY, None, "127.0.0.1")
    bus = Bus(settings.nats, settings.bus)
    bus.nc = types.SimpleNamespace(max_payload=1024 * 1024)  # no connection here: the server's usual limit
    event = source.normalize(delivery)[0]
    steps = [
        ("HMAC verification (the minimal handler does it too)", lambda: source.authenticate(delivery)),
        ("JSON depth check of the body", lambda: jsontext.check_depth(BODY, settings.http.max_json_depth)),
        ("normalize: parse the 7 KB payload, build and validate the CloudEvent", lambda: source.normalize(delivery)),
        ("  of which json.loads alone", lambda: json.loads(BODY)),
        ("trace context from the request, or a new one", lambda: tracecontext.ensure(event, tracecontext.of_request(request_headers))),
        ("encode: binary-mode NATS headers, Nats-Msg-Id, every bound checked", lambda: bus.encode(event)),
    ]
    results = []
    for name, step in steps:
        step()
        start = time.perf_counter()
        for _ in range(samples):
            step()
        results.append((name, (time.perf_counter() - start) / samples * 1e6))
    return results


TARGETS = ("trivial", "publish", "router")
NAMES = {"trivial": "trivial aiohttp JSON handler",
         "publish": "minimal aiohttp: HMAC + JetStream publish + ack",
         "router": "trigger-router (verify + normalize + publish + ack)"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(urls: dict[str, str], pids: dict[str, int], requests: int, concurrency: int, run: int) -> dict:
    """One run: closed loop on each target, then an open loop on each at half the router's rate."""
    closed, cpu = {}, {}
    for target in TARGETS:
        before = cpu_seconds(pids[target])
        closed[target] = await closed_loop(urls[target], requests, concurrency, f"c{run}{target}")
        cpu[target] = (cpu_seconds(pids[target]) - before) / requests * 1e6
    rate = closed["router"][0] / 2
    paced = {target: await open_loop(urls[target], rate, requests // 2, f"o{run}{target}") for target in TARGETS}
    return {"closed": closed, "paced": paced, "rate": rate, "cpu": cpu}


def report(result: dict, run: int) -> None:
    closed, paced, rate = result["closed"], result["paced"], result["rate"]
    print(f"\nrun {run}\n")
    print("| load | target | req/s | p50 ms | p99 ms | server CPU µs/req |")
    print("|---|---|---:|---:|---:|---:|")
    for target in TARGETS:
        r, lat = closed[target]
        print(f"| closed loop | {NAMES[target]} | {r:,.0f} | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | "
              f"{result['cpu'][target]:,.0f} |")
    for target in TARGETS:
        lat = paced[target]
        print(f"| open loop at {rate:,.0f} req/s | {NAMES[target]} | - | {pct(lat, 50):.2f} | {pct(lat, 99):.2f} | - |")
    router = closed["router"][0]
    print(f"\nrouter / trivial {router / closed['trivial'][0]:.2f} (target >= 0.70); "
          f"router / minimal publish {router / closed['publish'][0]:.2f} (target >= 0.90); "
          f"router p99 at half rate {pct(paced['router'], 99):.2f} ms (target <= 5 ms)")


def summary(results: list[dict]) -> None:
    print("\n| run | router / trivial | router / minimal publish | router p99 at half rate (ms) |")
    print("|---:|---:|---:|---:|")
    for run, result in enumerate(results, 1):
        closed = result["closed"]
        router = closed["router"][0]
        print(f"| {run} | {router / closed['trivial'][0]:.2f} | {router / closed['publish'][0]:.2f} | "
              f"{pct(result['paced']['router'], 99):.2f} |")


def start_targets(tmp: str, nats_url: str, uvloop: bool) -> tuple[dict[str, str], dict[str, subprocess.Popen]]:
    ports = {target: free_port() for target in TARGETS}
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(ports["router"]),
           "TRIGGER_ROUTER_GITHUB__SECRETS": f'["{SECRET}"]', "TRIGGER_ROUTER_LOG__LEVEL": "warning",
           "TRIGGER_ROUTER_STATE_DIR": tmp, "TRIGGER_ROUTER_EVENT_LOOP": "auto" if uvloop else "asyncio"}
    processes = {
        "router": subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=env, cwd=ROOT,
                                   start_new_session=True),
        "trivial": subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(ports["trivial"])], start_new_session=True),
        "publish": subprocess.Popen([sys.executable, "-c", PUBLISH_APP, str(ports["publish"]), nats_url, SECRET],
                                    start_new_session=True),
    }
    return {target: f"http://127.0.0.1:{port}/webhooks/github" for target, port in ports.items()}, processes


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="consecutive runs against the same processes")
    parser.add_argument("--no-uvloop", action="store_true", help="run serve on the stock asyncio loop")
    parser.add_argument("--breakdown", action="store_true", help="only the in-process cost of each step")
    args = parser.parse_args()
    if args.breakdown:
        print("| step (in process, no HTTP, no NATS) | µs per webhook |\n|---|---:|")
        for name, cost in breakdown():
            print(f"| {name} | {cost:.1f} |")
        return

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = NatsServer(Path(tmp) / "js").start()
        urls, processes = start_targets(tmp, nats_server.url, not args.no_uvloop)
        try:
            for target in ("trivial", "publish"):
                await wait_up(urls[target])
            await wait_ready(urls["router"].replace("/webhooks/github", "/readyz"))
            for target in TARGETS:  # warm-up
                await closed_loop(urls[target], 300, args.concurrency, f"warm{target}")
            for run in range(1, args.runs + 1):
                results.append(await measure(urls, {t: p.pid for t, p in processes.items()},
                                             args.requests, args.concurrency, run))
        finally:
            for process in processes.values():
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(15)
            nats_server.stop()

    print(f"\n{args.requests} signed GitHub push webhooks ({len(BODY)} B), concurrency {args.concurrency}, "
          f"{os.cpu_count()} cores, loopback, serve on {'stock asyncio' if args.no_uvloop else 'uvloop if installed'}")
    for run, result in enumerate(results, 1):
        report(result, run)
    summary(results)


if __name__ == "__main__":
    asyncio.run(main())
