"""Fuzz run of the HTTP edge (issue #13's acceptance): mutated requests against a real router.

Starts, on loopback: a real nats-server (JetStream, monitoring port), a fake registry API (so Docker
Hub and Quay resolve tags without the internet), and ``trigger-router serve`` with every kind of
webhook secret and an ``events_auth`` token. Then sends ``--requests`` requests, each a mutation of
a real payload (``/work/shared/fixtures``, ``tests/fixtures/registry``) or of a well-formed request:
byte flips, truncation, hostile JSON values (lone surrogates, ``1e400``, nesting thousands deep,
wrong-typed fields), huge / duplicate / non-UTF-8 headers, oversized CloudEvents attributes, bad
percent-encoding, bad Content-Length and chunking, valid signed and unsigned variants, forged
``com.github.*`` on ``/events``. Half of the well-formed ones go through aiohttp (keep-alive), the
rest and every malformed one over a raw socket. Everything is decided by ``--seed``.

Counted, and each must be zero (exit status 1 otherwise): answers >= 500 (NATS is up for the whole
run, so even a 503 is a failure), error answers whose body is not JSON, bus disconnects (closed
client connections in nats-server's ``/connz?state=closed`` plus "disconnected from NATS" / "was
closed" lines in serve's log), and events stored for refused requests: every ``--sample-every``-th
request is sent alone and the streams' last sequences compared around it; over the whole run,
messages stored in TR_EVENTS + TR_DEADLETTER beyond what 2xx answers reported are counted too.
RSS of the serve process (VmRSS) is read at the start, after every round and at the end.

    .venv/bin/python bench/fuzz.py [--requests 20000] [--seed 13] [--concurrency 16]

Prints a Markdown table for README. Bounded: a request count, and a timeout on every answer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import nats
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support import hostile  # noqa: E402
from tests.support.natsserver import NatsServer  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

GITHUB_SECRET = "fuzz-github-secret"
GITLAB_TOKEN = "fuzz-gitlab-token"
REGISTRY_SECRET = "fuzz-registry-secret"
EVENTS_TOKEN = "fuzz-events-token"
ANSWER_TIMEOUT = 15.0
"""Seconds to wait for one answer; the edge's own header/body timeouts are set to 2 s below it."""
DIGEST = "sha256:" + "ab" * 32
STREAMS = ("TR_EVENTS", "TR_DEADLETTER")
LOST_BUS = re.compile(r"disconnected from NATS|NATS client was closed")


# --- what is mutated ------------------------------------------------------------------------------

def github_payloads() -> list[tuple[str, bytes]]:
    found = []
    for path in sorted((hostile.SHARED_FIXTURES / "github").glob("*/*.json")):
        found.append((path.parent.name, path.read_bytes()))
    return found


GITHUB = github_payloads()
GITLAB = [(path.stem.capitalize() + " Hook", path.read_bytes())
          for path in sorted((hostile.SHARED_FIXTURES / "gitlab").glob("*.json"))]
# The first fixture by name: each registry's push (Harbor's folder also holds scan results, ``scanning_*``).
REGISTRIES = {name: sorted((hostile.REGISTRY_FIXTURES / name).glob("*.json"))[0].read_bytes()
              for name in ("dockerhub", "quay", "harbor", "distribution", "ecr", "gar", "acr")}
PATH_SECRET = {"dockerhub", "quay", "gar"}
CONTENT_TYPE = {"distribution": "application/vnd.docker.distribution.events.v1+json"}


@dataclass
class Request:
    kind: str
    """What the request is (a row of the per-kind table)."""
    method: str = "POST"
    path: str = "/events"
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""
    raw: bytes | None = None
    """The whole request as sent, when it is not well-formed HTTP (always over a raw socket)."""
    wellformed: bool = True
    """Headers are text aiohttp's client can send as they are."""


def sign(body: bytes) -> bytes:
    return b"sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest().encode()


