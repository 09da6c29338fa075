"""The plug-in catalog: which webhook sources, background sources and actions this process has.

The core never imports a concrete source or action: a plug-in module registers itself with a
decorator (``@plugins.webhook_source``, ``@plugins.action``, ...), and :func:`load` imports the
plug-in packages once. A plug-in's settings section is registered the same way, so adding a
source is one new file plus one import line in its package's ``__init__.py``.

A plug-in that opens connections of its own (the Kubernetes client the actions share) registers
an async shutdown hook with ``@plugins.on_shutdown(name)``; ``serve`` awaits every hook once all
its parts have stopped (:meth:`Catalog.shut_down`), so nothing is left for the garbage collector
to close after the loop, with an ``Unclosed client session`` in the log.

The decorators register into the *current* catalog; :func:`isolated` gives a test a fresh one
(and fresh settings sections) and restores the real one afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator

from pydantic import BaseModel

from router import errors
from router.config import settings as config
from router.model import commits
from router.plugins import actions, reporters
from router.plugins.reporters import STAGES
from router.plugins.sources import BackgroundSource, SourceFactory

log = logging.getLogger(__name__)

PLUGIN_PACKAGES = ("handlers.sources", "handlers.actions", "handlers.reporters")
SHUTDOWN_HOOK_TIMEOUT = 5.0
"""Seconds one shutdown hook may take; the whole shutdown is bounded by ``shutdown_grace`` anyway."""

ActionRun = Callable[[BaseModel, actions.Context], Awaitable[actions.Result]]
ReporterRun = Callable[[BaseModel, reporters.Context, dict], Awaitable[dict | None]]
ShutdownHook = Callable[[], Awaitable[None]]
SettingsHook = Callable[[Any], None]
"""``(settings)``: told the loaded settings once, before the command runs (see :func:`on_settings`)."""
CommitFinder = Callable[[Any, Any], Awaitable["tuple[Any, str] | None"]]
"""``(event, bus) -> (Commit | None, why) | None``: the commit an event's image was built from
(``None``: this finder does not apply to the event); ``errors.TemporaryError`` when it cannot tell
now (a registry that cannot be reached): the engine reports that stage later."""
RuleSourceRun = Callable[[Any, Any, Any], Awaitable[None]]
"""``(settings, bus, sink)``: runs for the life of the process, calling ``sink.publish(rules)``."""


@dataclass(frozen=True)
class RuleSource:
    name: str
    run: RuleSourceRun
    enabled: Callable[[Any], bool]
    """``(settings) -> bool``: whether this process runs it (and so routes even without rule files)."""


@dataclass(frozen=True)
class Action:
    name: str
    params: type[BaseModel]
    run: ActionRun


@dataclass(frozen=True)
class Reporter:
    name: str
    params: type[BaseModel]
    run: ReporterRun
    reacts: frozenset[str] | Callable[[BaseModel], Any]
    """The stages it is called at (default all three: ``queued``, ``started``, ``finished``), or a
    function of its parameters giving them (``cloudevent``'s ``on``)."""

    def stages(self, params: BaseModel) -> frozenset[str]:
        return self.reacts if isinstance(self.reacts, frozenset) else frozenset(self.reacts(params))


@dataclass
class Catalog:
    webhook_sources: dict[str, SourceFactory] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    background_sources: dict[str, BackgroundSource] = field(default_factory=dict)
    shutdown_hooks: dict[str, ShutdownHook] = field(default_factory=dict)
    rule_sources: dict[str, RuleSource] = field(default_factory=dict)
    reporters: dict[str, Reporter] = field(default_factory=dict)
    commit_finders: dict[str, CommitFinder] = field(default_factory=dict)
    settings_hooks: dict[str, SettingsHook] = field(default_factory=dict)

    def add(self, kind: str, name: str, value: Any) -> None:
        table: dict = getattr(self, kind)
        if name in table:
            raise ValueError(f"{kind.replace('_', ' ')[:-1]} {name!r} is registered twice")
        table[name] = value

    def webhook_source(self, name: str) -> Callable[[SourceFactory], SourceFactory]:
        def register(factory: SourceFactory) -> SourceFactory:
            self.add("webhook_sources", name, factory)
            return factory

        return register

    def background_source(self, name: str) -> Callable[[BackgroundSource], BackgroundSource]:
        def register(run: BackgroundSource) -> BackgroundSource:
            self.add("background_sources", name, run)
            return run

        return register

    def action(self, name: str, *, params: type[BaseModel]) -> Callable[[ActionRun], ActionRun]:
        def register(run: ActionRun) -> ActionRun:
            self.add("actions", name, Action(name, params, run))
            return run

        return register

    def reporter(self, name: str, *, params: type[BaseModel],
                 reacts: tuple[str, ...] | Callable[[BaseModel], Any] = STAGES) -> Callable[[ReporterRun], ReporterRun]:
        unknown = set() if callable(reacts) else set(reacts) - set(STAGES)
        if unknown:
            raise ValueError(f"reporter {name!r} reacts to unknown stages {sorted(unknown)}")

        def register(run: ReporterRun) -> ReporterRun:
            self.add("reporters", name, Reporter(name, params, run, reacts if callable(reacts) else frozenset(reacts)))
            return run

        return register

    def commit_finder(self, name: str) -> Callable[[CommitFinder], CommitFinder]:
        def register(find: CommitFinder) -> CommitFinder:
            self.add("commit_finders", name, find)
            return find

        return register

    def on_settings(self, name: str) -> Callable[[SettingsHook], SettingsHook]:
        def register(hook: SettingsHook) -> SettingsHook:
            self.add("settings_hooks", name, hook)
            return hook

        return register

    def configure(self, settings: Any) -> None:
        """Tell every settings hook the loaded settings (the CLI does, once, before any command)."""
        for hook in self.settings_hooks.values():
            hook(settings)

    async def find_commit(self, event: Any, bus: Any = None, joined: tuple = ()) -> "tuple[Any, str]":
        """(the commit, where it was found) or (None, why not), in order: the event's own commit
        (``commits.of``), a joined event's own, then each commit finder on the event and the joined
        ones. ``bus`` is ``None`` where there is none (``rules test``): finders then keep no cache."""
        commit, why = commits.of(event)
        if commit is not None:
            return commit, why
        for other in joined:
            found, _ = commits.of(other)
            if found is not None:
                return found, "found"
        for name, find in self.commit_finders.items():
            for candidate in (event, *joined):
                try:
                    answer = await find(candidate, bus)
                except errors.TemporaryError as exc:  # the engine retries later; a dry run says so
                    answer = None, f"{exc} (temporary: the reporting engine asks again later)"
                except Exception as exc:  # a broken finder must not hide the others' answers
                    log.exception("commit finder %s failed on %s %s", name, candidate.type, candidate.id)
                    answer = None, f"commit finder {name} failed: {exc.__class__.__name__}: {exc}"
                if answer is None:
                    continue
                if answer[0] is not None:
                    return answer
                why = answer[1]
        return None, why

    def rule_source(self, name: str, *, enabled: Callable[[Any], bool]) -> Callable[[RuleSourceRun], RuleSourceRun]:
        def register(run: RuleSourceRun) -> RuleSourceRun:
            self.add("rule_sources", name, RuleSource(name, run, enabled))
            return run

        return register

    def on_shutdown(self, name: str) -> Callable[[ShutdownHook], ShutdownHook]:
        def register(hook: ShutdownHook) -> ShutdownHook:
            self.add("shutdown_hooks", name, hook)
            return hook

        return register

    async def shut_down(self, timeout: float = SHUTDOWN_HOOK_TIMEOUT) -> None:
        """Await every shutdown hook in turn; one that fails or hangs is logged, the next still runs."""
        for name, hook in self.shutdown_hooks.items():
            try:
                await asyncio.wait_for(hook(), timeout)
            except asyncio.TimeoutError:
                log.warning("shutdown hook %s took longer than %g s; left unfinished", name, timeout)
            except Exception:
                log.exception("shutdown hook %s failed", name)


_current = Catalog()
_loaded = False


def load() -> Catalog:
    """Import every plug-in package (once) and return the catalog they registered into."""
    global _loaded
    if not _loaded:
        for package in PLUGIN_PACKAGES:
            importlib.import_module(package)
        _loaded = True
    return _current


@contextlib.contextmanager
def isolated(*, keep: bool = False) -> Iterator[Catalog]:
    """A catalog of its own for the ``with`` block, and back to the real one after it.

    Empty, with the core settings sections only; with ``keep``, a copy of the current catalog and
    sections, so a test can add one plug-in beside the real ones without leaving it registered.
    """
    global _current
    saved, saved_sections = _current, config.sections()
    _current = Catalog(dict(saved.webhook_sources), dict(saved.actions), dict(saved.background_sources),
                       dict(saved.shutdown_hooks), dict(saved.rule_sources), dict(saved.reporters),
                       dict(saved.commit_finders), dict(saved.settings_hooks)) if keep else Catalog()
    config.restore_sections(saved_sections if keep else {})
    try:
        yield _current
    finally:
        _current = saved
        config.restore_sections(saved_sections)


def webhook_source(name: str) -> Callable[[SourceFactory], SourceFactory]:
    """Register a class (or factory) ``(settings) -> WebhookSource`` for ``/webhooks/<name>``."""
    return _current.webhook_source(name)


def rule_source(name: str, *, enabled: Callable[[Any], bool]) -> Callable[[RuleSourceRun], RuleSourceRun]:
    """Register a coroutine ``(settings, bus, sink)`` that contributes rules besides the files:
    it compiles them with ``sink.compile(document, origin, namespace=...)`` and replaces its whole
    part with ``sink.publish(rules)``; ``serve`` runs it when ``enabled(settings)``."""
    return _current.rule_source(name, enabled=enabled)


def background_source(name: str) -> Callable[[BackgroundSource], BackgroundSource]:
    """Register a coroutine ``(settings, bus)`` that ``serve`` runs for the life of the process."""
    return _current.background_source(name)


def action(name: str, *, params: type[BaseModel]) -> Callable[[ActionRun], ActionRun]:
    """Register ``async def run(params, context) -> Result`` as the action rules call ``name``."""
    return _current.action(name, params=params)


def reporter(name: str, *, params: type[BaseModel],
             reacts: tuple[str, ...] | Callable[[BaseModel], Any] = STAGES) -> Callable[[ReporterRun], ReporterRun]:
    """Register ``async def report(params, context, state) -> dict | None`` as the reporter rules
    list as ``name`` in ``spec.report``, called at the stages in ``reacts`` (or ``reacts(params)``)."""
    return _current.reporter(name, params=params, reacts=reacts)


def commit_finder(name: str) -> Callable[[CommitFinder], CommitFinder]:
    """Register ``async def find(event, bus) -> (Commit | None, why) | None``: how reporters find the
    commit of an event that names none itself (a registry push, a rollout: through the image's
    ``org.opencontainers.image.revision`` label). ``None`` means "not mine"; finders are asked in
    registration order after the event's own commit (``commits.of``)."""
    return _current.commit_finder(name)


def on_settings(name: str) -> Callable[[SettingsHook], SettingsHook]:
    """Register ``def hook(settings)``, called once the settings are loaded, before any command runs:
    how plug-ins that are called without settings (commit finders, reporters) learn their section."""
    return _current.on_settings(name)


def on_shutdown(name: str) -> Callable[[ShutdownHook], ShutdownHook]:
    """Register ``async def hook()`` that ``serve`` awaits at shutdown, after its parts stopped."""
    return _current.on_shutdown(name)


def settings_section(path: str) -> Callable[[type], type]:
    """Register a settings section (a ``Section`` subclass) under the dotted key ``path``."""
    def register(section: type) -> type:
        config.register_section(path, section)
        return section

    return register
