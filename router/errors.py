"""The typed error family of trigger-router.

Every failure a user can cause or observe has one class here, so that exactly one place decides
what it means: the HTTP edge maps ``IngestError`` subclasses to status codes, the consumer loop maps
``DispatchError`` subclasses to ack / nak / term, and the CLI prints ``ConfigError`` and
``RuleError`` with the path of the offending field.
"""

from __future__ import annotations


class TriggerRouterError(Exception):
    """Base of every error raised on purpose by trigger-router."""


class ConfigError(TriggerRouterError):
    """A setting is missing, unknown or invalid; ``path`` names it (``nats.url``)."""

    def __init__(self, message: str, *, path: str = "", source: str = "") -> None:
        self.message = message
        self.path = path
        self.source = source
        where = ": ".join(part for part in (source, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class IngestError(TriggerRouterError):
    """A request to the HTTP edge was refused; nothing from it was published.

    ``status`` is the HTTP status the edge answers with; ``detail`` is safe to show the sender (it
    never contains a secret or the payload); ``limit`` names the bound a request exceeded
    (``http.max_batch_events``, ``max_subject_bytes``; see ``router.bus.limits``), if that is why.
    """

    status = 400

    def __init__(self, detail: str, *, field: str | None = None, limit: str | None = None) -> None:
        self.detail = detail
        self.field = field
        self.limit = limit
        super().__init__(detail)


class BadRequest(IngestError):
    """Malformed body or a missing or invalid attribute."""

    status = 400


class Unauthorized(IngestError):
    """Missing or wrong signature or token; ``challenge``: the ``WWW-Authenticate`` to answer with."""

    status = 401

    def __init__(self, detail: str, *, field: str | None = None, challenge: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.challenge = challenge


class Forbidden(IngestError):
    """The sender is authenticated but not allowed to send this (a token's allow-list, a reserved type)."""

    status = 403


class NotFound(IngestError):
    status = 404


class Conflict(IngestError):
    """The request contradicts what is stored: a limit on stored things (``subscriptions.max_subscriptions``)."""

    status = 409


class PayloadTooLarge(IngestError):
    status = 413


class RequestTimeout(IngestError):
    """The sender did not send the whole request within the edge's read timeout (``http.body_timeout``)."""

    status = 408


class UnsupportedMediaType(IngestError):
    status = 415


class BusUnavailable(IngestError):
    """JetStream cannot durably store right now; the sender should retry later."""

    status = 503

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class DigestUnresolved(IngestError):
    """A registry webhook names a tag, and the registry did not say which digest it points to.

    Answered 503 with ``Retry-After`` and nothing published: a tag is never passed off as a
    digest, and the sender's retry resolves again (its events have deterministic ids).
    """

    status = 503

    def __init__(self, detail: str, *, retry_after: int = 30) -> None:
        self.retry_after = retry_after
        super().__init__(detail)


class RuleError(TriggerRouterError):
    """A trigger rule is invalid; names the file, the rule and the field path."""

    def __init__(self, message: str, *, file: str = "", rule: str = "", field: str = "", line: int = 0,
                 column: int = 0) -> None:
        self.message = message
        self.file = file
        self.rule = rule
        self.field = field
        self.line = line
        """Where in the file (1-based) the problem is, when known (0: not known); ``rules validate``
        prints ``file:line:column:``."""
        self.column = column
        where = ", ".join(
            f"{label} {value}" for label, value in (("rule", rule), ("field", field)) if value
        )
        prefix = f"{file}: " if file else ""
        super().__init__(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")


class DispatchError(TriggerRouterError):
    """An action could not complete."""


class PermanentError(DispatchError):
    """Retrying cannot help (bad parameters, a forbidden resource)."""


class TemporaryError(DispatchError):
    """Retrying may help (a timeout, a connection refused, a 503).

    ``delay``: seconds the other side asked us to wait (a 429's ``Retry-After``, a rate limit's
    reset); ``None`` leaves the wait to the caller's backoff.
    """

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(message)


class SinkUnavailable(TemporaryError):
    """A subscription's sink did not take an event now (no connection, a timeout, 5xx, 429);
    ``delay``: the seconds its ``Retry-After`` asked for, if it did."""


class SinkRefused(PermanentError):
    """A subscription's sink refused an event in a way that repeating cannot change (400, 404, 413, ...)."""


class RunCancelled(DispatchError):
    """The run was told to stop (replaced by a newer run); it ends with outcome ``cancel``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class KubernetesError(DispatchError):
    """The Kubernetes API refused a request or could not be reached; ``status`` 0 means no answer."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"Kubernetes API {status or 'unreachable'} {reason}: {message}".replace("  ", " "))


class KubernetesUnavailable(KubernetesError, TemporaryError):
    """No answer, 429 or 5xx: asking again later may work."""


class KubernetesRefused(KubernetesError, PermanentError):
    """A 4xx answer (forbidden, not found, conflict, invalid, gone): the same request fails again."""
