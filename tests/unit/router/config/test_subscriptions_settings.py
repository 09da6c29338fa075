"""The ``subscriptions`` section: tokens from a mounted file, who delivers, and refused values."""

from __future__ import annotations

import pytest

from router import errors
from router.config import settings


def load(**env):
    return settings.load(None, env={f"TRIGGER_ROUTER_SUBSCRIPTIONS__{k}": v for k, v in env.items()}).subscriptions


def test_defaults_close_the_api_and_deliver_nothing():
    section = load()
    assert section.tokens == [] and not section.delivering()
    assert (section.bucket, section.max_subscriptions, section.max_filters, section.max_attempts) == (
        "TR_SUBSCRIPTIONS", 100, 32, 20)
    assert (section.backoff, section.max_backoff, section.request_timeout, section.max_in_flight) == (1.0, 300.0, 10.0, 32)


def test_tokens_come_from_a_file_one_per_line_and_turn_delivery_on(tmp_path):
    (tmp_path / "tokens").write_text("first\n\nsecond\n")
    section = load(TOKENS_FILE=str(tmp_path / "tokens"))
    assert [t.get_secret_value() for t in section.tokens] == ["first", "second"] and section.delivering()
    assert not load(TOKENS='["t"]', DELIVER="false").delivering()
    assert load(DELIVER="true").delivering()


@pytest.mark.parametrize("env, path", [
    ({"TOKENS": '[""]'}, "subscriptions"),
    ({"BACKOFF": "10s", "MAX_BACKOFF": "1s"}, "subscriptions"),
    ({"MAX_ATTEMPTS": "0"}, "subscriptions.max_attempts"),
    ({"REQUEST_TIMEOUT": "0"}, "subscriptions.request_timeout"),
    ({"MAX_IN_FLIGHT": "0"}, "subscriptions.max_in_flight"),
    ({"DELIVER": "sometimes"}, "subscriptions.deliver"),
    ({"BUCKETT": "x"}, "subscriptions.buckett"),
])
def test_refused(env, path):
    with pytest.raises(errors.ConfigError) as refused:
        load(**env)
    assert refused.value.path.startswith(path), refused.value
