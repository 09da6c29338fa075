"""Settings from environment variables, and which variable a value came from.

``TRIGGER_ROUTER_<SECTION>__<FIELD>`` (nested with more ``__``) overrides the file. When such a
value is wrong, the error must name the variable, not the file: the operator who set
``TRIGGER_ROUTER_HTTP__PORT=eighty`` in a Deployment will look for ``port`` in the ConfigMap and
find it right there. So :func:`apply` returns, besides filling in the raw settings, where each
overridden key came from, and :func:`origin` finds the variable behind an error's key path.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from router import errors

__all__ = ["PREFIX", "CONFIG_VARIABLE", "apply", "origin"]

PREFIX = "TRIGGER_ROUTER_"
CONFIG_VARIABLE = "TRIGGER_ROUTER_CONFIG"

Origins = dict[tuple[str, ...], str]
"""Key path (``("http", "port")``) -> the variable that set it (``TRIGGER_ROUTER_HTTP__PORT``)."""


def apply(raw: dict[str, Any], env: Mapping[str, str]) -> Origins:
    """Write every ``TRIGGER_ROUTER_*`` variable of ``env`` into ``raw``; where each key came from."""
    origins: Origins = {}
    for name, value in env.items():
        if not name.startswith(PREFIX) or name == CONFIG_VARIABLE:
            continue
        keys = [part.lower() for part in name[len(PREFIX):].split("__")]
        target = raw
        for key in keys[:-1]:
            node = target.setdefault(key, {})
            if not isinstance(node, dict):
                raise errors.ConfigError("is not a section", path=key, source=name)
            target = node
        target[keys[-1]] = value_of(value)
        origins[tuple(keys)] = name
    return origins


def value_of(value: str) -> Any:
    """JSON arrays and objects are parsed; anything else stays a string for pydantic to coerce."""
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return value


def origin(location: Iterable[Any], origins: Origins) -> str | None:
    """The variable that set the key at ``location`` (or a section holding it), if one did."""
    path = tuple(str(part) for part in location)
    for length in range(len(path), 0, -1):
        if path[:length] in origins:
            return origins[path[:length]]
    return None
