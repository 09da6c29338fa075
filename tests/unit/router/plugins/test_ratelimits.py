"""How long a rate-limited answer asks us to wait, for every way GitHub, GitLab and sinks say it."""

from __future__ import annotations

import pytest

from router.plugins import ratelimits

NOW = 1_800_000_000.0


@pytest.mark.parametrize("status, headers, body, wait", [
    (429, {"Retry-After": "2"}, "", 2.0),
    (503, {"retry-after": "30"}, "", 30.0),
    (429, {"Retry-After": "Fri, 15 Jan 2027 08:00:10 GMT"}, "", 10.0),  # NOW is 2027-01-15 08:00:00 UTC
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 42)}, "", 42.0),
    (429, {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 5)}, "", 5.0),
    (429, {"RateLimit-Remaining": "0", "RateLimit-Reset": "7"}, "", 7.0),  # IETF draft: seconds from now
    (403, {}, '{"message": "You have exceeded a secondary rate limit"}', ratelimits.SECONDARY_DEFAULT),
    (403, {"Retry-After": "61"}, "You have exceeded a secondary rate limit", 61.0),
    (429, {}, "", ratelimits.SECONDARY_DEFAULT),
    (429, {"Retry-After": "999999"}, "", ratelimits.MAX_DELAY),
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 5)}, "", 0.0),
    # not rate limits
    (403, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": str(int(NOW) + 42)}, "Resource not accessible", None),
    (503, {}, "", None),
    (500, {"Retry-After": "3"}, "", None),
    (404, {}, "", None),
    (503, {"Retry-After": "soon"}, "", None),
])
def test_delay(status, headers, body, wait):
    assert ratelimits.delay(status, headers, body, now=NOW) == wait
