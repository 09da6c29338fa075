"""Size limits checked where they are configured, against the NATS server's ``max_payload``.

Every message the router writes (an ingested event, a run record, a run state, an outcome) is
one NATS message, and nats-server refuses anything over its ``max_payload`` (1 MiB by default).
A limit the router accepts but the bus cannot store is found too late otherwise: as a 413 for
every large webhook or, before ``Bus._check_size``, as an endless retry. So ``serve`` checks the
configured limits once connected, and refuses to start with the keys to change.
"""

from __future__ import annotations

from router import errors

__all__ = ["HEADER_ROOM", "check", "check_message"]

HEADER_OVERHEAD = 16
"""``NATS/1.0`` status line and the blank line that ends the header block."""
HEADER_ROOM = 8 * 1024
"""Bytes kept free in a message for the ``ce-`` and ``Nats-Msg-Id`` headers of an ingested event."""


def check(max_body_bytes: int, max_payload: int) -> None:
    """``ConfigError`` when a request body of ``max_body_bytes`` could not be stored as one message."""
    fits = max_payload - HEADER_ROOM
    if max_body_bytes > fits:
        raise errors.ConfigError(
            f"{max_body_bytes} bytes do not fit in one NATS message: the server's "
            f"max_payload is {max_payload}, and {HEADER_ROOM} bytes are kept for headers; set "
            f"http.max_body_bytes to at most {fits}, or raise max_payload in the nats-server configuration",
            path="http.max_body_bytes")


def check_message(payload: bytes, headers: dict[str, str], max_payload: int) -> None:
    """``PayloadTooLarge`` for a message the server would refuse; checked before it is sent.

    nats-server answers an oversized message with ``-ERR`` and closes the connection, and nats-py
    checks only the payload, not the headers: one such message would cut every part of the router
    off NATS. ``PayloadTooLarge`` is permanent; retrying cannot help.
    """
    size = len(payload) + sum(len(k) + len(v.encode()) + 4 for k, v in headers.items()) + HEADER_OVERHEAD
    if max_payload and size > max_payload:
        raise errors.PayloadTooLarge(f"the message is {size} bytes with its headers; "
                                     f"the NATS server stores at most {max_payload} (max_payload)")
