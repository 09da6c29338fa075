"""Encoding checks a message whole before it is sent: the errors name the attribute the sender wrote."""

import pytest

from router import errors
from router.bus import publishing
from router.model import events

MiB = 1024 * 1024


def event(**attributes) -> events.CloudEvent:
    return events.CloudEvent({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", **attributes})


@pytest.mark.parametrize("value, error, field, limit", [
    (event(), None, None, None),
    (event(type="t" * 2000), errors.PayloadTooLarge, "type", "max_subject_bytes"),
    (event(big="b" * 5000), errors.PayloadTooLarge, "big", "max_attribute_bytes"),
    (event(datacontenttype="text/plain\r\nX: y"), errors.BadRequest, "datacontenttype", "header_syntax"),
    (event(ext="\ud800"), errors.BadRequest, "ext", None),
])
def test_encode(value, error, field, limit):
    subject = f"tr.events.{publishing.subject_token(value.type)}"
    if error is None:
        message = publishing.encode(value, subject, MiB)
        assert message.subject == "tr.events.t" and message.headers["Nats-Msg-Id"] == publishing.msg_id(value)
        return
    with pytest.raises(error) as caught:
        publishing.encode(value, subject, MiB)
    assert (caught.value.field, caught.value.limit) == (field, limit)


def test_a_payload_over_max_payload_with_its_headers():
    with pytest.raises(errors.PayloadTooLarge) as caught:
        publishing.encode(events.CloudEvent(event().attributes, b"x" * (MiB - 50)), "tr.events.t", MiB)
    assert caught.value.limit == "max_payload"


def test_a_raw_record_with_a_subject_too_long():
    with pytest.raises(errors.PayloadTooLarge) as caught:
        publishing.encode_raw("tr.runs." + "r" * 2000, b"{}", "run-1", None, MiB)
    assert (caught.value.limit, caught.value.field) == ("max_subject_bytes", None)
