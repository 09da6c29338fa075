"""The one backoff formula: bounded by the cap, growing with the attempt, jittered."""

import pytest

from router.bus import backoff


@pytest.mark.parametrize("attempt, base, cap, ceiling", [
    (1, 0.5, 10.0, 0.5),
    (2, 0.5, 10.0, 1.0),
    (4, 0.5, 10.0, 4.0),
    (10, 0.5, 10.0, 10.0),
    (0, 1.0, 10.0, 1.0),
])
def test_delay_stays_between_zero_and_the_ceiling(attempt, base, cap, ceiling):
    delays = [backoff.delay(attempt, base, cap) for _ in range(2000)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling * 0.8, "the whole range is used"
    assert len(set(delays)) > 1000, "jittered, not one fixed value"


def test_backoff_grows_and_resets():
    loop = backoff.Backoff(1.0, 100.0)
    ceilings = []
    for _ in range(4):
        loop.next()
        ceilings.append(min(100.0, 2 ** (loop.attempt - 1)))
    assert ceilings == [1, 2, 4, 8]
    loop.reset()
    assert loop.attempt == 0 and loop.next() <= 1.0
