"""Process-wide logging set-up: plain text for people, JSON lines for log pipelines, secrets masked.

JSON lines carry the fields of ``logcontext`` (``run_id``, ``rule``, ``event_id``, ``trace_id``...)
bound by the engine where a unit of work starts. Masking happens here, on every formatted line of every logger (ours, aiohttp's, nats-py's, and
tracebacks), because a secret reaches a log line in many ways that no single call site controls: a
request path with a registry's webhook token (``/webhooks/dockerhub/<token>``), a URL with
credentials (``nats://user:password@host``), a library exception quoting a header. Three rules are
applied: every configured secret value (``settings.secret_values``) becomes ``***``, the last
segment of ``/webhooks/<source>/<token>`` becomes ``***``, and URL user info becomes ``***@``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import urllib.parse
from typing import Any, Iterable

from pydantic import SecretStr

from router.config import logcontext
from router.config.settings import LogSettings, Settings

__all__ = ["JsonFormatter", "Redactor", "configure", "secret_values"]

MASK = "***"
_PATH_TOKEN = re.compile(r"(/webhooks/[^/\s'\"?#]+/)[^\s'\"?#,;)\]]+")
_USERINFO = re.compile(r"(?<=://)[^@/\s'\"]+@")


def secret_values(settings: Settings) -> set[str]:
    """Every secret in ``settings`` (secret fields of every section, credentials in URLs)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and "@" in value:
            for userinfo in re.findall(r"//([^@/\s]*)@", value):
                secret = userinfo.partition(":")[2] or userinfo  # user:password, or a token alone
                found.update([userinfo, secret, urllib.parse.unquote(secret)])

    walk(settings.model_dump())
    return {secret for secret in found if len(secret) >= 4}  # a 1-3 character "secret" would blank out words


class Redactor:
    """Masks secrets in text; built once from the configured secrets (longest first)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(MASK, text)
        if "/webhooks/" in text:
            text = _PATH_TOKEN.sub(rf"\g<1>{MASK}", text)
        if "@" in text:
            text = _USERINFO.sub(f"{MASK}@", text)
        return text


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for name, value in logcontext.current().items():
            entry[name] = self.redact(value) if isinstance(value, str) else value
        for name in logcontext.FIELDS:  # a call site's extra= wins over the bound value
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = self.redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure(settings: LogSettings, secrets: Iterable[str] = ()) -> Redactor:
    """Log to stderr with ``secrets`` masked; returns the redactor for other output (CLI errors)."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if settings.format == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    # nats-py logs every reconnect attempt at error level; our own lines say what matters.
    logging.getLogger("nats").setLevel(max(logging.WARNING, root.level))
    return redact
