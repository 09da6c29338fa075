"""How long an HTTP API asked us to wait: the one reading of rate-limit answers for plug-ins.

Forges and sinks say "not now" in several ways, and a reporter that ignores them gets its token
blocked (GitHub's secondary limits escalate when a client keeps retrying early):

- ``Retry-After`` in seconds or as an HTTP date (RFC 9110), on 429, 503 and GitHub's 403;
- ``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset`` (epoch seconds; GitHub) or
  ``RateLimit-Remaining: 0`` with ``RateLimit-Reset`` (GitLab);
- GitHub's secondary rate limit: a 403 (or 429) whose body says so and may carry no header at
  all, for which GitHub's documentation asks for at least a minute.

:func:`delay` answers the seconds to wait, or ``None`` when the answer is not a rate limit.
"""

from __future__ import annotations

import email.utils
import time
from typing import Mapping

__all__ = ["SECONDARY_DEFAULT", "MAX_DELAY", "delay", "retry_after"]

SECONDARY_DEFAULT = 60.0
"""Seconds to wait on a secondary rate limit that names no time (GitHub: "at least one minute")."""
MAX_DELAY = 3600.0
"""A wait longer than this is cut to it: a broken header must not park a report for days."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value.strip()
    return None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP date); ``None`` if unreadable."""
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_DELAY)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return min(max(when.timestamp() - (time.time() if now is None else now), 0.0), MAX_DELAY)


def _reset(headers: Mapping[str, str], now: float) -> float | None:
    for prefix in ("X-RateLimit-", "RateLimit-"):
        remaining = _header(headers, prefix + "Remaining")
        reset = _header(headers, prefix + "Reset")
        if remaining == "0" and reset and reset.replace(".", "", 1).isdigit():
            value = float(reset)
            # GitHub and GitLab send epoch seconds; the IETF draft sends seconds from now.
            seconds = value - now if value > 1_000_000_000 else value
            return min(max(seconds, 0.0), MAX_DELAY)
    return None


def delay(status: int, headers: Mapping[str, str], body: str = "", now: float | None = None) -> float | None:
    """Seconds the answer asks us to wait before the next request, or ``None`` if it is no rate limit."""
    now = time.time() if now is None else now
    asked = retry_after(_header(headers, "Retry-After"), now)
    if status in (429, 503) and asked is not None:
        return asked
    if status in (403, 429):
        if asked is not None:
            return asked
        reset = _reset(headers, now)
        if reset is not None:
            return reset
        if "secondary rate limit" in body.lower() or "abuse detection" in body.lower():
            return SECONDARY_DEFAULT
        if status == 429:
            return SECONDARY_DEFAULT
    return None
