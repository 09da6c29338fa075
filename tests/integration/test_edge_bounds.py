"""The edge under hostile input (issue #13, points 1, 2 and 6), against a real nats-server.

Every request that can never be stored is refused with a 4xx and a JSON body naming the limit,
nothing of it is stored, and the NATS connection stays up: a valid event right after is stored by
the same client, which was never closed, replaced or reconnected. A client the server does close
(an -ERR provoked by publishing around the checks) is replaced. Requests aiohttp cannot parse get
JSON 400s without tracebacks, and slow senders are cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from router.bus import connection
from router.bus.connection import Bus
from router.edge import protocol
from tests.integration.conftest import Edge, github_signature, make_settings, serve_edge

GITHUB = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "github"
MAX_BODY = 1024 * 1024 - 8 * 1024  # the default http.max_body_bytes


@pytest.fixture
async def edge(nats_server):
    settings = make_settings(nats_server.url, HTTP__HEADER_TIMEOUT="1s", HTTP__BODY_TIMEOUT="1s")
    async with serve_edge(nats_server.url, settings, hardened=True) as served:
        yield served


def event(event_id: str = "ok-1", **attributes) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "/bounds", "type": "com.example.bounds",
            **attributes}


STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}


def nested(depth: int) -> dict:
    data: object = 1
    for _ in range(depth):
        data = {"a": data}
    return event(data=data)


def github_push(event_name: str) -> tuple[bytes, dict]:
    body = (GITHUB / "push" / "payload.json").read_bytes()
    return body, {"Content-Type": "application/json", "X-GitHub-Event": event_name,
                  "X-GitHub-Delivery": "bounds-1", "X-Hub-Signature-256": github_signature(body)}


def binary(body: bytes, content_type: str, **extensions: str) -> tuple[bytes, dict]:
    headers = {"ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "/bounds", "ce-type": "com.example.bin",
               "Content-Type": content_type}
    headers.update({f"ce-{name}": value for name, value in extensions.items()})
    return body, headers


# (name, path, body, headers, status, the limit or field the answer must name)
REFUSED = [
    ("4 KiB type", "/events", json.dumps(event(type="t" * 4080)), STRUCTURED, 413, "max_subject_bytes"),
    ("body near the limit plus headers", "/events",
     *binary(b"x" * MAX_BODY, "application/octet-stream", **{f"big{i}": "y" * 4000 for i in range(5)}),
     413, "max_payload"),
    ("5,000-char X-GitHub-Event", "/webhooks/github", *github_push("push" + "x" * 4996), None, None),
    ("70 KiB attribute", "/events", json.dumps(event(big="b" * 70 * 1024)), STRUCTURED, 413, "max_attribute_bytes"),
    ("headers over JetStream's 64 KiB", "/events",
     json.dumps(event(**{f"a{i}": "x" * 4000 for i in range(17)})), STRUCTURED, 413, "max_header_bytes"),
    ("too many events", "/events", json.dumps([event(f"e-{i}") for i in range(101)]), BATCH, 413,
     "http.max_batch_events"),
    ("JSON nested 100 deep", "/events", json.dumps(nested(100)), STRUCTURED, 400, "http.max_json_depth"),
    ("JSON nested 5,000 deep", "/events", "[" * 5000 + "]" * 5000, BATCH, 400, "http.max_json_depth"),
    ("bad third event (long attribute)", "/events",
     json.dumps([event("b-0"), event("b-1"), event("b-2", big="b" * 5000), event("b-3")]), BATCH, 413,
     "max_attribute_bytes"),
    ("bad third event (lone surrogate)", "/events",
     '[%s, %s, %s]' % (json.dumps(event("s-0")), json.dumps(event("s-1")),
                       json.dumps(event("s-2")).replace('"/bounds"', '"/bounds\\ud800"')), BATCH, None, None),
    ("header injection through datacontenttype", "/events",
     json.dumps(event(datacontenttype="text/plain\r\nNats-Msg-Id: forged", data="x")), STRUCTURED, 400,
     "datacontenttype"),
    ("binary mode: application/json that is not JSON", "/events", *binary(b"{not json", "application/json"),
     400, "data"),
]


async def stream_messages(edge, stream: str = "TR_EVENTS") -> int:
    return (await edge.bus.js.stream_info(stream)).state.messages


@pytest.mark.parametrize("name, path, body, headers, status, named", REFUSED, ids=[case[0] for case in REFUSED])
async def test_refused_whole_nothing_stored_and_the_bus_stays_up(edge, name, path, body, headers, status, named):
    client = edge.bus.nc
    response = await edge.http.post(edge.url + path, data=body, headers=headers)
    answer = await response.json()  # a JSON body, whatever the refusal
    assert 400 <= response.status < 500, answer
    if status is not None:
        assert response.status == status, answer
    if named is not None:
        assert named in (answer.get("limit"), answer.get("field")) or named in answer.get("field", ""), answer
    else:
        assert answer.get("limit") or answer.get("field"), answer
    assert await stream_messages(edge) == 0
    assert await stream_messages(edge, "TR_DEADLETTER") == 0

    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(event()), headers=STRUCTURED)
    assert response.status == 202, await response.text()
    assert await stream_messages(edge) == 1
    assert edge.bus.nc is client and client.is_connected and edge.bus.replaced == 0
    assert client.stats["reconnects"] == 0


async def test_a_batch_at_the_limit_is_stored_whole(edge):
    batch = [event(f"e-{i}") for i in range(100)]
    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(batch), headers=BATCH)
    assert response.status == 202, await response.text()
    assert await stream_messages(edge) == 100


async def test_a_client_the_server_closed_is_replaced_and_ingest_works_again(edge, caplog):
    old = edge.bus.nc
    await old.publish("tr.events." + "x" * 5000, b"")  # around every check: the server answers -ERR
    deadline = time.monotonic() + 15
    while not (edge.bus.nc is not old and edge.bus.connected and edge.bus._streams_ready.is_set()):
        assert time.monotonic() < deadline, "the closed client was not replaced"
        await asyncio.sleep(0.05)
    assert old.is_closed and edge.bus.replaced == 1
    assert "connecting a new one" in caplog.text
    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(event("after")), headers=STRUCTURED)
    assert response.status == 202, await response.text()
    assert [e.id for e in await edge.stored()] == ["after"]
    assert (await edge.http.get(f"{edge.url}/healthz")).status == 200


async def test_healthz_fails_when_nothing_replaces_a_closed_client(edge, monkeypatch):
    monkeypatch.setattr(connection, "STUCK_AFTER", 0.0)
    assert (await edge.http.get(f"{edge.url}/healthz")).status == 200
    edge.bus._connector.cancel()  # the supervised part gone: no one will replace the client
    await asyncio.gather(edge.bus._connector, return_exceptions=True)
    await edge.bus.nc.close()
    response = await edge.http.get(f"{edge.url}/healthz")
    assert response.status == 503
    assert "closed" in (await response.json())["detail"]


# Requests aiohttp's parser refuses before any handler runs: raw bytes on a socket.
SECRET = "Bearer s3cr3t-t0ken"
UNPARSABLE = [
    ("oversized header", f"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}{'a' * 9000}\r\n\r\n"),
    ("too many headers", "POST /events HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{i}: v\r\n" for i in range(200))
     + "\r\n"),
    ("duplicate Content-Length", "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    ("bad Content-Length", "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}"),
    ("chunked and a length", "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
     "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    ("bad method", "G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad chunk size", "POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
]


async def exchange(edge, raw: bytes, timeout: float = 5.0) -> bytes:
    host, port = edge.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)  # until the server closes
    finally:
        writer.close()


@pytest.mark.parametrize("name, raw", UNPARSABLE, ids=[case[0] for case in UNPARSABLE])
async def test_unparsable_requests_get_json_400s_without_tracebacks(edge, caplog, name, raw):
    caplog.set_level(logging.DEBUG)
    answer = await exchange(edge, raw.encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:200]
    assert b"application/json" in head.lower()
    assert json.loads(body)["error"] == "bad request"
    assert b"s3cr3t" not in answer
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING], caplog.text
    assert "s3cr3t" not in caplog.text


async def test_unparsable_requests_are_logged_once_at_info(edge, caplog, monkeypatch):
    monkeypatch.setattr(protocol, "_refusals", protocol._Quiet())
    caplog.set_level(logging.INFO)
    for _ in range(20):
        await exchange(edge, b"G(T / HTTP/1.1\r\n\r\n")
    lines = [r for r in caplog.records if "unparsable" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and not lines[0].exc_info


async def test_a_slow_request_head_is_cut_off(edge):
    host, port = edge.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    writer.write(b"POST /events HTTP/1.1\r\nHost: x\r\n")

    async def trickle():
        for i in range(100):
            await asyncio.sleep(0.2)
            writer.write(f"X-Slow-{i}: v\r\n".encode())

    dripping = asyncio.create_task(trickle())
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, with nothing to say
    finally:
        dripping.cancel()
        writer.close()
    assert 0.9 <= time.monotonic() - started < 4


async def test_a_silent_connection_is_cut_off(edge):
    host, port = edge.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()


async def test_a_slow_body_gets_408(edge):
    raw = b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 100\r\n\r\n{"
    answer = await exchange(edge, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 408 Request Timeout"), answer[:200]
    assert json.loads(body)["limit"] == "http.body_timeout"
    assert await stream_messages(edge) == 0


async def test_keep_alive_requests_each_get_the_head_timeout(edge):
    for i in range(3):  # answered requests on one connection are not cut off by the head timer
        response = await edge.http.post(f"{edge.url}/events", data=json.dumps(event(f"k-{i}")), headers=STRUCTURED)
        assert response.status == 202
        await asyncio.sleep(0.6)
    assert await stream_messages(edge) == 3


async def test_a_plain_app_runner_logs_unparsable_requests_quietly_too(nats_server, caplog, monkeypatch):
    """``make_app``'s handler_args reach any runner: no traceback, no secret, even without ``protocol.runner``."""
    monkeypatch.setattr(protocol, "_refusals", protocol._Quiet())
    caplog.set_level(logging.DEBUG)
    async with serve_edge(nats_server.url, make_settings(nats_server.url)) as plain:
        answer = await exchange(plain, UNPARSABLE[0][1].encode())
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING], caplog.text
    assert "s3cr3t" not in caplog.text and "unparsable request" in caplog.text