def flip(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def mutate_json(rng: random.Random, body: bytes) -> tuple[str, bytes]:
    """A hostile variant of a JSON body, and the name of the mutation."""
    choice = rng.random()
    if choice < 0.15:
        return "byte flips", flip(rng, body)
    if choice < 0.25:
        return "truncated", body[:rng.randrange(len(body) + 1)]
    if choice < 0.32:
        depth = rng.choice([70, 600, 1200, 5000])
        return "deep JSON", ('{"a":' * depth + "1" + "}" * depth).encode()
    if choice < 0.36:
        return "not UTF-8", body[:50] + b"\xff\xfe\xed\xa0\x80" + body[50:]
    document = json.loads(body)
    places = hostile.paths(document)
    replaced = []
    for _ in range(rng.randint(1, 3)):
        value = rng.choice(hostile.RAW_VALUES) if rng.random() < 0.5 else random_json(rng)
        replaced.append((rng.choice(places), value))
    return "hostile values", hostile.substitute(document, replaced)


def random_json(rng: random.Random, depth: int = 0):
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.choice([0, -1, 2**64, -(2**63) - 1, 10**30, 1586922308000])
    if pick == 3:
        return rng.choice([0.5, -1e300, 1e-300])
    if pick in (4, 5):
        return rng.choice(["", "x" * rng.choice([1, 300, 70_000]), "\ud800", "a\udfffb", "%ff", "../..", "é\u0000"])
    if pick == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["id", "type", "name", "tag", "ref", "x"]): random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def hostile_header(rng: random.Random) -> bytes:
    return rng.choice([b"\xff", b"%ff", b"\xed\xa0\x80", b"sha256=\xff\xfe", b"Bearer \x80\x81", b"\xc3",
                       "é".encode(), b"x" * 5000, b"", b" ", b"a\tb", bytes(rng.randrange(32, 256) for _ in range(20))])


def github(rng: random.Random, n: int) -> Request:
    event, body = rng.choice(GITHUB)
    variant = rng.random()
    kind = "github signed"
    if variant < 0.3:
        mutation, body = mutate_json(rng, body)
        kind = f"github signed, {mutation}"
    headers = [("Content-Type", b"application/json"), ("X-GitHub-Event", event.encode()),
               ("X-GitHub-Delivery", f"fuzz-{n}".encode()), ("X-Hub-Signature-256", sign(body))]
    if 0.3 <= variant < 0.45:
        kind = "github unsigned / wrong signature"
        mutation, body = mutate_json(rng, body)
        headers[3] = ("X-Hub-Signature-256", rng.choice([b"sha256=00", hostile_header(rng), sign(b"other")]))
        if rng.random() < 0.3:
            del headers[3]
    elif 0.45 <= variant < 0.6:
        kind = "github signed, hostile headers"
        index = rng.choice([1, 2])
        headers[index] = (headers[index][0], rng.choice([b"x" * rng.choice([300, 5000, 8000]), hostile_header(rng)]))
    return Request(kind, path="/webhooks/github", headers=headers, body=body)


def gitlab(rng: random.Random, n: int) -> Request:
    event, body = rng.choice(GITLAB)
    kind = "gitlab token"
    if rng.random() < 0.5:
        mutation, body = mutate_json(rng, body)
        kind = f"gitlab token, {mutation}"
    headers = [("Content-Type", b"application/json"), ("X-Gitlab-Event", event.encode()),
               ("X-Gitlab-Token", GITLAB_TOKEN.encode()), ("X-Gitlab-Event-UUID", f"fuzz-{n}".encode())]
    roll = rng.random()
    if roll < 0.2:
        kind = "gitlab bad token / headers"
        headers[2] = ("X-Gitlab-Token", hostile_header(rng))
    elif roll < 0.3:
        kind = "gitlab bad token / headers"
        headers[3] = ("X-Gitlab-Event-UUID", hostile_header(rng))
    return Request(kind, path="/webhooks/gitlab", headers=headers, body=body)


