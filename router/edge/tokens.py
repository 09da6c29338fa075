"""Who may send what through ``POST /events``: bearer tokens, per-client allow-lists, reserved types.

``/events`` listens on the same port that GitHub and the registries must reach, and rules trust an
event by its ``type``: a ``com.github.push`` is assumed to be a push whose HMAC the GitHub source
verified. Without this module anyone who can reach the port could forge one and fire those rules.

Three rules, checked before anything is published: the token before the body is even read (an
unauthenticated sender cannot make the edge buffer a megabyte), the lists for every parsed event:

- **Tokens.** ``Authorization: Bearer <token>``, compared in constant time against every configured
  token (``events_auth.tokens`` and each ``events_auth.clients[].tokens``; several, for rotation).
  A token is required when ``events_auth.required`` is true, or ``auto`` and ``http.host`` is not
  loopback. Required with none configured: every request gets 401 naming the setting (the process
  still serves webhooks, which a deployment on ``0.0.0.0`` may be all it wants). A token that is
  presented is always checked, required or not. Missing or wrong: 401 with ``WWW-Authenticate: Bearer``.
- **Allow-lists.** A client may list ``sources`` and ``types`` prefixes; an event must match one of
  each list that is not empty (case-sensitive, like the attributes). Otherwise 403 naming the client.
- **Reserved types.** Types that authenticated sources emit (:data:`RESERVED`: ``com.github.``,
  ``com.gitlab.``, ``io.k8s.``, each registry's namespace, the CDEvents families the sources translate
  to, trigger-router's own ``dev.triggerrouter.``) are refused unless one of the client's ``types``
  prefixes lies inside that family: ``com.github.`` or ``com.github.push`` unlock ``com.github.push``;
  ``com.`` or no list do not. The family check ignores case, so ``COM.GITHUB.push`` is reserved too.

Answers never contain the token; they name the client (``events_auth.clients[].name``) instead.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence, TypeVar

from pydantic import SecretStr

from router import errors
from router.config.settings import EventsAuthSettings, Settings
from router.config.web import is_loopback  # one definition of "beyond loopback" for /events and /ui/
from router.model import event_types
from router.model.events import CloudEvent

__all__ = ["CHALLENGE", "RESERVED", "Gate", "Grant", "authenticate", "bearer", "gate", "is_loopback",
           "reserved_family"]

T = TypeVar("T")

CHALLENGE = 'Bearer realm="trigger-router /events"'
"""The ``WWW-Authenticate`` value of every 401 from ``/events`` (RFC 6750 §3), with ``error=`` when a
token was presented and is wrong."""
ROUTER_PREFIX = "dev.triggerrouter."
"""trigger-router's own events (dead letters, expired joins); event_types has no constant for it."""
assert event_types.INGEST_REJECTED.startswith(ROUTER_PREFIX)
assert event_types.CORRELATION_EXPIRED.startswith(ROUTER_PREFIX)


def namespace(event_type: str) -> str:
    """``dev.cdevents.pipelinerun.queued.0.3.0`` -> ``dev.cdevents.pipelinerun.``; ``io.quay.push`` -> ``io.quay.``.

    A whole namespace is reserved, not one type, so that a version or a predicate the sources do
    not emit yet (``dev.cdevents.pipelinerun.finished.0.4.0``) cannot be forged either."""
    parts = event_type.split(".")
    while parts and parts[-1].isdigit():
        parts.pop()
    return ".".join(parts[:-1]) + "."


def _reserved() -> dict[str, str]:
    owned = {event_types.GITHUB_PREFIX: "the github webhook source",
             event_types.GITLAB_PREFIX: "the gitlab webhook source",
             event_types.KUBERNETES_PREFIX: "the kubernetes watch",
             ROUTER_PREFIX: "trigger-router itself"}
    for registry_type in (event_types.DOCKERHUB_PUSH, event_types.QUAY_PUSH, event_types.HARBOR_PUSH,
                          event_types.DISTRIBUTION_PUSH, event_types.ECR_PUSH, event_types.GAR_PUSH,
                          event_types.ACR_PUSH):
        owned[namespace(registry_type)] = "a registry webhook source"
    for translated in (event_types.PIPELINERUN_QUEUED, event_types.PIPELINERUN_STARTED,
                       event_types.PIPELINERUN_FINISHED, event_types.ARTIFACT_PUBLISHED,
                       event_types.ARTIFACT_DELETED, event_types.SERVICE_DEPLOYED, event_types.SERVICE_UPGRADED,
                       event_types.TESTSUITERUN_QUEUED, event_types.TESTSUITERUN_STARTED,
                       event_types.TESTSUITERUN_FINISHED):
        owned.setdefault(namespace(translated), "the CDEvents translations of authenticated sources")
    return owned


RESERVED: Mapping[str, str] = _reserved()
"""Reserved type namespace (lower case) -> who emits it, for the refusal's detail."""


def reserved_family(event_type: str) -> str | None:
    """The reserved namespace ``event_type`` falls in (ignoring case), or None."""
    folded = event_type.casefold()
    return next((prefix for prefix in RESERVED if folded.startswith(prefix)), None)


