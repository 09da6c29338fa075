"""``POST /events``: the CloudEvents HTTP binding in all three modes, checked with the official SDK.

Requests are produced by the cloudevents SDK (an implementation independent of ours) and what lands
on the bus is compared with what was sent: attributes, extensions and data bytes.
"""

from __future__ import annotations

import base64
import json

from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent

from router.model import events

PNG_BYTES = bytes(range(256)) * 4  # not UTF-8, not JSON: must survive unchanged


def sdk_event(event_id: str, data, **attributes) -> SdkEvent:
    return SdkEvent(attributes={"type": "com.example.deploy", "source": "/ci/example", "id": event_id,
                                "specversion": "1.0", **attributes}, data=data)


async def test_binary_mode_preserves_extensions_and_binary_data(edge):
    sent = sdk_event("bin-1", PNG_BYTES, datacontenttype="image/png", subject="app/web",
                     traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", team="payments")
    message = sdk_http.to_binary(sent, JSONFormat())
    response = await edge.http.post(f"{edge.url}/events", data=message.body, headers=message.headers)
    assert response.status == 202, await response.text()
    [stored] = await edge.stored()
    assert stored.data == PNG_BYTES
    assert {k: stored.attributes[k] for k in ("id", "type", "source", "subject", "traceparent", "team")} == {
        "id": "bin-1", "type": "com.example.deploy", "source": "/ci/example", "subject": "app/web",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "team": "payments"}
    assert stored.datacontenttype == "image/png"


async def test_structured_mode_with_json_data_and_odd_characters(edge):
    sent = sdk_event("str-1", {"image": "registry/app@sha256:abc", "n": 3},
                     datacontenttype="application/json", subject='quote " and spaces é', priority="high")
    message = sdk_http.to_structured(sent, JSONFormat())
    response = await edge.http.post(f"{edge.url}/events", data=message.body, headers=message.headers)
    assert response.status == 202, await response.text()
    [stored] = await edge.stored()
    assert stored.json() == {"image": "registry/app@sha256:abc", "n": 3}
    assert stored.subject == 'quote " and spaces é'
    assert stored.attributes["priority"] == "high"


async def test_structured_data_base64_round_trips(edge):
    body = {"specversion": "1.0", "id": "b64-1", "source": "/s", "type": "t.bin",
            "datacontenttype": "application/octet-stream", "data_base64": base64.b64encode(PNG_BYTES).decode()}
    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(body),
                                    headers={"Content-Type": "application/cloudevents+json"})
    assert response.status == 202
    [stored] = await edge.stored()
    assert stored.data == PNG_BYTES
    # What `events tail --json` prints is read back by the SDK as the same event.
    read_back = JSONFormat().read(None, events.dumps(stored))
    assert read_back.get_data() == PNG_BYTES and read_back.get_id() == "b64-1"


async def test_batch_mode_stores_every_event(edge):
    batch = [
        {"specversion": "1.0", "id": f"batch-{i}", "source": "/batch", "type": "com.example.batch",
         "seq": i, "data": {"i": i}}
        for i in range(5)
    ]
    batch.append({"specversion": "1.0", "id": "batch-bin", "source": "/batch", "type": "com.example.batch",
                  "datacontenttype": "application/octet-stream", "data_base64": base64.b64encode(b"\x00\xff").decode()})
    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(batch),
                                    headers={"Content-Type": "application/cloudevents-batch+json"})
    assert response.status == 202, await response.text()
    stored = {e.id: e for e in await edge.stored()}
    assert set(stored) == {f"batch-{i}" for i in range(5)} | {"batch-bin"}
    assert stored["batch-3"].json() == {"i": 3} and str(stored["batch-3"].attributes["seq"]) == "3"
    assert stored["batch-bin"].data == b"\x00\xff"


async def test_missing_required_attribute_is_400_naming_it(edge):
    body = {"specversion": "1.0", "id": "no-source", "type": "t"}
    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(body),
                                    headers={"Content-Type": "application/cloudevents+json"})
    assert response.status == 400
    answer = await response.json()
    assert answer["field"] == "source" and "source" in answer["detail"]
    assert await edge.stored() == []


async def test_batch_with_one_bad_member_stores_nothing(edge):
    batch = [{"specversion": "1.0", "id": "ok", "source": "/s", "type": "t"},
             {"specversion": "1.0", "id": "", "source": "/s", "type": "t"}]
    response = await edge.http.post(f"{edge.url}/events", data=json.dumps(batch),
                                    headers={"Content-Type": "application/cloudevents-batch+json"})
    assert response.status == 400
    assert (await response.json())["field"] == "[1].id"
    assert await edge.stored() == []


async def test_binary_mode_without_specversion_is_415(edge):
    response = await edge.http.post(f"{edge.url}/events", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 415
    assert "ce-specversion" in (await response.json())["detail"]


async def test_other_event_format_is_415(edge):
    response = await edge.http.post(f"{edge.url}/events", data=b"x",
                                    headers={"Content-Type": "application/cloudevents+avro"})
    assert response.status == 415