def registry(rng: random.Random, n: int) -> Request:
    name = rng.choice(sorted(REGISTRIES))
    body = REGISTRIES[name]
    kind = "registry valid"
    if rng.random() < 0.6:
        mutation, body = mutate_json(rng, body)
        kind = f"registry, {mutation}"
    headers = [("Content-Type", CONTENT_TYPE.get(name, "application/json").encode())]
    secret = REGISTRY_SECRET
    if rng.random() < 0.15:
        kind = "registry wrong secret"
        secret = rng.choice(["wrong", "%ff", "%2e%2e", "x" * 3000])
    path = f"/webhooks/{name}"
    if name in PATH_SECRET:
        path += f"/{secret}"
    else:
        headers.append(("Authorization", b"Bearer " + secret.encode()))
        if kind == "registry wrong secret" and rng.random() < 0.5:
            headers[-1] = ("Authorization", hostile_header(rng))
    return Request(f"{kind}", path=path, headers=headers, body=body)


def cloudevent(rng: random.Random, n: int) -> dict:
    return {"specversion": "1.0", "id": f"fuzz-{n}", "source": "urn:fuzz", "type": "com.example.fuzzed",
            "datacontenttype": "application/json", "data": {"n": n}}


def events(rng: random.Random, n: int) -> Request:
    auth = ("Authorization", b"Bearer " + EVENTS_TOKEN.encode())
    roll = rng.random()
    if roll < 0.25:  # structured, one event, some attribute hostile
        event = cloudevent(rng, n)
        kind = "events structured valid"
        if rng.random() < 0.7:
            key = rng.choice(["id", "source", "type", "specversion", "time", "subject", "data", "fuzzext",
                              "datacontenttype", "dataschema"])
            event[key] = rng.choice([random_json(rng), "t" * rng.choice([256, 4080, 70_000]), "\ud800",
                                     "2026-13-45T99:00:00Z", 1e308, ""])
            kind = "events structured, hostile attribute"
        body = hostile.substitute(event, [])
        return Request(kind, headers=[("Content-Type", b"application/cloudevents+json"), auth], body=body)
    if roll < 0.4:  # batch, one event of it broken
        batch = [cloudevent(rng, f"{n}-{i}") for i in range(rng.choice([3, 5, 150]))]
        kind = "events batch valid"
        if rng.random() < 0.7:
            kind = "events batch, one bad event"
            bad = batch[min(2, len(batch) - 1)]
            bad[rng.choice(["type", "id", "source"])] = rng.choice(["t" * 4080, "t" * 70_000, 7, None, "\ud800"])
        return Request(kind, headers=[("Content-Type", b"application/cloudevents-batch+json"), auth],
                       body=hostile.substitute(batch, []))
    if roll < 0.65:  # binary mode, hostile ce- headers
        headers = [("ce-specversion", b"1.0"), ("ce-id", f"fuzz-{n}".encode()), ("ce-source", b"urn:fuzz"),
                   ("ce-type", b"com.example.fuzzed"), ("Content-Type", b"application/json"), auth]
        kind = "events binary valid"
        body = json.dumps({"n": n}).encode()
        if rng.random() < 0.75:
            kind = "events binary, hostile header"
            index = rng.randrange(5)
            value = rng.choice([b"%ff", b"%", b"%zz", b"%ed%a0%80", b"t" * rng.choice([4080, 9000]), hostile_header(rng)])
            headers[index] = (headers[index][0], value)
            if rng.random() < 0.3:
                headers.append((f"ce-x{rng.randrange(100)}", value))
        if rng.random() < 0.15:
            kind, body = "events binary, not JSON", b"{not json"
            headers[4] = ("Content-Type", b"application/json")
        return Request(kind, headers=headers, body=body)
    if roll < 0.8:  # forged events of authenticated sources
        event = {**cloudevent(rng, n), "type": rng.choice(["com.github.push", "COM.GITHUB.push", "com.gitlab.push",
                                                           "io.k8s.deployment.ready", "dev.cdevents.artifact.published.0.2.0"]),
                 "source": "https://github.com/acme/web"}
        headers = [("Content-Type", b"application/cloudevents+json")]
        kind = "events forged, no token"
        if rng.random() < 0.4:
            kind = "events forged, with token"
            headers.append(auth)
        return Request(kind, headers=headers, body=hostile.substitute(event, []))
    if roll < 0.9:  # bad tokens
        kind = "events bad token"
        return Request(kind, headers=[("Content-Type", b"application/cloudevents+json"),
                                      ("Authorization", rng.choice([b"Bearer wrong", hostile_header(rng), b"Basic eDp5"]))],
                       body=hostile.substitute(cloudevent(rng, n), []))
    mutation, body = mutate_json(rng, hostile.substitute(cloudevent(rng, n), []))
    return Request(f"events structured, {mutation}",
                   headers=[("Content-Type", b"application/cloudevents+json"), auth], body=body)


