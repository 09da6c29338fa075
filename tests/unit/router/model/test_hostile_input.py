"""The model's decoders under hostile input (issue #13, point 3): JSON, percent-encoding, header bytes.

Each finding of the issue's fuzz run that reached the model is a row: before, each raised something
other than ``BadRequest`` (a 500 at the edge) or accepted an event the bus could not encode. The
properties: whatever bytes arrive, ``jsontext.loads`` and the HTTP binding either refuse with
``BadRequest`` or give a value and events that can always be encoded (UTF-8 headers, JSON data).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router import errors
from router.model import events, jsontext
from router.model.bindings import http as http_binding
from router.model.bindings import nats as nats_binding
from tests.support import hostile

BINARY = {"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/s", "ce-type": "t"}
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
EVENT = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t"}


def binary(content_type: str | None = None, **headers: str) -> tuple:
    hdrs = {**BINARY, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return content_type, hdrs


@pytest.mark.parametrize("content_type,headers,body,field", [
    (*binary(ce_id="%ff"), b"", "id"),  # UnicodeDecodeError from unquote
    (*binary(ce_id="%ed%a0%80"), b"", "id"),  # an encoded surrogate
    (*binary(ce_source="/s\udcff"), b"", "source"),  # a raw byte that is not UTF-8 (aiohttp: surrogateescape)
    (*binary(ce_myext="\udc80"), b"", "myext"),
    (*binary("application/json\udcff"), b"{}", "datacontenttype"),
    (*binary("application/json"), b"{not json", "data"),  # was stored
    (*binary("application/json"), b"[" * 2000 + b"]" * 2000, "data"),
    (*binary("application/ld+json"), b'{"a": 1e999}', "data.a"),
    (STRUCTURED, {}, json.dumps({**EVENT, "id": "\ud800"}).encode(), "id"),
    (STRUCTURED, {}, json.dumps({**EVENT, "data": {"x": "\udfff"}}).encode(), "data.x"),
    (STRUCTURED, {}, json.dumps({**EVENT, "data": {"\ud800": 1}}).encode(), "data"),
    (STRUCTURED, {}, json.dumps({**EVENT, "data_base64": "é"}).encode(), "data_base64"),
    (STRUCTURED, {}, b'{"data": ' + b"[" * 1200 + b"]" * 1200 + b"}", None),  # RecursionError
    (STRUCTURED, {}, b'{"data": ' + b"[" * 900 + b"]" * 900 + b"}", None),  # just under the recursion limit
    (STRUCTURED, {}, json.dumps({**EVENT, "data": {"n": float("inf")}}).encode(), "data.n"),  # Infinity
    (STRUCTURED, {}, json.dumps(EVENT)[:-1].encode() + b', "data": {"n": 1e400}}', "data.n"),
    (STRUCTURED, {}, json.dumps({**EVENT, "data": {"n": 2**64}}).encode(), "data.n"),
    (STRUCTURED, {}, b'{"id": "\xed\xa0\x80"}', None),  # not UTF-8
    (BATCH, {}, json.dumps([EVENT, {**EVENT, "data": {"t": "\ud800"}}]).encode(), "[1].data.t"),
])
def test_findings(content_type, headers, body, field):
    with pytest.raises(errors.BadRequest) as refused:
        http_binding.parse(content_type, headers.items(), body)
    assert refused.value.field == field


@pytest.mark.parametrize("text,value", [
    (b'{"a": "\\ud83d\\ude00"}', {"a": "\U0001F600"}),  # a surrogate pair is one character
    ('\ufeff{"a": 1}'.encode("utf-8"), {"a": 1}),  # a UTF-8 byte order mark, as json.loads allows
    ('{"a": 1}'.encode("utf-16"), {"a": 1}),  # RFC 8259 §8.1 detection, as before
    (b'{"[[[[[[": "]]]"}', {"[[[[[[": "]]]"}),  # brackets in strings do not nest
    (b'[9223372036854775807, -9223372036854775808, 18446744073709551615, 1e308]',
     [2**63 - 1, -(2**63), 2**64 - 1, 1e308]),
])
def test_what_is_still_accepted(text, value):
    assert jsontext.loads(text) == value


def test_the_depth_limit_is_exact():
    assert jsontext.loads(b"[" * jsontext.MAX_DEPTH + b"]" * jsontext.MAX_DEPTH)
    with pytest.raises(errors.BadRequest, match="deeper than"):
        jsontext.loads(b"[" * (jsontext.MAX_DEPTH + 1) + b"]" * (jsontext.MAX_DEPTH + 1))


def encodable(event: events.CloudEvent) -> None:
    hdrs, payload = nats_binding.to_binary(event)
    for key, value in hdrs.items():
        key.encode("ascii"), value.encode("utf-8")
    assert isinstance(payload, bytes)
    events.dumps(event)
    if event.data is not None and event.datacontenttype and events.is_json_media_type(event.datacontenttype):
        event.json()  # declared JSON: it was parsed (and bounded) on the way in


@hostile.bounded(200)
@given(st.binary(max_size=200) | hostile.mutated({**EVENT, "data": {"n": 1, "s": "x", "l": [1, {"k": None}]}}))
def test_loads_refuses_with_bad_request_or_gives_a_value_that_encodes(body):
    try:
        value = jsontext.loads(body)
    except errors.BadRequest as refused:
        json.dumps({"detail": refused.detail, "field": refused.field})
        return
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


MODES = st.sampled_from(["binary", "binary-json", STRUCTURED, BATCH])


@hostile.bounded(150)
@given(mode=MODES, header=st.sampled_from(["ce-id", "ce-source", "ce-type", "ce-subject", "ce-time", "ce-myext",
                                           "Trigger-Router-Attribute-Types", "Content-Type"]),
       raw=hostile.header_bytes, body=hostile.mutated({**EVENT, "time": "2024-05-01T10:00:00Z", "myext": 5,
                                                       "data": {"n": 1, "s": "x"}}))
def test_http_binding_refuses_with_4xx_or_gives_encodable_events(mode, header, raw, body):
    content_type = {"binary": None, "binary-json": "application/json"}.get(mode, mode)
    headers = {**BINARY} if mode.startswith("binary") else {}
    headers[header] = hostile.as_header(raw)
    if header == "Content-Type":
        content_type = headers.pop(header)
    if mode == BATCH:
        body = b"[" + body + b"]"
    try:
        parsed = http_binding.parse(content_type, headers.items(), body)
    except errors.IngestError as refused:
        assert refused.status in (400, 415)
        json.dumps({"detail": refused.detail, "field": refused.field})
        return
    for event in parsed:
        encodable(event)


@hostile.bounded(200)
@given(st.text(max_size=40) | hostile.json_values)
def test_rfc3339_reads_or_drops_any_value(value):
    result = events.rfc3339(value)
    assert result is None or events.validate({**EVENT, "time": result})