def _quoted(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


@dataclass(frozen=True, slots=True)
class Grant:
    """What one authenticated client (or the anonymous sender, where allowed) may send."""

    name: str
    sources: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    anonymous: bool = False

    def refusal(self, source: str, event_type: str) -> tuple[int, str, str] | None:
        """(status, detail, field) refusing an event with this source and type, or None to allow."""
        family = reserved_family(event_type)
        if family is not None and not any(event_type.startswith(p) and p.casefold().startswith(family)
                                          for p in self.types):
            detail = f"type {_quoted(event_type)} is reserved for {RESERVED[family]} ({family}*)"
            if self.anonymous:
                return 401, f"{detail}; send a bearer token allowed to send it", "type"
            return 403, f"{detail}; client {self.name!r} has no types prefix inside {family}", "type"
        if self.types and not any(event_type.startswith(p) for p in self.types):
            return 403, f"client {self.name!r} may not send type {_quoted(event_type)}", "type"
        if self.sources and not any(source.startswith(p) for p in self.sources):
            return 403, f"client {self.name!r} may not send source {_quoted(source)}", "source"
        return None

    def admit(self, batch: Iterable[CloudEvent]) -> None:
        """Refuse (401/403) unless this grant may send every event of ``batch``; the first refusal wins."""
        events = list(batch)
        for index, event in enumerate(events):
            refused = self.refusal(event.source, event.type)
            if refused is not None:
                status, detail, field = refused
                where = f"event {index}: " if len(events) > 1 else ""
                if status == 401:
                    raise errors.Unauthorized(where + detail, field=field, challenge=CHALLENGE)
                raise errors.Forbidden(where + detail, field=field)


ANONYMOUS = Grant("anonymous", anonymous=True)


class Gate:
    """The compiled ``events_auth`` settings: token -> grant, and whether a token is required."""

    def __init__(self, auth: EventsAuthSettings, host: str) -> None:
        self.host = host
        self.required = auth.required if isinstance(auth.required, bool) else not is_loopback(host)
        self._tokens: list[tuple[bytes, Grant]] = [(_secret(t), Grant("default")) for t in auth.tokens]
        for client in auth.clients:
            grant = Grant(client.name, tuple(client.sources), tuple(client.types))
            self._tokens += [(_secret(t), grant) for t in client.tokens]

    def authenticate(self, authorization: str | None) -> Grant:
        """The grant of the presented token; ``errors.Unauthorized`` if it is missing or wrong."""
        if authorization is None:
            if not self.required:
                return ANONYMOUS
            if not self._tokens:
                raise errors.Unauthorized(
                    f"POST /events is closed: the edge listens on {self.host!r} (beyond loopback) and "
                    "events_auth configures no tokens; set events_auth.tokens, or events_auth.required: false",
                    challenge=CHALLENGE)
            raise errors.Unauthorized("POST /events needs 'Authorization: Bearer <token>'", field="Authorization",
                                      challenge=CHALLENGE)
        return bearer(authorization, self._tokens, CHALLENGE)

    def authorize(self, authorization: str | None, batch: Iterable[CloudEvent]) -> Grant:
        """The grant, if it may send every event of ``batch``; the first refusal otherwise."""
        grant = self.authenticate(authorization)
        grant.admit(batch)
        return grant


def bearer(authorization: str, accepted: Sequence[tuple[bytes, T]], challenge: str) -> T:
    """What ``accepted`` pairs with the token of ``Authorization: Bearer <token>``, compared in constant
    time with every accepted token; ``errors.Unauthorized`` with ``challenge`` if malformed or wrong.
    Shared by ``/events`` and ``/subscriptions``, which differ only in what a token grants."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized("the Authorization header must be 'Bearer <token>'", field="Authorization",
                                  challenge=f'{challenge}, error="invalid_request"')
    try:
        given = token.strip().encode("utf-8", "surrogateescape")
    except UnicodeError:  # not even surrogate-escaped text: cannot be a configured token
        given = b""
    found: tuple[T] | None = None
    for secret, granted in accepted:  # every token is compared: the time tells nothing
        if hmac.compare_digest(given, secret) and found is None:
            found = (granted,)
    if found is None:
        raise errors.Unauthorized("the bearer token is not valid", field="Authorization",
                                  challenge=f'{challenge}, error="invalid_token"')
    return found[0]


def _secret(token: SecretStr) -> bytes:
    return token.get_secret_value().encode()


_gates: dict[int, tuple[Settings, Gate]] = {}


def gate(settings: Settings) -> Gate:
    """The gate of ``settings``, compiled once per settings object (settings never change)."""
    cached = _gates.get(id(settings))
    if cached is None or cached[0] is not settings:
        cached = _gates[id(settings)] = (settings, Gate(settings.events_auth, settings.http.host))
    return cached[1]


def authenticate(settings: Settings, headers: Mapping[str, str]) -> Grant:
    """The edge's first call, before the body is read: 401 unless the request's token is valid
    (or none is needed). The grant's ``admit`` then checks the parsed events against its allow-lists."""
    return gate(settings).authenticate(headers.get("Authorization"))