@contextlib.asynccontextmanager
async def serving(settings, monkeypatch):
    """``serve`` in this process, once ``/readyz`` answers 200: (its URL, the buses it built)."""
    from router.cli import serve as serve_mod

    buses: list[Bus] = []

    class Recorded(Bus):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            buses.append(self)

    monkeypatch.setattr(serve_mod, "Bus", Recorded)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_mod.serve(settings, stop=stop))
    url = f"http://127.0.0.1:{settings.http.port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    if (await http.get(f"{url}/readyz")).status == 200:
                        break
                assert time.monotonic() < deadline and not task.done(), "serve did not become ready"
                await asyncio.sleep(0.1)
        yield url, buses, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_serve_answers_unparsable_requests_with_json(nats_server, tmp_path, free_port, monkeypatch):
    settings = make_settings(nats_server.url, HTTP__PORT=str(free_port), STATE_DIR=str(tmp_path / "state"),
                             ROUTER__ENABLED="false")
    async with serving(settings, monkeypatch) as (url, _, _):
        plain = Edge(url, None, nats_server.url, settings, None)
        answer = await exchange(plain, b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"application/json" in answer.partition(b"\r\n\r\n")[0].lower(), answer


async def test_after_a_replaced_client_serve_routes_and_executes_again(nats_server, tmp_path, free_port,
                                                                       monkeypatch):
    ran = tmp_path / "ran"
    rule = tmp_path / "rules.yaml"
    command = ["python3", "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')", str(ran),
               "{{ event.id }}"]
    rule.write_text(f"kind: TriggerRule\nmetadata: {{name: append}}\nspec:\n"
                    f"  filters: [{{exact: {{type: com.example.bounds}}}}]\n"
                    f"  action:\n    exec:\n      command: {json.dumps(command)}\n")
    settings = make_settings(nats_server.url, HTTP__PORT=str(free_port), RULES__PATHS=json.dumps([str(rule)]),
                             STATE_DIR=str(tmp_path / "state"), ROUTER__START="all")

    async def ran_ids(count: int, serving_task) -> list[str]:
        deadline = time.monotonic() + 30
        while len(ids := ran.read_text().split() if ran.exists() else []) < count:
            assert time.monotonic() < deadline and not serving_task.done(), f"only {ids} ran"
            await asyncio.sleep(0.1)
        return ids

    async with serving(settings, monkeypatch) as (url, buses, task), aiohttp.ClientSession() as http:
        assert (await http.post(f"{url}/events", data=json.dumps(event("one")), headers=STRUCTURED)).status == 202
        assert await ran_ids(1, task) == ["one"]
        [bus] = buses
        old = bus.nc
        await old.publish("tr.events." + "x" * 5000, b"")  # the server answers -ERR and closes
        deadline = time.monotonic() + 30
        while bus.nc is old or not bus.connected:
            assert time.monotonic() < deadline, "the closed client was not replaced"
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30
        while (answer := await http.post(f"{url}/events", data=json.dumps(event("two")),
                                         headers=STRUCTURED)).status != 202:
            assert time.monotonic() < deadline, await answer.text()
            await asyncio.sleep(0.2)
        assert await ran_ids(2, task) == ["one", "two"]
