"""Hot reload: a broken, emptied or hostile rule file never replaces working rules, reloads are
compiled off the event loop, and SIGHUP reloads at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, model_validator

from router.plugins import catalog
from router.rules.reload import RuleReloader

RULE = """
kind: TriggerRule
metadata: {{name: {name}}}
spec:
  filters: [{{exact: {{type: com.example.{name}}}}}]
  action: {{exec: {{command: [echo]}}}}
"""


async def wait_for(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_broken_reload_keeps_old_rules_and_a_fixed_one_applies(tmp_path, caplog):
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(RULE.format(name="first"))
    current = {}
    reloader = RuleReloader([str(tmp_path)], catalog.load().actions, lambda m: current.update(m=m), interval=0.05)
    current["m"] = reloader.load()
    task = asyncio.create_task(reloader.run())
    try:
        rule_file.write_text(RULE.format(name="second").replace("exact:", "exactly:"))
        await wait_for(lambda: "rule reload rejected" in caplog.text)
        assert [r.name for r in current["m"].rules] == ["first"]
        assert f"{rule_file}: rule second, field spec.filters[0].exactly: unknown filter dialect" in caplog.text

        rule_file.write_text(RULE.format(name="third"))
        await wait_for(lambda: [r.name for r in current["m"].rules] == ["third"])
    finally:
        task.cancel()


async def test_sighup_forces_a_reload(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    (tmp_path / "rules.yaml").write_text(RULE.format(name="first"))
    loads = []
    reloader = RuleReloader([str(tmp_path)], catalog.load().actions, loads.append, interval=3600)
    task = asyncio.create_task(reloader.run())
    try:
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: len(loads) == 1)
        assert [r.name for r in loads[0].rules] == ["first"]
    finally:
        task.cancel()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


@pytest.mark.parametrize("broken", [b"kind: TriggerRule\nmetadata: {name: \xff}\n", b"", b"a: " + b"[" * 20_000])
async def test_a_bad_byte_an_emptied_file_or_deep_yaml_keeps_the_previous_rules(tmp_path, caplog, broken):
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(RULE.format(name="first"))
    current = {}
    reloader = RuleReloader([str(rule_file)], catalog.load().actions, lambda m: current.update(m=m), interval=0.05)
    current["m"] = reloader.load()
    task = asyncio.create_task(reloader.run())
    try:
        rule_file.write_bytes(broken)
        await wait_for(lambda: "rule reload rejected" in caplog.text)
        assert [r.name for r in current["m"].rules] == ["first"]
        rule_file.write_text(RULE.format(name="second"))  # the reloader is still alive
        await wait_for(lambda: [r.name for r in current["m"].rules] == ["second"])
    finally:
        task.cancel()


async def test_an_emptied_file_is_applied_when_allowed(tmp_path):
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(RULE.format(name="first"))
    current = {}
    reloader = RuleReloader([str(rule_file)], catalog.load().actions, lambda m: current.update(m=m), interval=0.05,
                            allow_empty=True)
    current["m"] = reloader.load()
    task = asyncio.create_task(reloader.run())
    try:
        rule_file.write_text("# all rules removed on purpose\n")
        await wait_for(lambda: current["m"].rules == [])  # raises TimeoutError if never applied
    finally:
        task.cancel()
    assert current["m"].rules == []


class Recording(BaseModel):
    """Parameters of an action that records which thread validated them, or fails as told."""

    model_config = ConfigDict(extra="allow")
    seen: ClassVar[set[int]] = set()
    fail: ClassVar[bool] = False

    @model_validator(mode="after")
    def record(self):
        if Recording.fail:
            raise RuntimeError("a plug-in's parameter model has a bug")
        Recording.seen.add(threading.get_ident())
        return self


@dataclass
class RecordingAction:
    name: str = "record"
    params: type[BaseModel] = Recording


async def test_a_reload_is_compiled_off_the_event_loop_and_survives_a_plugin_bug(tmp_path, caplog):
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(RULE.format(name="first").replace("exec: {command: [echo]}", "record: {}"))
    current = {}
    reloader = RuleReloader([str(rule_file)], {"record": RecordingAction()}, lambda m: current.update(m=m),
                            interval=0.05)
    Recording.seen.clear()
    task = asyncio.create_task(reloader.run())
    try:
        os.utime(rule_file, ns=(1, 1))  # a changed stamp: the next poll reloads
        await wait_for(lambda: "m" in current)
        assert Recording.seen and threading.get_ident() not in Recording.seen

        Recording.fail = True
        rule_file.write_text(RULE.format(name="second").replace("exec: {command: [echo]}", "record: {}"))
        await wait_for(lambda: "rule reload failed unexpectedly" in caplog.text)
        assert [r.name for r in current["m"].rules] == ["first"]
        Recording.fail = False
        rule_file.write_text(RULE.format(name="third").replace("exec: {command: [echo]}", "record: {}"))
        await wait_for(lambda: [r.name for r in current["m"].rules] == ["third"])
    finally:
        Recording.fail = False
        task.cancel()
