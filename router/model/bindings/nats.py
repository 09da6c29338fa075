"""The CloudEvents NATS protocol binding.

trigger-router publishes in binary mode (attributes in ``ce-`` headers, data as the payload) so
consumers can filter on headers without parsing bodies, and accepts both modes when consuming:
structured when ``Content-Type`` starts with ``application/cloudevents`` (matched
case-insensitively), binary otherwise.

Binary mode alone would turn Integer and Boolean extensions into Strings (a header holds only the
canonical string), so the live router would see ``"42"`` where ``rules test`` and the sender saw
``42``. Events with such extensions therefore also carry ``Trigger-Router-Attribute-Types``
(``headers.to_headers``); the headers stay standard binary mode for any other consumer, which sees
the canonical strings. Messages without that header, stored before it existed, still read back
with every attribute a String.
"""

from __future__ import annotations

from typing import Mapping

from router import errors
from router.model import events
from router.model.bindings import headers as ce_headers

STRUCTURED = "application/cloudevents"


def to_binary(event: events.CloudEvent) -> tuple[dict[str, str], bytes]:
    hdrs = ce_headers.to_headers(event.attributes, skip="datacontenttype")
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