def head_of(request: Request, extra: list[bytes] = (), length: bool = True) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    lines += [name.encode() + b": " + value for name, value in request.headers]
    if length:
        lines.append(b"Content-Length: " + str(len(request.body)).encode())
    lines += list(extra)
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def protocol(rng: random.Random, n: int) -> Request:
    """Requests aiohttp's parser (or the edge before any source) must refuse: over a raw socket."""
    base = rng.choice([github, gitlab, registry, events])(rng, n)
    body = base.body
    kinds = {
        "duplicate Content-Length": lambda: head_of(base, [b"Content-Length: 3"]) + body,
        "chunked with Content-Length": lambda: head_of(base, [b"Transfer-Encoding: chunked"]) + b"5\r\nhello\r\n0\r\n\r\n",
        "bad chunk size": lambda: head_of(base, [b"Transfer-Encoding: chunked"], length=False) + b"zz\r\nhello\r\n0\r\n\r\n",
        "valid chunked": lambda: head_of(base, [b"Transfer-Encoding: chunked"], length=False)
        + b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4000]), body[i:i + 4000]) for i in range(0, len(body), 4000))
        + b"0\r\n\r\n",
        "negative Content-Length": lambda: head_of(base, [b"Content-Length: -1"], length=False) + body,
        "Content-Length not a number": lambda: head_of(base, [b"Content-Length: 12abc"], length=False) + body,
        "short body": lambda: head_of(base, [b"Content-Length: %d" % (len(body) + 100)], length=False) + body,
        "bad method": lambda: head_of(Request(base.kind, "P\x00ST" if rng.random() < 0.5 else "BREW", base.path,
                                              base.headers, body)) + body,
        "oversized header": lambda: head_of(base, [b"X-Big: " + b"b" * 9000]) + body,
        "oversized Authorization": lambda: head_of(base, [b"Authorization: Bearer " + EVENTS_TOKEN.encode() + b"x" * 9000]) + body,
        "too many headers": lambda: head_of(base, [b"X-H%d: v" % i for i in range(200)]) + body,
        "non-UTF-8 header name": lambda: head_of(base, [b"X-\xff\xfe: v"]) + body,
        "header without colon": lambda: head_of(base, [b"NoColonHere"]) + body,
        "bad percent-encoding in path": lambda: head_of(Request(base.kind, "POST", rng.choice(
            ["/webhooks/%ff", "/webhooks/dockerhub/%ff%fe", "/events%00", "/webhooks/%", "/webhooks/quay/%ed%a0%80"]),
            base.headers, body)) + body,
        "unknown source (secret as name)": lambda: head_of(Request(base.kind, "POST", f"/webhooks/{REGISTRY_SECRET}",
                                                                   base.headers, body)) + body,
        "LF only": lambda: head_of(base).replace(b"\r\n", b"\n") + body,
        "HTTP/1.0": lambda: head_of(base).replace(b"HTTP/1.1", b"HTTP/1.0", 1) + body,
        "body over the limit": lambda: head_of(Request(base.kind, "POST", base.path, base.headers,
                                                       b"[" + b"0," * (530 * 1024) + b"0]")) + b"[" + b"0," * (530 * 1024) + b"0]",
        "GET with body": lambda: head_of(Request(base.kind, "GET", rng.choice(["/healthz", "/readyz", "/events"]),
                                                 base.headers, body)) + body,
    }
    name = rng.choice(sorted(kinds))
    return Request(f"protocol: {name}", raw=kinds[name](), wellformed=False)


