"""Hot reload of rule files: on change (polled) and on SIGHUP.

The new rule set is compiled completely before it replaces the old one, and replacing it is one
assignment, so an event is matched either by the old set or by the new one, never by a mix. An
invalid new set is rejected with the same error ``rules validate`` would print, and the old set
keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Callable, Mapping

from router import errors
from router.rules import loading as rules
from router.rules.matching import Matcher

log = logging.getLogger(__name__)


def fingerprint(paths: list[str]) -> tuple:
    try:
        files = rules.expand(paths)
    except errors.RuleError:
        return ("missing",)
    stamp = []
    for path in files:
        try:
            stat = Path(path).stat()
        except OSError:
            continue
        stamp.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(stamp)


class RuleReloader:
    def __init__(self, paths: list[str], actions: Mapping[str, rules.ActionSpec], apply: Callable[[Matcher], None],
                 interval: float, max_age: float | None = None) -> None:
        self.paths = paths
        self.max_age = max_age
        """``bus.max_age``: a reloaded rule whose runs could wait longer is rejected like at start."""
        self.actions = actions
        self.apply = apply
        self.interval = interval
        self._wake = asyncio.Event()
        self._seen = fingerprint(paths)

    def load(self) -> Matcher:
        return Matcher(rules.load(self.paths, self.actions, self.max_age))

    def request(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request)
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
                forced = True
            except asyncio.TimeoutError:
                forced = False
            self._wake.clear()
            current = fingerprint(self.paths)
            if not forced and current == self._seen:
                continue
            self._seen = current
            try:
                matcher = self.load()
            except errors.RuleError as exc:
                log.error("rule reload rejected, the previous rules keep serving: %s", exc)
                continue
            self.apply(matcher)
            log.info("rules reloaded: %d rule(s) from %s", len(matcher.rules), ", ".join(self.paths))
