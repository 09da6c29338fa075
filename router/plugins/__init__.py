"""The public surface for plug-ins: everything a source or an action in ``handlers/`` may use.

Plug-ins import from here and from nowhere else in ``router`` (``tests/unit/test_layering.py``
enforces it), so the core can be re-arranged without touching them::

    from router import plugins
    from router.plugins import Delivery, errors, events

    @plugins.settings_section("registries.acme")
    class AcmeSettings(plugins.Section):
        secrets: list[SecretStr] = []

    @plugins.webhook_source("acme")
    class AcmeSource: ...

What is here, by use:

- registration: :func:`webhook_source`, :func:`background_source`, :func:`action`,
  :func:`settings_section` (a plug-in owns its ``Section`` of the settings file), :func:`on_shutdown`
  (an async hook ``serve`` awaits at shutdown, to close what the plug-in opened), :func:`on_settings`
  (``hook(settings)`` once the settings are loaded, for plug-ins called without them), :func:`rule_source`
  (rules from somewhere other than files, such as TriggerRule objects);
- sources: :class:`Delivery`, :class:`Rejected`, :class:`WebhookSource`, :mod:`auth` (constant-time
  secret and signature checks), :class:`Bus` (what a background source publishes with), :mod:`kv`
  (durable state in a JetStream key-value bucket);
- actions: :class:`Params`, :class:`Context`, :class:`Result` (also as the :mod:`actions` module),
  :mod:`templates` (``{{ }}`` rendering of a plug-in's own templated documents), :mod:`celexpr`
  (CEL compiled at load and evaluated over an action's own variables: ``manifestCheck`` policies), :mod:`attempts` (an
  action attempted as the executor does: timeout, retries, outcome mapping), :mod:`functions` (the
  API in-process functions are written against, for the ``function`` action);
- reporters: :func:`reporter`, :func:`commit_finder` (the commit of an event that names none), :mod:`reporters` (``reporters.Context``, ``reporters.Skip``),
  :mod:`ratelimits` (how long a 429, a 403 rate limit or ``Retry-After`` asks to wait),
  :mod:`http_binding` (``to_binary``: an event as a binary-mode HTTP request);
- the model: :class:`CloudEvent` and the :mod:`events`, :mod:`event_types`, :mod:`cdevents` and
  :mod:`artifacts` modules that build events; :mod:`commits` (``Commit``: which commit a run is about); :mod:`references`, the one parser of digests (bare,
  ``sha256%3A``, purl, image reference) and image references;
- :mod:`errors`, the error family (``PermanentError`` / ``TemporaryError`` decide retries;
  ``IngestError`` subclasses decide the HTTP answer); :class:`Settings`, :class:`Section`,
  ``Duration`` for settings.
"""

from router import errors, functions
from router.bus import kv
from router.bus.connection import Bus
from router.config.base import Duration, Section, parse_duration
from router.config.settings import Settings
from router.model import artifacts, cdevents, commits, event_types, events, references
from router.model.bindings import http as http_binding
from router.model.events import CloudEvent
from router.plugins import actions, attempts, auth, ratelimits, reporters
from router.plugins.actions import Context, Params, Result
from router.plugins.catalog import (action, background_source, commit_finder, on_settings, on_shutdown, reporter, rule_source,
                                   settings_section, webhook_source)
from router.plugins.sources import Delivery, Rejected, WebhookSource
from router.rules import celexpr, templates
from router.telemetry import metrics

__all__ = [
    # registration
    "action", "background_source", "commit_finder", "on_settings", "on_shutdown", "reporter", "rule_source", "settings_section", "webhook_source",
    # sources
    "Bus", "Delivery", "Rejected", "WebhookSource", "auth", "kv",
    # actions
    "Context", "Params", "Result", "actions", "attempts", "celexpr", "functions", "templates",
    # reporters
    "http_binding", "ratelimits", "reporters",
    # observability
    "metrics",
    # the model
    "CloudEvent", "artifacts", "cdevents", "commits", "event_types", "events", "references",
    # errors and settings
    "Duration", "Section", "Settings", "errors", "parse_duration",
]
