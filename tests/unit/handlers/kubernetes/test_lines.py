"""Watch streams split into lines by hand: any chunking, bounded lines, skipped events that still count.

The expected lines are written by hand from what a watch stream is (JSON lines separated by
``\\n``); the last test reads a real HTTP stream that carries what a broken proxy or apiserver
could send, and the watch must deliver the good event after the bad lines.
"""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from kubernetes import aio

from handlers.kubernetes import client as kube
from handlers.kubernetes import watchlines
from router import errors

Oversized = watchlines.Oversized


@pytest.mark.parametrize("limit,chunks,lines", [
    (100, [b'{"a":1}\n'], [b'{"a":1}']),
    (100, [b'{"a":', b'1}\n'], [b'{"a":1}']),  # split mid-line
    (100, [b'{"a"', b':', b'1', b'}', b'\n'], [b'{"a":1}']),  # one byte at a time, nearly
    (100, [b'{"a":1}\n{"b":2}\n{"c":3}\n'], [b'{"a":1}', b'{"b":2}', b'{"c":3}']),  # several per chunk
    (100, [b'{"a":1}\n{"b"', b':2}\n{"c":3}'], [b'{"a":1}', b'{"b":2}', b'{"c":3}']),  # no trailing newline
    (100, [b'\n\n{"a":1}\r\n\n'], [b'{"a":1}']),  # empty lines dropped, CRLF tolerated
    (100, [b'{"a":1}', b'\n'], [b'{"a":1}']),  # the newline alone in the next chunk
    (8, [b'12345678\n'], [b'12345678']),  # exactly the limit
    (8, [b'123456789\n'], [Oversized(b'12345678', 9)]),  # one over, in one chunk
    (8, [b'12345', b'6789', b'0123\nok\n'], [Oversized(b'12345678', 13), b'ok']),  # over across chunks
    (4, [b'ab\n', b'x' * 50, b'x' * 50, b'\ncd\n'], [b'ab', Oversized(b'xxxx', 100), b'cd']),  # far over
    (4, [b'123456'], [Oversized(b'1234', 6)]),  # oversized last line without newline
    (4, [b'123456\n1234567\n'], [Oversized(b'1234', 6), Oversized(b'1234', 7)]),  # two in a row
    (100, [], []),
])
def test_lines(limit, chunks, lines):
    splitter = watchlines.Lines(limit)
    found = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.end()
    assert found == lines


@pytest.mark.parametrize("chunks,lines", [
    ([b'123456789\n'], [Oversized(b'123456', 9)]),
    ([b'12', b'345\n', b'12\n'], [Oversized(b'12345', 5), b'12']),
    ([b'1234\n'], [b'1234']),
])
def test_lines_keep_a_longer_head_of_oversized_ones(chunks, lines):
    splitter = watchlines.Lines(4, keep=6)
    assert [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.end() == lines


def head(event: dict, cut: int | None = None) -> Oversized:
    text = json.dumps(event, separators=(",", ":")).encode()
    return Oversized(text[:cut] if cut else text, 10_000_000)


CONFIGMAP = {"type": "MODIFIED", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {
    "name": "big", "namespace": "shop", "uid": "u-1", "resourceVersion": "41",
    "annotations": {"note": '"resourceVersion":"999"'}}, "data": {"blob": "<" * 1000}}}
# Custom resources come with sorted keys: annotations before resourceVersion, and an annotation may
# be named like a metadata field. Only the decoder, not a text search, tells them apart.
CUSTOM = {"type": "ADDED", "object": {"apiVersion": "example.dev/v1", "kind": "Canary", "metadata": {
    "annotations": {"resourceVersion": "999"}, "name": "c", "namespace": "shop", "resourceVersion": "42",
    "uid": "u-2"}, "spec": {"x": "y" * 1000}}}


@pytest.mark.parametrize("line,expected", [
    (head(CONFIGMAP, 400), {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {
        "name": "big", "namespace": "shop", "uid": "u-1", "resourceVersion": "41"}},
        "skipped": {"type": "MODIFIED", "bytes": 10_000_000}}),
    (head(CUSTOM, 400), {"type": "BOOKMARK", "object": {"kind": "Canary", "apiVersion": "example.dev/v1",
                                                        "metadata": {"name": "c", "namespace": "shop", "uid": "u-2",
                                                                     "resourceVersion": "42"}},
                         "skipped": {"type": "ADDED", "bytes": 10_000_000}}),
    (head({**CONFIGMAP, "type": "DELETED"}, 400), {"type": "DELETED", "object": {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "big", "namespace": "shop", "uid": "u-1",
                                                              "resourceVersion": "41"}},
        "skipped": {"type": "DELETED", "bytes": 10_000_000}}),
    (head({"type": "DELETED", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "9"}}}),
     {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": None, "metadata": {"resourceVersion": "9"}},
      "skipped": {"type": "DELETED", "bytes": 10_000_000}}),  # no uid: nothing to forget, the position moves
    (head(CONFIGMAP, 120), None),  # the head ends inside the metadata
    (head({"type": "ADDED", "object": {"kind": "ConfigMap", "data": {"blob": "x" * 1000}, "metadata": {}}}, 300),
     None),  # data before metadata, cut: not ours to guess
    (head({"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {"name": "no-version"}}}), None),
    (Oversized(b"<html>" * 100, 600), None),
    (Oversized(b"", 5), None),
])
def test_skipped_event_from_head(line, expected):
    assert watchlines.skipped_event(line) == expected


async def test_watch_survives_lines_that_are_not_events():
    """A real HTTP watch stream: garbage, a JSON line that is no event, an oversized event, then a good one."""
    good = {"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {"name": "ok", "resourceVersion": "7"}}}
    big = {"type": "ADDED", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {
        "name": "big", "namespace": "n", "resourceVersion": "6"}, "data": {"x": "<" * 5000}}}
    body = b"".join([b"<html>502 Bad Gateway</html>\n", b'["not", "an", "event"]\n', b'{"type": "ADDED"}\n',
                     b'{"type": "ADDED", "object": {"metadata": {"name": "no-version"}}}\n',
                     b'{"type": "ADDED", "object": {"metadata": ["odd"]}}\n',
                     json.dumps(big).encode() + b"\n", json.dumps(good).encode() + b"\n"])

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for start in range(0, len(body), 1000):  # chunked transfer, boundaries anywhere
            await response.write(body[start:start + 1000])
        if request.query.get("resourceVersion") == "7":
            await response.write(b'{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}\n')
        return response

    app = web.Application()
    app.router.add_get("/api/v1/configmaps", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    configuration = aio.client.Configuration(host=f"http://127.0.0.1:{runner.addresses[0][1]}")
    client = kube.Client(aio.client.ApiClient(configuration), max_object_bytes=4096)
    try:
        events = [event async for event in client.watch("/api/v1/configmaps", {}, timeout=5)]
        assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
            ("BOOKMARK", "6"), ("ADDED", "7")]
        assert (client.malformed, client.oversized) == (5, 1)
        with pytest.raises(errors.KubernetesRefused) as refused:
            async for _ in client.watch("/api/v1/configmaps", {"resourceVersion": "7"}, timeout=5):
                pass
        assert refused.value.status == 410
    finally:
        await client.close()
        await runner.cleanup()
