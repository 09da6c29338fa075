"""The runs stream keeps a duplicate window that covers redeliveries, whatever ``bus.max_age`` says."""

import pytest

from router.config import settings as settings_mod
from router.engine import runs


@pytest.mark.parametrize("max_age, window, expected", [
    ("0", "24h", 86400.0),       # max_age 0 = keep forever: not nats-server's 2-minute default
    ("7d", "24h", 86400.0),
    ("1h", "24h", 3600.0),       # a window longer than retention is meaningless: capped
    ("0", "2h", 7200.0),
])
def test_duplicate_window(max_age, window, expected):
    settings = settings_mod.load(None, env={"TRIGGER_ROUTER_BUS__MAX_AGE": max_age,
                                            "TRIGGER_ROUTER_BUS__DUPLICATE_WINDOW": window})
    config = runs.runs_stream_config(settings)
    assert config.duplicate_window == expected
    assert config.max_bytes == -1, "a byte limit on a work queue would discard waiting runs"
