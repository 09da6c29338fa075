"""Hot reload: a broken rule file never replaces working rules; SIGHUP reloads at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

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
