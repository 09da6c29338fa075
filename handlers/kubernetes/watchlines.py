"""Watch streams split into lines by hand, and events too long to keep read from their head.

aiohttp's line reader has a size limit (kopf splits by hand for the same reason), and the
apiserver escapes ``<`` as ``\\u003c``, so one large object is a line many megabytes long. The
client feeds the stream's chunks to :class:`Lines`; a line over ``kubernetes.max_object_bytes``
comes out as :class:`Oversized` with its head, from which :func:`skipped_event` reads the
metadata so the watch position still moves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Oversized:
    """A line longer than the limit: its first bytes and its full length."""

    head: bytes
    size: int


class Lines:
    """Splits a byte stream at ``\\n`` into lines of at most ``limit`` bytes, whatever the chunking.

    Holds at most ``keep`` (default: ``limit``) bytes of a line still coming; a longer line is only
    counted past that, and comes out as ``Oversized`` with its first ``keep`` bytes. Empty lines
    are dropped; a last line without its newline comes out of ``end()``.
    """

    def __init__(self, limit: int, keep: int | None = None) -> None:
        self.limit = limit
        self.keep = max(limit, keep or 0)
        self._pending = bytearray()
        self._size = 0

    def feed(self, chunk: bytes) -> list["bytes | Oversized"]:
        found: list[bytes | Oversized] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._take(chunk, start, end)
            line = self._complete()
            if line:
                found.append(line)
            start = end + 1
        self._take(chunk, start, len(chunk))
        return found

    def end(self) -> list["bytes | Oversized"]:
        line = self._complete()
        return [line] if line else []

    def _take(self, chunk: bytes, start: int, end: int) -> None:
        self._size += end - start
        room = self.keep - len(self._pending)
        if room > 0:
            self._pending += chunk[start:min(end, start + room)]

    def _complete(self) -> "bytes | Oversized | None":
        size, self._size = self._size, 0
        line = Oversized(bytes(self._pending), size) if size > self.limit else bytes(self._pending).strip()
        self._pending.clear()
        return line or None


_SPACE = re.compile(r"\s*")


def skipped_event(line: Oversized) -> dict | None:
    """The stand-in for an event too long to parse, from the metadata at its head; None if unreadable.

    Reads the event's first keys with the JSON decoder itself (so nothing inside a string can be
    mistaken for a key): ``type``, then the object's keys up to ``metadata``, whose value is decoded
    whole. The apiserver writes built-in kinds in field order (kind, apiVersion, metadata, then
    spec or data) and custom resources with sorted keys (apiVersion, kind, metadata, spec), so
    ``metadata`` is in the head unless it is itself over the limit.
    """
    text = line.head.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    event: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    inside = False
    try:
        position = _expect(text, 0, "{")
        while True:
            key, position = decoder.raw_decode(text, _skip(text, position))
            position = _skip(text, _expect(text, position, ":"))
            if key == "object" and not inside:
                position, inside = _expect(text, position, "{"), True
                continue
            value, position = decoder.raw_decode(text, position)
            (fields if inside else event)[key] = value
            if inside and key == "metadata":
                break
            position = _expect(text, position, ",")
    except (ValueError, IndexError, TypeError):
        return None
    metadata = fields["metadata"]
    if not isinstance(metadata, dict) or not isinstance(metadata.get("resourceVersion"), str):
        return None
    kept = {key: metadata[key] for key in ("name", "namespace", "uid", "resourceVersion") if key in metadata}
    obj = {"kind": fields.get("kind"), "apiVersion": fields.get("apiVersion"), "metadata": kept}
    # A deletion the watch can act on needs the uid; without one it only moves the position.
    kind = "DELETED" if event.get("type") == "DELETED" and isinstance(kept.get("uid"), str) else "BOOKMARK"
    return {"type": kind, "object": obj, "skipped": {"type": event.get("type"), "bytes": line.size}}


def _skip(text: str, position: int) -> int:
    return _SPACE.match(text, position).end()


def _expect(text: str, position: int, token: str) -> int:
    position = _skip(text, position)
    if text[position] != token:
        raise ValueError(f"expected {token!r} at {position}")
    return position + 1
