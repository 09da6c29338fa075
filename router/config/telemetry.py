"""The ``log``, ``metrics`` and ``tracing`` settings: what an operator can observe of the service.

Their own module only to keep ``settings`` short; they are core sections like ``router``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from router.config.base import Duration, Section


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    """``json``: one object per line with the fields of ``router.config.logcontext`` (``run_id``, ``trace_id``...)."""


class MetricsSettings(Section):
    """Prometheus metrics on the HTTP edge (``router.telemetry.metrics``)."""

    enabled: bool = True
    path: str = Field("/metrics", pattern=r"^/[A-Za-z0-9/_-]*$")
    """Where the text exposition is served, on the HTTP edge's port."""
    poll_interval: Duration = Field(15.0, gt=0)
    """How often consumer backlogs (``trigger_router_consumer_*``) are read from JetStream."""


class TracingSettings(Section):
    """OpenTelemetry export of runs as spans (``router.telemetry.tracing``); trace context travels anyway."""

    otlp_endpoint: str | None = Field(None, pattern=r"^https?://")
    """OTLP/HTTP traces endpoint (``http://otel-collector:4318/v1/traces``); unset: nothing is exported."""
    headers: dict[str, SecretStr] = {}
    """Request headers for the collector (an API key); masked in logs and ``config check``."""
    service_name: str = "trigger-router"
    timeout: float = Field(10.0, gt=0)
    """Seconds one export request may take."""
    export_interval: Duration = Field(5.0, gt=0)
    """How long spans are batched before they are sent."""
