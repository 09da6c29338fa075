"""What the router supplies behind a function's ``ctx``: secrets, an HTTP session, the Kubernetes
client, the existing checks, and publishing follow-up events.

One :class:`Services` per attempt, closed after it (its HTTP session with it). The checks are the
actions' own code (``http_probe.attempt_check``, ``rollout_check.rollout_check``), not copies, so a
function's probe reports exactly what an ``httpProbe`` would. Every secret value read through
``ctx.secret`` is remembered and masked in the function's log lines, its outcome and the events it
publishes: a secret never travels in an event or a log line, even when a function puts it there.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any, Mapping

import aiohttp
from pydantic import ValidationError

from handlers.actions import http_probe
from handlers.actions import rollout_check as rollout
from handlers.functions import loading
from handlers.kubernetes import client as kube
from router.plugins import actions, cdevents, errors, events, functions

MASK = "***"
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$")


class Services:
    def __init__(self, context: actions.Context) -> None:
        self.context = context
        self.revealed: set[str] = set()
        self.published: list[dict[str, Any]] = []
        self._http: aiohttp.ClientSession | None = None

    def secret(self, name: str) -> str:
        settings = loading.current
        if name in settings.secrets:
            path: Path | None = settings.secrets[name]
        elif settings.secrets_dir is not None and _SECRET_NAME.match(name):
            path = settings.secrets_dir / name
        else:
            path = None
        if path is None:
            raise errors.PermanentError(f"secret {name!r} is not configured (functions.secrets, functions.secrets_dir)")
        try:
            value = path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise errors.PermanentError(f"secret {name!r}: cannot read {path}: {exc.strerror}") from exc
        if value:
            self.revealed.add(value)
        return value

    async def publish(self, event: Mapping[str, Any], index: int) -> str:
        if self.context.publish is None:
            raise errors.PermanentError("ctx.publish: there is no bus here")
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise errors.PermanentError("ctx.publish: an event is a mapping with at least a 'type'")
        attributes = {k: v for k, v in self.mask(dict(event)).items() if k != "data"}
        attributes.setdefault("id", cdevents.deterministic_id("function", self.context.run_id, str(index)))
        attributes.setdefault("source", f"/trigger-router/rules/{self.context.rule}")
        if self.context.traceparent:
            attributes.setdefault("traceparent", self.context.traceparent)
        try:
            built = events.make(attributes, self.mask(event.get("data")))
        except errors.BadRequest as exc:
            raise errors.PermanentError(f"ctx.publish: {exc.detail}") from exc
        await self.context.publish(built)
        self.published.append({"id": built.id, "type": built.type, "source": built.source})
        return built.id

    async def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            headers = {"traceparent": self.context.traceparent} if self.context.traceparent else None
            self._http = aiohttp.ClientSession(headers=headers)
        return self._http

    async def kubernetes(self) -> Any:
        return await kube.shared()

    async def probe(self, url: str, options: Mapping[str, Any], timeout: float) -> functions.Check:
        try:
            check = http_probe.Check.model_validate({"url": url, **options})
        except ValidationError as exc:
            raise errors.PermanentError(f"ctx.probe: {exc.errors()[0]['msg']} ({_loc(exc)})") from exc
        found = await http_probe.attempt_check(await self.http(), check, max(timeout, 0.1), self.context.traceparent)
        return _check(found)

    async def rollout_check(self, namespace: str, name: str, options: Mapping[str, Any],
                            timeout: float) -> functions.Result:
        try:
            params = rollout.RolloutCheck.model_validate({"namespace": namespace, "name": name, **options})
        except ValidationError as exc:
            raise errors.PermanentError(f"ctx.rollout_check: {exc.errors()[0]['msg']} ({_loc(exc)})") from exc
        result = await rollout.rollout_check(params, dataclasses.replace(self.context, timeout=max(timeout, 1.0)))
        return functions.Result(result.outcome == "success", result.reason,
                                tuple(_check(c) for c in result.checks), result.severity)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def mask(self, value: Any) -> Any:
        """``value`` with every revealed secret replaced by ``***``, at any depth."""
        if not self.revealed:
            return value
        if isinstance(value, str):
            for secret in sorted(self.revealed, key=len, reverse=True):
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self.mask(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.mask(v) for v in value]
        return value


def _check(found: Mapping[str, Any]) -> functions.Check:
    rest = {k: v for k, v in found.items() if k not in ("name", "passed", "detail", "error")}
    return functions.Check(str(found.get("name", "check")), bool(found.get("passed")), found.get("detail"),
                           found.get("error"), rest)


def _loc(exc: ValidationError) -> str:
    return ".".join(str(part) for part in exc.errors()[0]["loc"])


class Log(logging.LoggerAdapter):
    """The run's logger: lines start with the run id; revealed secrets are masked in the text."""

    def __init__(self, logger: logging.Logger, services: Services) -> None:
        super().__init__(logger, {})
        self.services = services

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.setdefault("stacklevel", 2)
            self.logger.log(level, "run %s: %s", self.services.context.run_id, self.services.mask(text), **kwargs)
