"""The CloudEvents NATS protocol binding.

trigger-router publishes in binary mode (attributes in ``ce-`` headers, data as the payload) so
consumers can filter on headers without parsing bodies, and accepts both modes when consuming:
structured when ``Content-Type`` starts with ``application/cloudevents`` (matched
case-insensitively), binary otherwise.
"""

from __future__ import annotations

from typing import Mapping

from router import errors
from router.model import events
from router.model.bindings import headers as ce_headers

STRUCTURED = "application/cloudevents"


def to_binary(event: events.CloudEvent) -> tuple[dict[str, str], bytes]:
    hdrs = {ce_headers.PREFIX + name: ce_headers.encode(value)
            for name, value in event.attributes.items() if name != "datacontenttype"}
    if event.datacontenttype:
        hdrs["Content-Type"] = event.datacontenttype
    return hdrs, event.data or b""


def from_message(hdrs: Mapping[str, str] | None, payload: bytes) -> events.CloudEvent:
    hdrs = hdrs or {}
    content_type = next((v for k, v in hdrs.items() if k.lower() == "content-type"), None)
    if content_type and content_type.lower().startswith(STRUCTURED):
        return events.parse_structured(payload)
    attributes: dict = ce_headers.attributes_from(hdrs.items())
    if not attributes:
        raise errors.BadRequest("message carries no ce- headers and is not a structured CloudEvent")
    if content_type:
        attributes["datacontenttype"] = content_type
    return events.CloudEvent(events.validate(attributes), payload if payload or content_type else None)
