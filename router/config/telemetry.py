"""The ``log`` and ``metrics`` settings: what an operator can observe of the service.

Their own module only to keep ``settings`` short; they are core sections like ``router``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