def generate(rng: random.Random, n: int) -> Request:
    request = rng.choices([github, gitlab, registry, events, protocol], weights=[22, 12, 22, 26, 18])[0](rng, n)
    if request.raw is None:
        request.wellformed = all(is_text(value) for _, value in request.headers)
    return request


def is_text(value: bytes) -> bool:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(" " <= c <= "~" for c in text) and len(value) < 8000


# --- sending --------------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int | None
    """None: no answer (the connection was closed or timed out without one)."""
    content_type: str = ""
    body: bytes = b""
    problem: str = ""


async def send_raw(port: int, data: bytes) -> Answer:
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(data)
                try:
                    await writer.drain()
                except ConnectionError:
                    pass  # the server may answer and close before reading everything
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ")[1])
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                        body += await reader.readexactly(size + 2)
                        if size == 0:
                            break
                else:
                    body = await reader.read()
                return Answer(status, headers.get("content-type", ""), body)
            finally:
                writer.close()
    except asyncio.IncompleteReadError as exc:
        return Answer(None, problem="closed without an answer" if not exc.partial else "answer cut short")
    except (ConnectionError, OSError) as exc:
        return Answer(None, problem=f"connection error ({type(exc).__name__})")
    except TimeoutError:
        return Answer(None, problem="no answer in time")


async def send_aiohttp(http: aiohttp.ClientSession, base: str, request: Request) -> Answer:
    headers = {}
    for name, value in request.headers:
        headers[name] = value.decode()
    try:
        async with http.request(request.method, base + request.path, data=request.body, headers=headers,
                                skip_auto_headers=["Content-Type"],
                                timeout=aiohttp.ClientTimeout(total=ANSWER_TIMEOUT)) as response:
            return Answer(response.status, response.headers.get("Content-Type", ""), await response.read())
    except TimeoutError:
        return Answer(None, problem="no answer in time")
    except aiohttp.ClientError as exc:
        return Answer(None, problem=f"client error ({type(exc).__name__})")


async def send(http: aiohttp.ClientSession, port: int, request: Request, via_aiohttp: bool) -> Answer:
    if request.raw is not None:
        return await send_raw(port, request.raw)
    if via_aiohttp and request.wellformed:
        return await send_aiohttp(http, f"http://127.0.0.1:{port}", request)
    return await send_raw(port, head_of(request) + request.body)


# --- counting -------------------------------------------------------------------------------------

@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    server_errors: list[tuple[Request, Answer]] = field(default_factory=list)
    non_json: list[tuple[Request, Answer]] = field(default_factory=list)
    no_answer: Counter = field(default_factory=Counter)
    reported_stored: int = 0
    """Messages 2xx answers say were stored (accepted, not duplicates, plus dead-lettered items)."""
    sampled_refused: int = 0
    stored_for_refused: list[tuple[Request, Answer, int]] = field(default_factory=list)

    def count(self, request: Request, answer: Answer) -> None:
        group = "no answer" if answer.status is None else f"{answer.status // 100}xx"
        self.statuses[group] += 1
        self.by_kind.setdefault(request.kind, Counter())[answer.status or 0] += 1
        if answer.status is None:
            self.no_answer[answer.problem] += 1
            return
        if answer.status >= 500:
            self.server_errors.append((request, answer))
        parsed = None
        try:
            parsed = json.loads(answer.body)
        except ValueError:
            pass
        if answer.status >= 400 and (parsed is None or "json" not in answer.content_type):
            self.non_json.append((request, answer))
        if 200 <= answer.status < 300 and isinstance(parsed, dict):
            accepted = parsed.get("accepted") or []
            self.reported_stored += sum(1 for a in accepted if isinstance(a, dict) and not a.get("duplicate"))
            self.reported_stored += len(parsed.get("rejected") or [])


