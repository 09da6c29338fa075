"""CDEvents 0.5.1 carried as CloudEvents (CDEvents' CloudEvents binding).

A CDEvent derived from another event gets a deterministic id (so a redelivered webhook produces the
same CDEvent id and JetStream drops the copy), a ``chainId`` shared by every event of the same
activity (all of one pipeline run's queued/started/finished), and a RELATION/TRIGGER link to the
event it came from.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from router.model import event_types, events, tracecontext

_NAMESPACE = uuid.UUID("6f1c3f0e-4b7a-5d8e-9c2a-7e1b2d3c4f5a")


def deterministic_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\x00".join(parts)))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def oci_purl(repository_url: str, digest: str, tag: str | None = None) -> str:
    """``pkg:oci/<name>@sha256:<hex>?repository_url=<host>/<path>&tag=<tag>``.

    The digest is written as ``sha256:<hex>`` (not ``sha256%3A``) so that it reads and compares like
    the digests in image references and ``imageID``; qualifier values are percent-encoded.
    """
    repository_url = repository_url.lower().rstrip("/")
    name = repository_url.rsplit("/", 1)[-1]
    purl = f"pkg:oci/{name}@{digest}?repository_url={quote(repository_url, safe='/:')}"
    if tag:
        purl += f"&tag={quote(tag, safe='')}"
    return purl


def derive(
    trigger: events.CloudEvent,
    cdevent_type: str,
    *,
    subject_id: str,
    content: dict[str, Any],
    chain_key: str | None = None,
    chain_id: str | None = None,
    event_id: str | None = None,
    source: str | None = None,
    subject_source: str | None = None,
    custom_data: Any = None,
    timestamp: str | None = None,
) -> events.CloudEvent:
    """A CDEvent caused by ``trigger``, as a CloudEvent ready to publish.

    ``event_id`` defaults to one derived from (type, trigger); ``chain_id`` to one derived from
    ``chain_key`` (default: the trigger), so every event of one activity shares a chain.
    """
    event_id = event_id or deterministic_id(cdevent_type, trigger.source, trigger.id)
    source = source or trigger.source
    timestamp = timestamp or str(trigger.attributes.get("time") or now())
    context = {
        "specversion": event_types.CDEVENTS_SPECVERSION,
        "id": event_id,
        "source": source,
        "type": cdevent_type,
        "timestamp": timestamp,
        "chainId": chain_id or deterministic_id("chain", chain_key or f"{trigger.source}\x00{trigger.id}"),
        "links": [{
            "linkType": "RELATION",
            "linkKind": "TRIGGER",
            "target": {"contextId": trigger.id},
            "tags": {"source": trigger.source, "type": trigger.type},
        }],
    }
    subject = {"id": subject_id, "content": content}
    if subject_source:
        subject["source"] = subject_source
    body: dict[str, Any] = {"context": context, "subject": subject}
    if custom_data is not None:
        body["customData"] = custom_data
        body["customDataContentType"] = events.JSON_CONTENT_TYPE
    return events.make(
        {"id": event_id, "source": source, "type": cdevent_type, "subject": subject_id,
         "time": timestamp, **tracecontext.continued(trigger)},
        body,
    )
