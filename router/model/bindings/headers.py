"""Header encoding shared by the HTTP and NATS bindings: values, and the types binary mode loses.

Both bindings (HTTP §3.1.3.2, NATS §3.1.3.2) percent-encode space, double-quote, percent and every
character outside printable ASCII, and on receipt first undo RFC 7230 double-quoting, then do one
round of percent-decoding.

A ``ce-`` header carries only the attribute's canonical string, so in binary mode an Integer
extension ``42`` and the String ``"42"`` look the same. That matters because rules compare typed
values (``cel: event.myint > 10`` fails on a string), and an event accepted in structured mode and
published to the bus in binary mode must not change type on the way. So a message whose event has
Integer or Boolean extensions also carries one extra header, ``Trigger-Router-Attribute-Types``,
naming them: ``myint=integer,mybool=boolean``. Only those two types need it: this model (like the
JSON format) holds Binary, URI, URI-reference and Timestamp values as strings, and required and
optional attributes are strings by definition, so every other attribute reads back correctly as a
String. An event with only string attributes carries no extra header and costs no extra work.

The header is read wherever ``ce-`` headers are, on the bus and in binary-mode HTTP requests, where
it is how a producer says an extension is not a String (without it, binary-mode extensions are
Strings, as the HTTP binding says). Without the header (messages stored before it existed, other
producers) every attribute is a String, as before. A header that does not fit the values
(unknown type, absent attribute, ``integer`` on ``4x``) is refused as ``errors.BadRequest`` naming
the attribute, rather than guessing.

Received headers are sender input: a percent-encoding that is not UTF-8 (``ce-id: %ff``) is
``errors.BadRequest`` naming the attribute, and a raw byte that is not UTF-8 (which aiohttp hands
over as a lone surrogate) is refused by ``events.validate`` like any other invalid text.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping
from urllib.parse import quote, unquote

from router import errors
from router.model.events import AttributeValue

PREFIX = "ce-"
TYPES_HEADER = "Trigger-Router-Attribute-Types"
_TYPES_LOWER = TYPES_HEADER.lower()
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')
# Canonical string encoding of Integer (core spec, Type System): a JSON number's integer part.
_INTEGER = re.compile(r"^-?[0-9]+$")


def encode(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return quote(str(value), safe=_SAFE)


def decode(value: str) -> str:
    """A received header value; ``UnicodeDecodeError`` when its percent-encoding is not UTF-8."""
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


def to_headers(attributes: Mapping[str, AttributeValue], *, skip: str = "") -> dict[str, str]:
    """The ``ce-`` headers for ``attributes`` (but ``skip``), plus the types header when needed."""
    hdrs, typed = {}, None
    for name, value in attributes.items():
        if name == skip:
            continue
        if value.__class__ is str:
            hdrs[PREFIX + name] = quote(value, safe=_SAFE)
            continue
        if typed is None:
            typed = []
        typed.append(f"{name}={'boolean' if isinstance(value, bool) else 'integer'}")
        hdrs[PREFIX + name] = encode(value)
    if typed:
        hdrs[TYPES_HEADER] = ",".join(typed)
    return hdrs


def attributes_from(headers: Iterable[tuple[str, str]]) -> dict[str, AttributeValue]:
    """The ``ce-`` headers of a binary-mode message as attributes, typed by the types header."""
    attributes: dict[str, AttributeValue] = {}
    declared = None
    for name, value in headers:
        lower = name.lower()
        if lower.startswith(PREFIX) and len(lower) > len(PREFIX):
            attribute = lower[len(PREFIX):]
            try:
                attributes[attribute] = decode(value)
            except UnicodeDecodeError as exc:
                raise errors.BadRequest(f"header {name} is percent-encoded, but not as UTF-8 (the CloudEvents "
                                        "HTTP binding, §3.1.3.2)", field=attribute) from exc
        elif lower == _TYPES_LOWER:  # repeated HTTP headers form one comma-separated list
            declared = value if declared is None else f"{declared},{value}"
    if declared is not None:
        _apply_types(attributes, declared)
    return attributes


def _apply_types(attributes: dict[str, AttributeValue], declared: str) -> None:
    for entry in declared.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, equals, kind = (part.strip() for part in entry.partition("="))
        name, kind = name.lower(), kind.lower()
        if not equals or not name:
            raise errors.BadRequest(f"{TYPES_HEADER} entry {entry!r} is not name=type", field=TYPES_HEADER)
        value = attributes.get(name)
        if value is None:
            raise errors.BadRequest(f"{TYPES_HEADER} declares attribute '{name}', which the message does "
                                    "not carry", field=name)
        if not isinstance(value, str):
            raise errors.BadRequest(f"{TYPES_HEADER} declares attribute '{name}' twice", field=name)
        if kind == "integer" and _INTEGER.match(value):
            attributes[name] = int(value)
        elif kind == "boolean" and value in ("true", "false"):
            attributes[name] = value == "true"
        elif kind in ("integer", "boolean"):
            raise errors.BadRequest(f"attribute '{name}' is declared {kind} by {TYPES_HEADER} but its "
                                    f"value is {value!r}", field=name)
        else:
            raise errors.BadRequest(f"{TYPES_HEADER} gives attribute '{name}' the type {kind!r}; only "
                                    "integer and boolean are declared (all else is a string)", field=name)
