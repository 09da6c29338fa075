"""The ``reporting`` settings: how the reporters rules list in ``spec.report`` are called.

Its own module only to keep ``settings`` short; it is a core section like ``router``.
"""

from __future__ import annotations

from pydantic import Field

from router.config.base import Duration, Section


class ReportingSettings(Section):
    """How reporters (``spec.report``) are called: retries, timeouts, where progress is kept."""

    bucket: str = "TR_REPORTS"
    """KV bucket of report progress, one entry per run with reporters (``runs show`` reads it)."""
    max_attempts: int = Field(10, ge=1, le=100)
    """Attempts per reporter and stage before a failing report is given up (it never fails the run)."""
    backoff: Duration = 2.0
    """First retry delay when the server named none; doubled per attempt (full jitter) up to ``max_backoff``."""
    max_backoff: Duration = 300.0
    timeout: Duration = Field(30.0, gt=0)
    """Seconds one reporter call may take (all its requests) before it counts as a temporary failure."""
    concurrency: int = Field(16, ge=1, le=1024)
    """Outcome events this process reports on at once."""
    durable: str | None = None
    """The reporting consumer's name; default ``<router.durable>-reports``."""
