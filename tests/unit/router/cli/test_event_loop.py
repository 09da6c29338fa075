"""``event_loop``: which loop ``serve`` runs on (uvloop from the ``fast`` extra, or asyncio's)."""

import asyncio
import sys

import pytest

from router import errors
from router.cli import serve
from router.config import settings as settings_mod

uvloop = pytest.importorskip("uvloop")  # installed by `make test` (the fast extra)


@pytest.mark.parametrize("choice, loop_type", [
    ("auto", uvloop.Loop),
    ("uvloop", uvloop.Loop),
    ("asyncio", asyncio.BaseEventLoop),
])
def test_the_loop_made_is_the_one_chosen(choice, loop_type):
    factory = serve.loop_factory(choice)
    loop = factory() if factory else asyncio.new_event_loop()
    try:
        assert isinstance(loop, loop_type)
        assert choice != "asyncio" or not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


@pytest.mark.parametrize("choice, refused", [("auto", False), ("asyncio", False), ("uvloop", True)])
def test_without_uvloop_only_an_explicit_uvloop_is_refused(monkeypatch, choice, refused):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    if refused:
        with pytest.raises(errors.ConfigError, match=r"uvloop is not installed.*trigger-router\[fast\]"):
            serve.loop_factory(choice)
    else:
        assert serve.loop_factory(choice) is None


def test_the_setting_is_read_from_the_environment():
    settings = settings_mod.load(None, env={"TRIGGER_ROUTER_EVENT_LOOP": "asyncio"})
    assert settings.event_loop == "asyncio"
    with pytest.raises(errors.ConfigError, match="event_loop"):
        settings_mod.load(None, env={"TRIGGER_ROUTER_EVENT_LOOP": "tokio"})
