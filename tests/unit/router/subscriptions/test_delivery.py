"""What a sink's answer means for an event, and the names of a subscription's consumers.

The answers table is the README's (Subscriptions API, delivery): 2xx delivered; what a later attempt
may change retried; what it cannot, dead-lettered at once. Consumer names are pinned: renaming them
would start every existing subscription over on new consumers (or leave the old ones behind).
"""

from __future__ import annotations

import pytest

from router import errors
from router.subscriptions import delivery

ANSWERS = {200: None, 201: None, 202: None, 204: None,
           500: errors.SinkUnavailable, 502: errors.SinkUnavailable, 503: errors.SinkUnavailable,
           504: errors.SinkUnavailable, 408: errors.SinkUnavailable, 409: errors.SinkUnavailable,
           425: errors.SinkUnavailable, 429: errors.SinkUnavailable,
           400: errors.SinkRefused, 401: errors.SinkRefused, 403: errors.SinkRefused, 404: errors.SinkRefused,
           410: errors.SinkRefused, 413: errors.SinkRefused, 415: errors.SinkRefused, 422: errors.SinkRefused,
           301: errors.SinkRefused, 307: errors.SinkRefused}


@pytest.mark.parametrize("status, meaning", ANSWERS.items(), ids=[str(s) for s in ANSWERS])
def test_answers(status, meaning):
    found = delivery.verdict(status)
    assert (found is None) if meaning is None else type(found) is meaning
    if meaning is errors.SinkUnavailable:
        assert isinstance(found, errors.TemporaryError)
    if meaning is errors.SinkRefused:
        assert isinstance(found, errors.PermanentError) and str(status) in str(found)


def test_a_retry_after_travels_with_the_error():
    assert delivery.verdict(503, 7.0).delay == 7.0 and delivery.verdict(500).delay is None


def test_consumer_names_are_stable():
    assert delivery.durables("0b6c1f0e-7d7e-4b8e-9d0a-2f1f5d4c3b2a") == {
        "events": "sub-0b6c1f0e-7d7e-4b8e-9d0a-2f1f5d4c3b2a-events",
        "outcomes": "sub-0b6c1f0e-7d7e-4b8e-9d0a-2f1f5d4c3b2a-outcomes"}