async def last_sequences(js) -> int:
    total = 0
    for stream in STREAMS:
        try:
            total += (await js.stream_info(stream)).state.last_seq
        except nats.js.errors.NotFoundError:
            pass
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def closed_connections(monitor: int) -> set[int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/connz?state=closed&limit=100000", timeout=5) as answer:
        return {c["cid"] for c in json.loads(answer.read()).get("connections") or []}


async def fake_registry(port: int) -> web.AppRunner:
    """HEAD/GET manifest answers with one digest for any repository and tag."""
    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=b"{}", headers={"Docker-Content-Digest": DIGEST},
                            content_type="application/vnd.oci.image.manifest.v1+json")
    app = web.Application()
    app.router.add_route("*", "/v2/{rest:.*}", manifest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def serve_env(nats_url: str, port: int, registry_port: int, state: str) -> dict[str, str]:
    registry_api = f"http://127.0.0.1:{registry_port}"
    env = {**os.environ, "TRIGGER_ROUTER_NATS__URL": nats_url, "TRIGGER_ROUTER_HTTP__PORT": str(port),
           "TRIGGER_ROUTER_GITHUB__SECRETS": json.dumps([GITHUB_SECRET]),
           "TRIGGER_ROUTER_GITLAB__TOKENS": json.dumps([GITLAB_TOKEN]),
           "TRIGGER_ROUTER_EVENTS_AUTH__REQUIRED": "true",
           "TRIGGER_ROUTER_EVENTS_AUTH__TOKENS": json.dumps([EVENTS_TOKEN]),
           "TRIGGER_ROUTER_REGISTRIES__DOCKERHUB__API_URL": registry_api,
           "TRIGGER_ROUTER_REGISTRIES__QUAY__API_URL": registry_api,
           "TRIGGER_ROUTER_REGISTRIES__RESOLVE_ATTEMPTS": "1",
           "TRIGGER_ROUTER_HTTP__HEADER_TIMEOUT": "2s", "TRIGGER_ROUTER_HTTP__BODY_TIMEOUT": "2s",
           "TRIGGER_ROUTER_LOG__LEVEL": "info", "TRIGGER_ROUTER_STATE_DIR": state}
    for name in REGISTRIES:
        env[f"TRIGGER_ROUTER_REGISTRIES__{name.upper()}__SECRETS"] = json.dumps([REGISTRY_SECRET])
    return env


async def wait_ready(port: int, process: subprocess.Popen, log: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"serve never became ready:\n{log.read_text()[-3000:]}")


async def fuzz(args: argparse.Namespace, port: int, pid: int, js) -> tuple[Tally, list[int]]:
    rng = random.Random(args.seed)
    tally, rss = Tally(), [rss_kib(pid)]
    round_size = args.concurrency * 16
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as http:
        for start in range(0, args.requests, round_size):
            plan = [(generate(rng, n), rng.random() < 0.5, n % args.sample_every == 0)
                    for n in range(start, min(start + round_size, args.requests))]
            free = asyncio.Semaphore(args.concurrency)

            async def one(request: Request, via: bool) -> None:
                async with free:
                    tally.count(request, await send(http, port, request, via))

            await asyncio.gather(*(one(r, via) for r, via, sampled in plan if not sampled))
            for request, via, sampled in plan:  # alone: nothing else is storing meanwhile
                if not sampled:
                    continue
                before = await last_sequences(js)
                answer = await send(http, port, request, via)
                tally.count(request, answer)
                if answer.status is None or answer.status >= 300:
                    tally.sampled_refused += 1
                    stored = await last_sequences(js) - before
                    if stored:
                        tally.stored_for_refused.append((request, answer, stored))
            rss.append(rss_kib(pid))
            print(f"\r{min(start + round_size, args.requests)}/{args.requests}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return tally, rss


def shown(request: Request, answer: Answer) -> str:
    sent = request.raw if request.raw is not None else head_of(request) + request.body
    return f"{request.kind}: {answer.status} {answer.body[:160]!r}\n    request: {sent[:400]!r}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sample-every", type=int, default=10,
                        help="every n-th request is sent alone and checked for stored messages")
    parser.add_argument("--by-kind", action="store_true", help="also print the statuses of every kind of request")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        monitor = free_port()
        nats_server = NatsServer(Path(tmp) / "js", "-m", str(monitor)).start()
        port, registry_port = free_port(), free_port()
        registry = await fake_registry(registry_port)
        log = Path(tmp) / "serve.log"
        with open(log, "w") as out:
            serve = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], cwd=ROOT, start_new_session=True,
                                     env=serve_env(nats_server.url, port, registry_port, tmp),
                                     stdout=out, stderr=subprocess.STDOUT)
        nc = None
        try:
            await wait_ready(port, serve, log)
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            closed_before = closed_connections(monitor)
            stored_before = await last_sequences(js)
            began = time.monotonic()
            tally, rss = await fuzz(args, port, serve.pid, js)
            duration = time.monotonic() - began
            stored = await last_sequences(js) - stored_before
            await asyncio.sleep(1)  # a connection the last request broke shows up closed
            closed = closed_connections(monitor) - closed_before
            alive = serve.poll() is None
            rss_end = rss_kib(serve.pid) if alive else 0
        finally:
            if nc is not None:
                await nc.close()
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGTERM)
                serve.wait(30)
            await registry.cleanup()
            nats_server.stop()
        text = log.read_text(errors="replace")
        lost_lines = len(LOST_BUS.findall(text))
        tracebacks = text.count("Traceback")
        log_bytes = len(text.encode())

    unexplained = max(0, stored - tally.reported_stored)
    failures = {
        "answers >= 500 (NATS up throughout)": len(tally.server_errors),
        "error answers without a JSON body": len(tally.non_json),
        "bus disconnects (closed connz + log lines)": len(closed) + lost_lines,
        "refused requests that stored messages (sampled)": len(tally.stored_for_refused),
        "stored messages no 2xx answer reported": unexplained,
    }
    print(f"\n{args.requests:,} fuzzed requests, seed {args.seed}, concurrency {args.concurrency}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d', time.gmtime())}\n")
    print("| measure | value |")
    print("|---|---:|")
    for group in ("2xx", "4xx", "5xx", "no answer"):
        print(f"| answers {group} | {tally.statuses.get(group, 0):,} |")
    for name, value in failures.items():
        print(f"| **{name}** | **{value:,}** |")
    print(f"| refused requests sent alone and checked (every {args.sample_every}th) | {tally.sampled_refused:,} |")
    print(f"| messages stored / reported by 2xx answers | {stored:,} / {tally.reported_stored:,} |")
    print(f"| serve RSS start / peak / end | {rss[0] / 1024:.0f} / {max(rss + [rss_end]) / 1024:.0f} / "
          f"{rss_end / 1024:.0f} MiB |")
    print(f"| serve log: bytes / tracebacks | {log_bytes:,} / {tracebacks} |")
    print(f"| duration | {duration:.0f} s ({args.requests / duration:,.0f} req/s) |")
    if not alive:
        print("\nserve is no longer running")
    if tally.no_answer:
        print("\nno answer: " + ", ".join(f"{k}: {v}" for k, v in tally.no_answer.most_common()))
    if args.by_kind:
        print("\n| kind | statuses |\n|---|---|")
        for kind, statuses in sorted(tally.by_kind.items()):
            listed = ", ".join(f"{status or 'none'}: {n}" for status, n in sorted(statuses.items()))
            print(f"| {kind} | {listed} |")
    for title, found in (("answers >= 500", tally.server_errors), ("non-JSON error bodies", tally.non_json)):
        if found:
            print(f"\n{title}, first of each kind:")
            seen = set()
            for request, answer in found:
                if request.kind not in seen:
                    seen.add(request.kind)
                    print("  " + shown(request, answer))
    for request, answer, count in tally.stored_for_refused[:10]:
        print(f"\nrefused but stored {count}: " + shown(request, answer))
    if closed:
        print(f"\nclosed NATS connections: {sorted(closed)}")
    return 1 if any(failures.values()) or not alive else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
