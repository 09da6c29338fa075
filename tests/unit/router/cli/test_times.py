"""Times as the commands print and read them (README, CLI): ISO 8601 UTC out, ``1h`` or RFC 3339 in."""

from __future__ import annotations

import pytest

from router import errors
from router.cli import times

T = 1796140956.75  # 2026-12-01T16:02:36.75Z

ISO = {
    "whole seconds, UTC, Z": (T, "2026-12-01T16:02:36Z"),
    "no time": (None, "-"),
    "zero is no time": (0, "-"),
}


@pytest.mark.parametrize(("timestamp", "shown"), ISO.values(), ids=ISO.keys())
def test_iso(timestamp, shown):
    assert times.iso(timestamp) == shown


WITH_ISO = {
    "a time key gets a sibling": ({"queuedAt": T}, {"queuedAt": T, "queuedAtIso": "2026-12-01T16:02:36Z"}),
    "Until and Before keys": ({"rateLimitedUntil": T, "notBefore": T},
                              {"rateLimitedUntil": T, "rateLimitedUntilIso": "2026-12-01T16:02:36Z",
                               "notBefore": T, "notBeforeIso": "2026-12-01T16:02:36Z"}),
    "a join's started and expires": ({"started": T, "expires": T},
                                     {"started": T, "startedIso": "2026-12-01T16:02:36Z",
                                      "expires": T, "expiresIso": "2026-12-01T16:02:36Z"}),
    "nested in lists": ({"reports": [{"finishedAt": T}]},
                        {"reports": [{"finishedAt": T, "finishedAtIso": "2026-12-01T16:02:36Z"}]}),
    "a map of times": ({"retryAt": {"final": T}}, {"retryAt": {"final": T}, "retryAtIso": {"final": "2026-12-01T16:02:36Z"}}),
    "other numbers untouched": ({"attempts": 3, "durationSeconds": 1.5}, {"attempts": 3, "durationSeconds": 1.5}),
    "zero and booleans are not times": ({"notBefore": 0, "finishedAt": True}, {"notBefore": 0, "finishedAt": True}),
    "strings untouched": ({"startedAt": "x"}, {"startedAt": "x"}),
}


@pytest.mark.parametrize(("value", "shown"), WITH_ISO.values(), ids=WITH_ISO.keys())
def test_with_iso(value, shown):
    assert times.with_iso(value) == shown


NOW = 1_000_000.0
SINCE = {
    "an hour": ("1h", NOW - 3600),
    "minutes": ("90m", NOW - 5400),
    "days": ("2d", NOW - 172800),
    "plain seconds": ("30", NOW - 30),
    "RFC 3339 with Z": ("2026-12-01T16:02:36Z", 1796140956.0),
    "RFC 3339 with an offset": ("2026-12-01T17:02:36+01:00", 1796140956.0),
}


@pytest.mark.parametrize(("text", "when"), SINCE.values(), ids=SINCE.keys())
def test_since(text, when):
    assert times.since(text, NOW) == when


@pytest.mark.parametrize("text", ["yesterday", "2026-12-01T16:02:36", "-1h", ""])
def test_since_refuses_what_is_neither(text):
    with pytest.raises(errors.ConfigError, match="neither a duration"):
        times.since(text, NOW)
