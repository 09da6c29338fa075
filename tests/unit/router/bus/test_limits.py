"""Start-up size checks: the edge's body limit must fit the server's max_payload with its headers."""

import pytest

from router import errors
from router.bus import limits
from router.config import settings as settings_mod

MiB = 1024 * 1024


@pytest.mark.parametrize("body, payload, fits", [
    (MiB - 8 * 1024, MiB, True),        # the default against nats-server's default
    (MiB, MiB, False),                  # the old default: a 1 MiB body plus headers never fit
    (MiB - 8 * 1024 + 1, MiB, False),
    (4 * MiB, 8 * MiB, True),
    (64 * 1024, 64 * 1024, False),
])
def test_body_limit_against_max_payload(body, payload, fits):
    if fits:
        limits.check(body, payload)
        return
    with pytest.raises(errors.ConfigError) as caught:
        limits.check(body, payload)
    message = str(caught.value)
    assert "http.max_body_bytes" in message and str(payload - 8 * 1024) in message and "max_payload" in message


def test_the_default_body_limit_fits_the_default_server():
    limits.check(settings_mod.HttpSettings().max_body_bytes, MiB)


@pytest.mark.parametrize("payload, headers, refused", [
    (b"x" * 1000, {"Nats-Msg-Id": "a"}, False),
    (b"x" * (MiB - 100), {"Nats-Msg-Id": "a"}, False),
    (b"x" * (MiB - 10), {"Nats-Msg-Id": "a"}, True),              # fits alone, not with its headers
    (b"x" * 10, {"ce-type": "t" * MiB}, True),                      # a huge header alone
    (b"x" * (MiB - 100), {"ce-x": "é" * 40}, True),                 # header bytes, not characters
])
def test_a_message_the_server_would_refuse_is_refused_before_sending(payload, headers, refused):
    if not refused:
        limits.check_message(payload, headers, MiB)
        return
    with pytest.raises(errors.PayloadTooLarge, match="max_payload"):
        limits.check_message(payload, headers, MiB)


# Bounds written from the README's limits table: subject 1,024 bytes, attribute 4,096 bytes (UTF-8),
# 64 attributes, header names HTTP tokens without CR/LF/NUL in values.
@pytest.mark.parametrize("subject, refused", [
    ("tr.events.com.example.push", False),
    ("s" * 1024, False),
    ("s" * 1025, True),
    ("tr.events." + "t" * 4080, True),          # the 4 KiB type that made nats-server drop the connection
    ("é" * 513, True),                           # bytes, not characters
])
def test_subject_length(subject, refused):
    if not refused:
        limits.check_subject(subject, "type")
        return
    with pytest.raises(errors.PayloadTooLarge) as caught:
        limits.check_subject(subject, "type")
    assert caught.value.limit == "max_subject_bytes" and caught.value.field == "type"
    assert "1024" in caught.value.detail


@pytest.mark.parametrize("subject", ["tr.events.a b", "tr.events.a\r\nPUB x 1", "tr..events", "tr.events.",
                                     "tr.events.*", "tr.>", "tr.events.a\tb", "tr.events.\x00"])
def test_subjects_the_server_would_misread(subject):
    with pytest.raises(errors.BadRequest) as caught:
        limits.check_subject(subject)
    assert caught.value.limit == "subject_syntax"


@pytest.mark.parametrize("attributes, limit, field", [
    ({"id": "1", "ext": "x" * 4096}, None, None),
    ({"id": "1", "ext": "x" * 4097}, "max_attribute_bytes", "ext"),
    ({"id": "1", "ext": "é" * 2049}, "max_attribute_bytes", "ext"),   # 4,098 bytes in UTF-8
    ({"id": "1", "big": "b" * 70 * 1024}, "max_attribute_bytes", "big"),
    ({"n": 2 ** 31 - 1, "flag": True}, None, None),
    ({f"a{i}": "v" for i in range(64)}, None, None),
    ({f"a{i}": "v" for i in range(65)}, "max_attributes", None),
])
def test_attribute_bounds(attributes, limit, field):
    if limit is None:
        limits.check_attributes(attributes)
        return
    with pytest.raises(errors.PayloadTooLarge) as caught:
        limits.check_attributes(attributes)
    assert (caught.value.limit, caught.value.field) == (limit, field)


@pytest.mark.parametrize("headers, error, field", [
    ({"ce-id": "1", "Content-Type": "application/json; charset=utf-8", "Nats-Msg-Id": "ce-ab"}, None, None),
    ({"Content-Type": "text/plain\r\nNats-Msg-Id: forged"}, errors.BadRequest, "Content-Type"),
    ({"ce-x": "a\nb"}, errors.BadRequest, "ce-x"),
    ({"ce-x": "a\x00b"}, errors.BadRequest, "ce-x"),
    ({"bad name": "v"}, errors.BadRequest, "bad name"),
    ({"bad:name": "v"}, errors.BadRequest, "bad:name"),
    ({f"ce-a{i}": "v" for i in range(limits.MAX_HEADERS + 1)}, errors.PayloadTooLarge, None),
])
def test_headers_that_would_break_the_nats_header_block(headers, error, field):
    if error is None:
        limits.check_headers(headers)
        return
    with pytest.raises(error) as caught:
        limits.check_headers(headers)
    assert caught.value.field == field and caught.value.limit


@pytest.mark.parametrize("headers, refused", [
    ({f"ce-a{i}": "x" * 4000 for i in range(15)}, False),     # 60 KB
    ({f"ce-a{i}": "x" * 4000 for i in range(17)}, True),      # 68 KB: JetStream answered 400, the edge said 503
    ({"ce-big": "x" * 64 * 1024}, True),
])
def test_the_header_block_fits_jetstream(headers, refused):
    if not refused:
        limits.check_message(b"", headers, MiB)
        return
    with pytest.raises(errors.PayloadTooLarge) as caught:
        limits.check_message(b"", headers, MiB)
    assert caught.value.limit == "max_header_bytes"
