"""Times as people at a terminal read and write them: ISO 8601 in UTC out, ``1h`` or RFC 3339 in.

The run states keep times as epoch seconds (``queuedAt: 1796140956.12``), which scripts compare
easily and people cannot read. The commands print ISO 8601 in UTC (``2026-12-01T16:02:36Z``)
wherever they show a time to a person, and in JSON they keep every number as it is and add a
sibling string (``queuedAt`` -> ``queuedAtIso``), so existing scripts keep working and a reader
needs no conversion. ``--since`` takes a duration back from now (``90m``, ``1h``, ``2d``, the
settings' duration syntax) or an RFC 3339 time with its offset.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from router import errors
from router.config.base import parse_duration

__all__ = ["iso", "since", "with_iso"]

_TIME_KEY = re.compile(r"(At|Until|Before)$|^(expires|started)$")
"""Keys of run states and joins whose numbers are epoch seconds (``queuedAt``, ``rateLimitedUntil``,
``notBefore``, ``retryAt``; a join's ``started`` and ``expires``)."""


def iso(timestamp: float | None) -> str:
    """``2026-12-01T16:02:36Z``; ``-`` for no time. Whole seconds: the states' fractions are noise here."""
    if not timestamp:
        return "-"
    moment = datetime.datetime.fromtimestamp(int(timestamp), datetime.timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def with_iso(value: Any) -> Any:
    """``value`` with a ``<key>Iso`` string beside every epoch-seconds ``<key>``, at any depth."""
    if isinstance(value, list):
        return [with_iso(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        out[key] = with_iso(item)
        if not isinstance(key, str) or not _TIME_KEY.search(key) or f"{key}Iso" in value:
            continue
        if _is_time(item):
            out[f"{key}Iso"] = iso(item)
        elif isinstance(item, dict) and item and all(_is_time(v) for v in item.values()):
            out[f"{key}Iso"] = {k: iso(v) for k, v in item.items()}  # retryAt: {stage: time}
    return out


def since(text: str, now: float) -> float:
    """Epoch seconds of ``--since``: ``now`` minus a duration, or an RFC 3339 time with an offset."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise errors.ConfigError(f"--since {text!r} is neither a duration (90m, 1h, 2d) nor an RFC 3339 time "
                                 "with an offset (2026-12-01T16:00:00Z)")
    return moment.timestamp()


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
