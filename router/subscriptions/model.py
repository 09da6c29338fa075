"""The subscription document: what a client writes, checked whole before anything is stored.

A request body passes four checks, in this order, and the first refusal is the answer (400 naming
the field, or 413 / 409 for a limit):

1. it is a JSON object (bounded nesting) whose members are the spec's; an unknown member is refused
   rather than ignored, because the spec's own HTTP example spells ``filter`` for ``filters``, and a
   typo there would silently subscribe to everything; ``sinkcredential`` is refused as unsupported
   (put a credential in ``protocolsettings.headers``); ``id`` is ignored on create (spec §3.2.1);
2. the published OpenAPI schema (``schema``, with its errata);
3. this module's pydantic model, for what the schema cannot say: the sink is an absolute ``http`` or
   ``https`` URL, the protocol is ``HTTP`` (the only one delivered), ``method`` is ``POST`` or
   ``PUT``, custom headers do not replace the CloudEvents binding's own, ``source`` and every
   ``types`` entry are non-empty, and ``config`` is empty (this manager defines no config keys);
4. the filters compile (``filtering``: CESQL parsed, dialects known, ``subscriptions.max_filters``).

The stored and returned document is the realized subscription: ``id`` set and the defaults applied
(``protocolsettings.method: POST``), as spec §3.2.5.1 asks.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router import errors
from router.model import jsontext
from router.subscriptions import filtering, schema

__all__ = ["HttpDelivery", "Subscription", "parse"]

MEMBERS = ("id", "source", "types", "config", "filters", "sink", "sinkcredential", "protocol", "protocolsettings")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
RESERVED_HEADERS = ("content-type", "content-length", "host", "transfer-encoding", "connection")
"""Set by the binding or HTTP itself, never by a subscription (nor any ``ce-`` header)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpDelivery(_Strict):
    """``protocolsettings`` of an ``HTTP`` subscription (spec §3.2.2.1)."""

    headers: dict[str, str] = {}
    method: Literal["POST", "PUT"] = "POST"

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name[:64]!r} is not an HTTP header name")
            if name.lower() in RESERVED_HEADERS or name.lower().startswith("ce-"):
                raise ValueError(f"header {name!r} is set by the CloudEvents HTTP binding, not by a subscription")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"the value of header {name!r} contains CR, LF or NUL")
        return headers


class Subscription(_Strict):
    id: str
    sink: str
    protocol: Literal["HTTP"]
    protocolsettings: HttpDelivery = HttpDelivery()
    source: str | None = Field(None, min_length=1)
    types: list[str] | None = Field(None, min_length=1)
    filters: list[dict[str, Any]] = []
    config: dict[str, str] = Field({}, max_length=0)

    @field_validator("sink")
    @classmethod
    def _sink(cls, sink: str) -> str:
        try:
            parts = urlsplit(sink)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL (the router POSTs events to it)")
        if any(c.isspace() for c in sink):
            raise ValueError("must not contain whitespace")
        return sink

    @field_validator("types")
    @classmethod
    def _types(cls, types: list[str] | None) -> list[str] | None:
        for index, value in enumerate(types or ()):
            if not value:
                raise ValueError(f"types[{index}] must be a non-empty string")
        return types

    def document(self) -> dict[str, Any]:
        """The realized subscription as the API returns it (absent optional members left out)."""
        return self.model_dump(exclude_none=True)

    def matcher(self, max_filters: int) -> filtering.Compiled:
        return filtering.compile(self.filters, source=self.source, types=self.types, max_filters=max_filters)


def _field(loc: tuple[Any, ...]) -> str:
    return schema.field_of(part for part in loc if part not in ("function-after", "function-before"))


def parse(body: bytes, subscription_id: str, *, update: bool, max_filters: int,
          max_depth: int) -> tuple[Subscription, filtering.Compiled]:
    """The realized subscription ``subscription_id`` from a create (``update=False``) or update body."""
    jsontext.check_depth(body, max_depth, what="the subscription", limit="http.max_json_depth")
    document = jsontext.loads(body, what="the subscription")
    if not isinstance(document, dict):
        raise errors.BadRequest("a subscription must be a JSON object")
    unknown = sorted(set(document) - set(MEMBERS))
    if unknown:
        hint = " (the member is 'filters')" if unknown[0] == "filter" else ""
        raise errors.BadRequest(f"unknown member {unknown[0][:64]!r}{hint}; a subscription has "
                                f"{', '.join(MEMBERS)}", field=unknown[0])
    if "sinkcredential" in document:
        raise errors.BadRequest("sinkcredential is not supported: send a credential the sink accepts as a "
                                "header in protocolsettings.headers", field="sinkcredential")
    if update:
        schema.check(document, "Subscription")
        if document["id"] != subscription_id:
            raise errors.BadRequest(f"id {document['id'][:64]!r} is not the id of the subscription in the path",
                                    field="id")
    else:
        document.pop("id", None)  # spec §3.2.1: ignored on create; the manager assigns it
        schema.check(document, "SubscriptionRequest")
    try:
        subscription = Subscription.model_validate({**document, "id": subscription_id})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if field == "config":
            message = "this subscription manager defines no config keys; leave config empty"
        elif field == "protocol":
            message = f"{document['protocol']!r} is not delivered by this subscription manager; use HTTP"
        raise errors.BadRequest(f"{field}: {message}", field=field or None) from exc
    return subscription, subscription.matcher(max_filters)
