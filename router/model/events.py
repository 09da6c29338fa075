"""The CloudEvent as trigger-router carries it, and the JSON event format.

Events are immutable: ``attributes`` holds every context attribute (required, optional and
extensions) by its lowercase name, ``data`` the payload as bytes exactly as it would travel in
binary mode. Keeping data as bytes means non-JSON payloads (``data_base64``) survive every hop
unchanged, and JSON payloads are parsed only by whoever needs to look inside.

Validation follows the CloudEvents 1.0 core spec (``../shared/specs/cloudevents``); errors are
``errors.BadRequest`` naming the attribute, because they come from senders. JSON from senders is
read with :func:`load_json` (``jsontext``: strict UTF-8, a depth limit, finite numbers), and every
string attribute must be valid Unicode, so that an accepted event can always be encoded for the bus.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from router import errors
from router.model import jsontext

SPECVERSION = "1.0"
REQUIRED = ("specversion", "id", "source", "type")
OPTIONAL = ("datacontenttype", "dataschema", "subject", "time")
JSON_CONTENT_TYPE = "application/json"
_NAME = re.compile(r"^[a-z0-9]{1,64}$")
# A lone surrogate: what a non-UTF-8 header byte (aiohttp decodes with surrogateescape) or a JSON
# "\ud800" becomes; it cannot be encoded as UTF-8, so it could never be published.
_SURROGATE = re.compile("[\ud800-\udfff]")
# The JSON format's reserved member names that are not attributes.
_DATA_MEMBERS = ("data", "data_base64")

AttributeValue = str | int | bool


@dataclass(frozen=True, slots=True, eq=True)
class CloudEvent:
    attributes: Mapping[str, AttributeValue]
    data: bytes | None = None
    _json: Any = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def source(self) -> str:
        return self.attributes["source"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def subject(self) -> str | None:
        return self.attributes.get("subject")

    @property
    def datacontenttype(self) -> str | None:
        return self.attributes.get("datacontenttype")

    def is_json(self) -> bool:
        return is_json_media_type(self.datacontenttype or JSON_CONTENT_TYPE)

    def json(self) -> Any:
        """The data parsed as JSON (``None`` without data); raises ``BadRequest`` if it is not."""
        if self._json is not None:
            return self._json
        if self.data is None:
            return None
        return jsontext.loads(self.data, what="data", field="data")


def is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON_CONTENT_TYPE or media.endswith("+json") or media == "text/json"


def make(attributes: Mapping[str, Any], data: Any = None, *, raw: bytes | None = None) -> CloudEvent:
    """Build a validated event; ``data`` is JSON-serialized unless ``raw`` bytes are given.

    With both, ``raw`` is the exact JSON text ``data`` was parsed from (a webhook body): it is kept
    byte for byte, which is both faithful to the sender and saves re-serializing on the hot path.
    """
    attrs = dict(attributes)
    attrs.setdefault("specversion", SPECVERSION)
    if raw is not None and data is not None:
        attrs.setdefault("datacontenttype", JSON_CONTENT_TYPE)
        return CloudEvent(validate(attrs), raw, data)
    if raw is None and data is not None:
        attrs.setdefault("datacontenttype", JSON_CONTENT_TYPE)
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return CloudEvent(validate(attrs), raw, data)
    return CloudEvent(validate(attrs), raw)


def validate(attributes: dict[str, Any]) -> dict[str, AttributeValue]:
    for name in REQUIRED:
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            raise errors.BadRequest(f"required attribute '{name}' is missing or empty", field=name)
    if attributes["specversion"] != SPECVERSION:
        raise errors.BadRequest(
            f"specversion {attributes['specversion']!r} is not supported (only {SPECVERSION})",
            field="specversion",
        )
    for name, value in attributes.items():
        if not _NAME.match(name):
            raise errors.BadRequest(
                f"attribute name {name!r} must be 1-64 lowercase letters or digits", field=name
            )
        if value is None:
            raise errors.BadRequest(f"attribute '{name}' is null", field=name)
        if isinstance(value, bool) or isinstance(value, int):
            if name in REQUIRED or name in OPTIONAL:
                raise errors.BadRequest(f"attribute '{name}' must be a string", field=name)
            if not isinstance(value, bool) and not -(2**31) <= value < 2**31:
                raise errors.BadRequest(f"attribute '{name}' is outside the 32-bit range", field=name)
        elif not isinstance(value, str):
            raise errors.BadRequest(
                f"attribute '{name}' must be a string, integer or boolean", field=name
            )
        elif _SURROGATE.search(value):
            raise errors.BadRequest(f"attribute '{name}' is not valid Unicode text (a byte that is not "
                                    "UTF-8, or a lone surrogate)", field=name)
    time = attributes.get("time")
    if time is not None:
        try:
            datetime.fromisoformat(time.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise errors.BadRequest(f"time {time!r} is not an RFC 3339 timestamp", field="time") from exc
    return attributes


def from_json_object(obj: Any) -> CloudEvent:
    """One event from the JSON format (structured mode / one batch member)."""
    if not isinstance(obj, dict):
        raise errors.BadRequest("a structured CloudEvent must be a JSON object")
    attrs = {k: v for k, v in obj.items() if k not in _DATA_MEMBERS}
    if "data" in obj and "data_base64" in obj:
        raise errors.BadRequest("an event cannot carry both 'data' and 'data_base64'", field="data")
    if "data_base64" in obj:
        try:
            raw = base64.b64decode(obj["data_base64"], validate=True)
        except (ValueError, TypeError) as exc:  # binascii.Error, or non-ASCII text
            raise errors.BadRequest("data_base64 is not valid base64", field="data_base64") from exc
        return CloudEvent(validate(attrs), raw)
    if "data" not in obj or obj["data"] is None:
        return CloudEvent(validate(attrs), None)
    data = obj["data"]
    content_type = attrs.get("datacontenttype")
    if content_type is None:
        attrs["datacontenttype"] = JSON_CONTENT_TYPE
    elif not is_json_media_type(str(content_type)) and isinstance(data, str):
        # JSON format §3.1: non-JSON data that is a string is carried as the string itself.
        return CloudEvent(validate(attrs), data.encode())
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return CloudEvent(validate(attrs), raw, data)


def to_json_object(event: CloudEvent, *, binary: bool = False) -> dict[str, Any]:
    """The JSON format; ``binary=True`` always uses ``data_base64`` (exact bytes, no JSON parse)."""
    obj: dict[str, Any] = dict(event.attributes)
    if event.data is None:
        return obj
    if binary:
        obj["data_base64"] = base64.b64encode(event.data).decode()
        return obj
    if event.is_json():
        try:
            obj["data"] = event.json()
            return obj
        except errors.BadRequest:
            pass
    content_type = (event.datacontenttype or "").lower()
    if content_type.startswith("text/"):
        try:
            obj["data"] = event.data.decode()
            return obj
        except UnicodeDecodeError:
            pass
    obj["data_base64"] = base64.b64encode(event.data).decode()
    return obj


def parse_structured(body: bytes) -> CloudEvent:
    return from_json_object(load_json(body))


def parse_batch(body: bytes) -> list[CloudEvent]:
    doc = load_json(body)
    if not isinstance(doc, list):
        raise errors.BadRequest("a CloudEvents batch must be a JSON array")
    events = []
    for index, member in enumerate(doc):
        try:
            events.append(from_json_object(member))
        except errors.BadRequest as exc:
            where = f"[{index}].{exc.field}" if exc.field else f"[{index}]"
            raise errors.BadRequest(f"batch member {index}: {exc.detail}", field=where) from exc
    return events


def dumps(event: CloudEvent) -> bytes:
    return json.dumps(to_json_object(event), separators=(",", ":"), ensure_ascii=False).encode()


def load_json(body: bytes | str, *, what: str = "body", field: str | None = None) -> Any:
    """A sender's JSON (a webhook body, an embedded document), or ``BadRequest`` naming the member."""
    return jsontext.loads(body, what=what, field=field)


_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z")


def rfc3339(value: Any) -> str | None:
    """A sender's timestamp as RFC 3339, or ``None`` if it is absent or unreadable.

    Webhook payloads use several spellings (GitLab's ``2016-08-12 15:23:28 UTC``); the ``time``
    attribute must be RFC 3339, and an unreadable time is dropped rather than refusing the event.
    """
    if not isinstance(value, str) or not value:
        return None
    parsed = None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                parsed = datetime.strptime(value.replace(" UTC", " +0000"), fmt.replace("%Z", "%z"))
                break
            except ValueError:
                continue
    if parsed is None or parsed.year < 1970:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.isoformat().replace("+00:00", "Z")
