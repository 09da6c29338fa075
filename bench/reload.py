"""Rule reload under load: how long a large rule set takes to reload, and what the edge feels meanwhile.

Starts a real nats-server and ``trigger-router serve`` with a file of ``--rules`` rules (each with
an ``exact`` filter, a CEL filter and a templated ``exec`` action, like real ones). A client asks
``GET /healthz`` in a loop, one request at a time, and records each answer's latency: first for
``--idle`` seconds with nothing else happening (the baseline), then while the file is rewritten
with as many renamed rules, until serve logs ``rules reloaded: N rule(s)``. A bad file follows
(one bad byte at the end), until ``rule reload rejected`` appears: that path must cost no more.

Printed as a Markdown table for README: reload time, and the latency percentiles during each
reload as ratios of the idle baseline measured in the same run.

    .venv/bin/python bench/reload.py [--rules 3000] [--idle 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from tests.support import processes  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402


def rule_file(count: int, generation: int) -> str:
    documents = []
    for i in range(count):
        documents.append(json.dumps({
            "apiVersion": "trigger-router.dev/v1alpha1", "kind": "TriggerRule",
            "metadata": {"name": f"gen{generation}-rule-{i}"},
            "spec": {"filters": [{"exact": {"type": f"com.example.app{i}.deployed"}},
                                 {"cel": f'data.replicas > {i % 7} && source.startsWith("/ci/")'}],
                     "action": {"exec": {"command": ["/bin/true", "{{ data.version }}", f"app{i}"]}}}}))
    return "\n---\n".join(documents) + "\n"


async def sample(http: aiohttp.ClientSession, url: str, until) -> list[float]:
    latencies = []
    while not until():
        start = time.perf_counter()
        async with http.get(url) as response:
            await response.read()
        latencies.append(time.perf_counter() - start)
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(args: argparse.Namespace, work: Path) -> list[tuple[str, float, list[float]]]:
    nats_server = NatsServer(work / "jetstream").start()
    rules = work / "rules.yaml"
    rules.write_text(rule_file(args.rules, 0))
    log = work / "serve.log"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_server.url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
           "TRIGGER_ROUTER_RULES__PATHS": json.dumps([str(rules)]), "TRIGGER_ROUTER_RULES__RELOAD_INTERVAL": "0.2s",
           "TRIGGER_ROUTER_STATE_DIR": str(work / "state")}
    with open(log, "w") as out:
        serve = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], env=env, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    results = []
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/healthz"
            for _ in range(600):
                if "HTTP edge listening" in log.read_text():
                    try:
                        async with http.get(url) as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                await asyncio.sleep(0.1)
            idle_end = time.monotonic() + args.idle
            results.append(("idle (baseline)", 0.0, await sample(http, url, lambda: time.monotonic() > idle_end)))
            for label, content, marker in (
                    (f"valid reload of {args.rules:,} rules", rule_file(args.rules, 1),
                     f"rules reloaded: {args.rules} rule(s)"),
                    (f"rejected reload ({args.rules:,} rules, bad last byte)",
                     rule_file(args.rules, 2).encode() + b"# \xff\n", "rule reload rejected")):
                before = log.read_text().count(marker)
                start = time.monotonic()
                rules.write_bytes(content if isinstance(content, bytes) else content.encode())
                latencies = await sample(http, url, lambda: log.read_text().count(marker) > before)
                results.append((label, time.monotonic() - start, latencies))
    finally:
        processes.stop_group(serve)
        nats_server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=3000)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tr-bench-reload-") as work:
        results = asyncio.run(measure(args, Path(work)))
    base = results[0][2]
    base_p50, base_p99, base_max = percentile(base, 0.5), percentile(base, 0.99), max(base)
    print("| phase | time to reload | /healthz answers | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for label, took, latencies in results:
        p50, p99, worst = percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies)
        reload = "-" if not took else f"{took:.2f} s"
        print(f"| {label} | {reload} | {len(latencies):,} | {p50 * 1e3:.1f} ms ({p50 / base_p50:.1f}x) "
              f"| {p99 * 1e3:.1f} ms ({p99 / base_p99:.1f}x) | {worst * 1e3:.1f} ms ({worst / base_max:.1f}x) |")
    print(f"\nidle median {statistics.median(base) * 1e3:.2f} ms; ratios are against the idle phase of this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
