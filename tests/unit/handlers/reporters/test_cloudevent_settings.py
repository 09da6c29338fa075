"""The ``cloudevent`` reporter's Knative delivery settings: durations as Knative writes them, and its backoff."""

from __future__ import annotations

import pytest

from handlers.reporters import cloudevent


@pytest.mark.parametrize("written, seconds", [
    ("PT0.2S", 0.2), ("PT1M", 60.0), ("PT1H30M", 5400.0), ("P1D", 86400.0), ("PT1M0.5S", 60.5),
    ("250ms", 0.25), ("2s", 2.0), (3, 3.0),
])
def test_durations(written, seconds):
    assert cloudevent.seconds(written) == pytest.approx(seconds)


@pytest.mark.parametrize("written", ["P", "PT", "PT1X", "P1H", "-PT1S"])
def test_bad_durations(written):
    with pytest.raises(ValueError):
        cloudevent.seconds(written)


@pytest.mark.parametrize("policy, retry, wait", [
    ("exponential", 1, 1.0), ("exponential", 2, 2.0), ("exponential", 3, 4.0),
    ("linear", 1, 0.5), ("linear", 2, 1.0), ("linear", 3, 1.5),
])
def test_knative_backoff(policy, retry, wait):
    # Knative: exponential waits backoffDelay * 2^n, linear backoffDelay * n (n = the retry)
    assert cloudevent.delay(policy, 0.5, retry) == wait
