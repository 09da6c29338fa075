"""A subscription body checked whole: the realized document, and the field each refusal names.

Expected values come from the Subscriptions API (§3.2.1: id ignored on create, defaults applied;
§3.2.2.1 HTTP settings) and the README's Subscriptions API section (HTTP only, http/https sinks).
"""

from __future__ import annotations

import json

import pytest

from router import errors
from router.subscriptions import model

BASE = {"protocol": "HTTP", "sink": "https://sink.example/in"}


def parse(document, *, update=False, subscription_id="sub-1", max_filters=8):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return model.parse(body, subscription_id, update=update, max_filters=max_filters, max_depth=64)


def test_a_create_is_realized_with_the_managers_id_and_the_defaults():
    subscription, matcher = parse({**BASE, "id": "mine", "types": ["a"]})
    assert subscription.document() == {"id": "sub-1", "protocol": "HTTP", "sink": "https://sink.example/in",
                                       "types": ["a"], "filters": [], "config": {},
                                       "protocolsettings": {"headers": {}, "method": "POST"}}


def test_an_update_keeps_its_id_and_must_name_it():
    subscription, _ = parse({**BASE, "id": "sub-1", "protocolsettings": {"method": "PUT"}}, update=True)
    assert subscription.protocolsettings.method == "PUT"
    with pytest.raises(errors.BadRequest) as refused:
        parse({**BASE, "id": "sub-2"}, update=True)
    assert refused.value.field == "id"


REFUSED = {
    "not JSON": (b"{", None, 400),
    "not an object": (b"[]", None, 400),
    "too deep": (b"[" * 70 + b"]" * 70, None, 400),
    "unknown member": ({**BASE, "filter": []}, "filter", 400),
    "sinkcredential": ({**BASE, "sinkcredential": {"credentialtype": "PLAIN"}}, "sinkcredential", 400),
    "relative sink": ({**BASE, "sink": "/events"}, "sink", 400),
    "sink without host": ({**BASE, "sink": "http:///x"}, "sink", 400),
    "ws sink": ({**BASE, "sink": "ws://sink.example/"}, "sink", 400),
    "sink with a bad port": ({**BASE, "sink": "http://sink.example:x/"}, "sink", 400),
    "sink with a space": ({**BASE, "sink": "http://sink.example/a b"}, "sink", 400),
    "NATS protocol": ({**BASE, "protocol": "NATS"}, "protocol", 400),
    "DELETE method": ({**BASE, "protocolsettings": {"method": "DELETE"}}, "protocolsettings.method", 400),
    "lower-case method": ({**BASE, "protocolsettings": {"method": "post"}}, "protocolsettings.method", 400),
    "header name with a space": ({**BASE, "protocolsettings": {"headers": {"X A": "b"}}}, "protocolsettings.headers", 400),
    "header value with a newline": ({**BASE, "protocolsettings": {"headers": {"X-A": "b\r\nX-B: c"}}},
                                    "protocolsettings.headers", 400),
    "Content-Type header": ({**BASE, "protocolsettings": {"headers": {"Content-Type": "text/plain"}}},
                            "protocolsettings.headers", 400),
    "ce- header": ({**BASE, "protocolsettings": {"headers": {"CE-Type": "x"}}}, "protocolsettings.headers", 400),
    "empty types": ({**BASE, "types": []}, "types", 400),
    "empty type": ({**BASE, "types": ["a", ""]}, "types", 400),
    "empty source": ({**BASE, "source": ""}, "source", 400),
    "a config key": ({**BASE, "config": {"interval": "5"}}, "config", 400),
    "bad sql": ({**BASE, "filters": [{"exact": {"type": "a"}}, {"sql": "a AND"}]}, "filters[1].sql", 400),
    "too many filters": ({**BASE, "filters": [{"exact": {"type": "a"}}] * 9}, "filters", 413),
}


@pytest.mark.parametrize("document, field, status", REFUSED.values(), ids=REFUSED.keys())
def test_refusals(document, field, status):
    with pytest.raises(errors.IngestError) as refused:
        parse(document)
    assert refused.value.status == status and refused.value.field == field, refused.value.detail


@pytest.mark.parametrize("sink", ["http://127.0.0.1:8080/events", "https://sink.example", "HTTPS://Sink.Example/x?y=1",
                                  "http://[::1]:9000/"])
def test_sinks_accepted(sink):
    assert parse({**BASE, "sink": sink})[0].sink == sink
