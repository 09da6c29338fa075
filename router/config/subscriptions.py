"""The ``subscriptions`` settings section: who may manage subscriptions, and the bounds of delivery.

A module of its own (not in ``settings``) because it is one concern with a dozen documented knobs:
the tokens of the ``/subscriptions`` API, the KV bucket the subscriptions live in, the limits the
API enforces, and the retry schedule of deliveries to sinks. ``settings.Settings`` composes it in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from router.config.base import Duration, Section

__all__ = ["SubscriptionsSettings"]


class SubscriptionsSettings(Section):
    tokens: list[SecretStr] = []
    """Bearer tokens allowed to use ``/subscriptions`` (several, for rotation); ``tokens_file``: one
    per line. With none, every request to the API is refused with 401."""
    deliver: Literal["auto"] | bool = "auto"
    """Whether this process delivers events to the sinks of subscriptions. ``auto``: when ``tokens``
    is not empty (a process that cannot serve the API is usually not meant to deliver for it)."""
    bucket: str = "TR_SUBSCRIPTIONS"
    """JetStream KV bucket holding the subscriptions (replicas: ``bus.replicas``)."""
    max_subscriptions: int = Field(100, ge=1, le=10_000)
    """Subscriptions the manager holds at most; one more gets 409. Every subscription costs two
    durable consumers on the server."""
    max_filters: int = Field(32, ge=1, le=1_000)
    """Filter expressions per subscription, nested ones counted; more get 413."""
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    """Largest request body of the API; larger gets 413 before it is read."""
    max_attempts: int = Field(20, ge=1, le=1_000)
    """Delivery attempts of one event before it goes to the subscription's dead letters."""
    backoff: Duration = 1.0
    """Base of the retry delay: attempt n waits a random time up to ``min(max_backoff, backoff * 2**(n-1))``."""
    max_backoff: Duration = 300.0
    """Longest wait between two attempts (a ``Retry-After`` of a 429 or 503 is honoured up to 1 h)."""
    request_timeout: Duration = Field(10.0, gt=0)
    """One HTTP request to a sink, connection included."""
    max_in_flight: int = Field(32, ge=1, le=1_000)
    """Events of one subscription and stream handed to its sink (or waiting for a retry) at once."""

    @model_validator(mode="after")
    def _sane(self) -> "SubscriptionsSettings":
        if any(not token.get_secret_value() for token in self.tokens):
            raise ValueError("subscriptions.tokens must be non-empty")
        if self.max_backoff < self.backoff:
            raise ValueError("subscriptions.max_backoff must not be shorter than subscriptions.backoff")
        return self

    def delivering(self) -> bool:
        return bool(self.tokens) if self.deliver == "auto" else self.deliver
