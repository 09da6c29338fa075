"""Extension types survive the NATS binding (issue #12 point 7), and old messages still read.

Expected headers are written by hand from the README: canonical strings in ``ce-`` headers, and
``Trigger-Router-Attribute-Types`` only for Integer and Boolean extensions.
"""

from __future__ import annotations

import pytest

from router import errors
from router.model import events
from router.model.bindings import http as http_binding
from router.model.bindings import nats as nats_binding

BASE = {"id": "1", "source": "/s", "type": "t"}
TYPES = "Trigger-Router-Attribute-Types"


@pytest.mark.parametrize("extensions,ce_headers,types_header", [
    ({"myint": 42}, {"ce-myint": "42"}, "myint=integer"),
    ({"myint": -2147483648}, {"ce-myint": "-2147483648"}, "myint=integer"),
    ({"mybool": True}, {"ce-mybool": "true"}, "mybool=boolean"),
    ({"mybool": False}, {"ce-mybool": "false"}, "mybool=boolean"),
    ({"myint": 0, "mybool": False}, {"ce-myint": "0", "ce-mybool": "false"}, "myint=integer,mybool=boolean"),
    # URI, Timestamp, Binary are Strings in the model (as in the JSON format): no types header.
    ({"myuri": "https://example.com/x"}, {"ce-myuri": "https://example.com/x"}, None),
    ({"myref": "../x?y=1"}, {"ce-myref": "../x?y=1"}, None),
    ({"mytime": "2024-05-01T10:00:00Z"}, {"ce-mytime": "2024-05-01T10:00:00Z"}, None),
    ({"mybinary": "AAH/"}, {"ce-mybinary": "AAH/"}, None),
    # A String that looks like another type stays a String.
    ({"mystr": "42"}, {"ce-mystr": "42"}, None),
    ({"mystr": "true"}, {"ce-mystr": "true"}, None),
    ({"mystr": "a b", "myint": 7}, {"ce-mystr": "a%20b", "ce-myint": "7"}, "myint=integer"),
])
def test_round_trip_keeps_types(extensions, ce_headers, types_header):
    event = events.make({**BASE, "time": "2024-05-01T10:00:00Z", **extensions}, {"x": 1})
    hdrs, payload = nats_binding.to_binary(event)
    assert {k: v for k, v in hdrs.items() if k in ce_headers} == ce_headers
    assert hdrs.get(TYPES) == types_header
    back = nats_binding.from_message(hdrs, payload)
    assert back == event
    assert {k: type(back.attributes[k]) for k in extensions} == {k: type(v) for k, v in extensions.items()}


@pytest.mark.parametrize("hdrs,expected", [
    # Stored before the types header existed: every attribute reads as a String, as it always did.
    ({"ce-myint": "42", "ce-mybool": "true"}, {"myint": "42", "mybool": "true"}),
    ({"ce-mytime": "2024-05-01T10:00:00Z"}, {"mytime": "2024-05-01T10:00:00Z"}),
    # Header names are case-insensitive, type names too; spaces around entries are tolerated.
    ({"CE-MyInt": "42", "trigger-router-attribute-types": " MyInt = Integer "}, {"myint": 42}),
])
def test_messages_decode(hdrs, expected):
    event = nats_binding.from_message({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s",
                                       "ce-type": "t", **hdrs}, b"")
    assert {k: event.attributes[k] for k in expected} == expected
    assert {k: type(event.attributes[k]) for k in expected} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize("hdrs,field", [
    ({"ce-myint": "4x", TYPES: "myint=integer"}, "myint"),
    ({"ce-myint": "4.0", TYPES: "myint=integer"}, "myint"),
    ({"ce-myint": "2147483648", TYPES: "myint=integer"}, "myint"),  # outside the 32-bit range
    ({"ce-mybool": "True", TYPES: "mybool=boolean"}, "mybool"),  # the encoding is case-sensitive
    ({"ce-myint": "42", TYPES: "other=integer"}, "other"),
    ({"ce-myint": "42", TYPES: "myint=integer,myint=integer"}, "myint"),
    ({"ce-myuri": "https://x", TYPES: "myuri=uri"}, "myuri"),
    ({"ce-myint": "42", TYPES: "myint"}, TYPES),
    ({"ce-subject": "1", TYPES: "subject=integer"}, "subject"),  # only extensions can be typed
])
def test_types_header_that_does_not_fit_is_refused(hdrs, field):
    with pytest.raises(errors.BadRequest) as caught:
        nats_binding.from_message({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
                                   **hdrs}, b"")
    assert caught.value.field == field


@pytest.mark.parametrize("hdrs,expected", [
    # HTTP binding §3.1.3.2: a binary-mode extension is a String unless the producer declares it.
    ([("ce-myint", "42"), ("ce-mybool", "true")], {"myint": "42", "mybool": "true"}),
    ([("ce-myint", "42"), ("ce-mybool", "true"), (TYPES, "myint=integer"), (TYPES, "mybool=boolean")],
     {"myint": 42, "mybool": True}),
])
def test_http_binary_mode_types(hdrs, expected):
    [event] = http_binding.parse("application/json", [("ce-specversion", "1.0"), ("ce-id", "1"),
                                                      ("ce-source", "/s"), ("ce-type", "t"), *hdrs], b"{}")
    assert {k: event.attributes[k] for k in expected} == expected
    assert {k: type(event.attributes[k]) for k in expected} == {k: type(v) for k, v in expected.items()}
