"""Header value encoding of the HTTP and NATS bindings (both §3.1.3.2)."""

from __future__ import annotations

import pytest

from router import errors
from router.model import events
from router.model.bindings import headers
from router.model.bindings import nats as nats_binding


@pytest.mark.parametrize("value,encoded", [
    ("plain", "plain"),
    ("with space", "with%20space"),
    ('say "hi"', "say%20%22hi%22"),
    ("100%", "100%25"),
    ("€uro", "%E2%82%ACuro"),
    ("tab\there", "tab%09here"),
    (True, "true"),
    (42, "42"),
])
def test_encode(value, encoded):
    assert headers.encode(value) == encoded


@pytest.mark.parametrize("received,decoded", [
    ("with%20space", "with space"),
    ('"quoted \\"value\\""', 'quoted "value"'),  # older senders double-quote (RFC 7230 §3.2.6)
    ("%E2%82%ACuro", "€uro"),
])
def test_decode(received, decoded):
    assert headers.decode(received) == decoded


def test_nats_consumer_accepts_structured_mode():
    payload = b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}'
    event = nats_binding.from_message({"content-type": "application/cloudevents+json"}, payload)
    assert (event.id, event.json()) == ("1", {"a": 1})


def test_nats_binary_round_trip():
    event = events.make({"id": "1", "source": "/s", "type": "t", "subject": "a b", "ext": "é"}, {"x": 1})
    hdrs, payload = nats_binding.to_binary(event)
    assert hdrs["ce-subject"] == "a%20b" and hdrs["Content-Type"] == "application/json"
    assert nats_binding.from_message(hdrs, payload) == event


def test_message_without_cloudevent_is_refused():
    with pytest.raises(errors.BadRequest):
        nats_binding.from_message({"Nats-Msg-Id": "x"}, b"hello")
