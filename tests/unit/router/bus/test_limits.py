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
