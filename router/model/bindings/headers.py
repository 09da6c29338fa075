"""Header value encoding shared by the HTTP and NATS bindings.

Both bindings (HTTP §3.1.3.2, NATS §3.1.3.2) percent-encode space, double-quote, percent and every
character outside printable ASCII, and on receipt first undo RFC 7230 double-quoting, then do one
round of percent-decoding.
"""

from __future__ import annotations

from typing import Iterable
from urllib.parse import quote, unquote

from router.model.events import AttributeValue

PREFIX = "ce-"
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


def encode(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return quote(str(value), safe=_SAFE)


def decode(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        out, escaped = [], False
        for char in value[1:-1]:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        value = "".join(out)
    return unquote(value, errors="strict")


def attributes_from(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``ce-`` headers of a binary-mode message as attributes (values stay strings)."""
    attributes = {}
    for name, value in headers:
        lower = name.lower()
        if lower.startswith(PREFIX) and len(lower) > len(PREFIX):
            attributes[lower[len(PREFIX):]] = decode(value)
    return attributes

