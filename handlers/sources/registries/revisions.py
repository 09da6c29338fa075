"""Which commit an image was built from: its ``org.opencontainers.image.revision`` label (issue 16).

A registry push (``artifact.published``) or a Kubernetes rollout names a digest and no commit, yet
a verdict about it belongs on the commit the image was built from. Build tools write that into the
image config as labels (``docker buildx build --label``, a Dockerfile's ``LABEL``, ``buildah
config --label``): ``org.opencontainers.image.revision`` is the sha, ``org.opencontainers.image.source``
the repository URL. This commit finder reads them from the registry through the digest resolver's
client and authentication (``digests.Resolver.image_config``), never a second registry client.

- Which image: ``customData.repository``/``digest`` of ``artifact.published``, the first entry
  with a digest of ``data.images`` (``rollout_completed``, ``rollout_failed``, a pod's ``crashloop``,
  ``oomkilled``, ``image_pull_failed``) or ``customData.images`` (``service.*``),
  an ``image`` reference pinned by digest, or a subject that is a digest under an
  ``https://<host>/<path>`` source. An event naming none is not this finder's (``None``).
- A digest never changes, so what its config says is kept per digest in a JetStream KV bucket
  (``registries.labels.cache_bucket``): labels found, and "no labels" too. A registry that cannot
  be read is not kept, and is no answer: ``errors.TemporaryError``, so the reporting engine
  reports that stage later. ``bus`` is ``None`` in ``rules test``: no cache.
- Credentials go only to the registry configured for a host: ``registries.labels.registries[]``,
  Docker Hub's and Quay's from their sections; any other host is read anonymously (plain HTTP on
  loopback only), so an event cannot steer credentials elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from handlers.sources.registries import digests
from router import plugins
from router.plugins import Section, commits, errors, events, kv, references

log = logging.getLogger(__name__)

REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
CACHE_TTL = 180 * 86400.0
"""Seconds a digest's labels are kept: a digest is immutable, the bound only keeps the bucket finite."""


class LabelRegistry(Section):
    host: str = ""
    """The registry host as images name it (``registry.example.com``, ``127.0.0.1:5000``)."""
    api_url: str = ""
    """Its API v2 base URL; empty: ``https://<host>``."""
    username: str | None = None
    password: SecretStr | None = None


@plugins.settings_section("registries.labels")
class LabelSettings(Section):
    enabled: bool = True
    """Find the commit of an event that names none through its image's revision label."""
    registries: list[LabelRegistry] = []
    """Registries (and their credentials) to read labels from; others are read anonymously."""
    cache_bucket: str = "TR_IMAGE_LABELS"
    """JetStream KV bucket of labels per digest."""


@dataclass
class _Configured:
    labels: LabelSettings = field(default_factory=LabelSettings)
    gitlab: tuple[str, ...] = ("https://gitlab.com",)
    settings: Any = None
    resolvers: dict[str, digests.Resolver] = field(default_factory=dict)
    buckets: dict[int, kv.Bucket] = field(default_factory=dict)


_current = _Configured()


@plugins.on_settings("image-labels")
def configure(settings: plugins.Settings) -> None:
    gitlab = getattr(getattr(settings, "reporters", None), "gitlab", None)
    bases = (gitlab.url, *gitlab.hosts) if gitlab is not None else ("https://gitlab.com",)
    global _current
    _current = _Configured(settings.registries.labels, tuple(bases), settings)


def image_of(event: events.CloudEvent) -> tuple[str, str] | None:
    """(``host/path``, digest) of the image the event is about, or ``None`` if it names none."""
    data = event.json() if event.is_json() else None
    data = data if isinstance(data, dict) else {}
    custom = data.get("customData") if isinstance(data.get("customData"), dict) else {}
    if references.is_sha256(custom.get("digest")) and isinstance(custom.get("repository"), str):
        return custom["repository"], custom["digest"]
    for entries in (data.get("images"), custom.get("images")):
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            if references.is_sha256(entry.get("digest")) and isinstance(entry.get("repository"), str):
                return entry["repository"], entry["digest"]
            pinned = _pinned(entry.get("image"))  # no pod reported its imageID yet
            if pinned is not None:
                return pinned
    pinned = _pinned(data.get("image"))
    if pinned is not None:
        return pinned
    subject, source = event.attributes.get("subject"), event.source
    if references.is_sha256(subject) and source.startswith("https://") and "/" in source[8:]:
        return source[8:], subject
    return None


def _pinned(image: Any) -> tuple[str, str] | None:
    """(``host/path``, digest) of an image reference pinned by digest (``host/path[:tag]@sha256:…``)."""
    if not isinstance(image, str) or "@sha256:" not in image:
        return None
    try:
        parsed = references.parse_image(image)
    except references.InvalidReference:
        return None
    return (parsed.name, parsed.digest) if parsed.digest and parsed.domain else None


def _short(digest: str) -> str:
    return digest[:19] + "…"


def _resolver(host: str) -> digests.Resolver:
    """The client for ``host``: configured credentials for a configured host, else anonymous."""
    settings = _current.settings
    api_url, credentials = "", digests.Credentials()
    for registry in _current.labels.registries:
        if registry.host.lower() == host:
            api_url = registry.api_url or f"https://{host}"
            credentials = digests.Credentials(registry.username, registry.password)
            break
    else:
        if host in _DOCKER_HUB and settings is not None:
            hub = settings.registries.dockerhub
            api_url, credentials = hub.api_url, digests.Credentials(hub.username, hub.password)
        elif settings is not None and host in {h.lower() for h in settings.registries.quay.hosts}:
            quay = settings.registries.quay
            api_url, credentials = quay.api_url or f"https://{host}", digests.Credentials(quay.username, quay.password)
        elif host in _DOCKER_HUB:
            api_url = "https://registry-1.docker.io"
        else:
            loopback = host.rsplit(":", 1)[0] in _LOOPBACK or host in _LOOPBACK
            api_url = f"{'http' if loopback else 'https'}://{host}"
    if api_url not in _current.resolvers:
        registries = settings.registries if settings is not None else None
        _current.resolvers[api_url] = digests.Resolver(
            api_url, credentials, timeout=registries.resolve_timeout if registries else 5.0,
            attempts=registries.resolve_attempts if registries else 3)
    return _current.resolvers[api_url]


async def _bucket(bus: Any) -> kv.Bucket | None:
    js = getattr(bus, "js", None)
    if js is None:
        return None
    if id(js) not in _current.buckets:
        _current.buckets[id(js)] = await kv.open_bucket(
            js, _current.labels.cache_bucket, ttl=CACHE_TTL, what="the image labels cache",
            replicas=getattr(getattr(bus, "config", None), "replicas", 1),  # the Bus's BusSettings
            description="trigger-router: image config labels per digest (revision, source)")
    return _current.buckets[id(js)]


def _key(digest: str) -> str:
    return digest.replace(":", "_")


async def read_labels(repository: str, digest: str, bus: Any) -> dict[str, Any]:
    """``{"labels", "manifest", "platform"}`` for the digest, from the cache or the registry;
    ``errors.TemporaryError`` when the registry cannot be read (nothing is cached then)."""
    bucket = None
    try:
        bucket = await _bucket(bus)
        cached = await bucket.get(_key(digest)) if bucket else None
    except errors.BusUnavailable as exc:
        log.info("image labels cache unavailable, asking the registry: %s", exc)
        cached = None
    if cached is not None and isinstance(cached.value, dict):
        return cached.value
    host, _, path = repository.lower().partition("/")
    resolver = _resolver(host)
    if host in _DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    config = await resolver.image_config(path, digest)
    found = {"labels": config.labels, "manifest": config.manifest, "platform": config.platform}
    if bucket is not None:
        try:
            await bucket.put(_key(digest), found)
        except errors.BusUnavailable as exc:
            log.info("cannot keep the labels of %s: %s", digest, exc)
    return found


def commit_from(found: dict[str, Any], repository: str, digest: str) -> tuple[commits.Commit | None, str]:
    labels = found.get("labels") or {}
    where = f"{_short(digest)} in {repository}"
    if found.get("platform"):
        where += f" (its {found['platform']} image {_short(found['manifest'])})"
    revision = labels.get(REVISION)
    if revision is None:
        names = ", ".join(sorted(labels)) if labels else "none"
        return None, (f"image {where} has no label {REVISION} (its labels: {names}); set it at build time, "
                      f"e.g. docker buildx build --label {REVISION}=$(git rev-parse HEAD) "
                      f"--label {SOURCE}=<repository URL>")
    if not commits.is_full_sha(revision):
        return None, (f"label {REVISION} of {where} is {revision!r}, not a full commit sha "
                      "(40 or 64 lowercase hex digits: git rev-parse HEAD)")
    source = labels.get(SOURCE)
    if not source:
        return None, (f"label {REVISION} of {where} names {revision[:12]}, but the image has no label {SOURCE}: "
                      "which repository is unknown (set it to the repository URL at build time)")
    commit, why = commits.from_source(source, revision, f"label {REVISION} of {where}", _current.gitlab)
    if commit is None:
        return None, f"label {SOURCE} of {where}: {why}"
    return commit, why


@plugins.commit_finder("image-labels")
async def find(event: events.CloudEvent, bus: Any) -> tuple[commits.Commit | None, str] | None:
    """The commit the event's image was built from; ``None`` when the event names no image digest;
    ``errors.TemporaryError`` when the registry cannot be read now."""
    if not _current.labels.enabled:
        return None
    image = image_of(event)
    if image is None:
        return None
    repository, digest = image
    try:
        found = await read_labels(repository, digest, bus)
    except errors.TemporaryError as exc:
        # Not an answer: the reporting engine retries the stage, rules test shows this as the reason.
        raise errors.TemporaryError(f"registry unreachable (temporary, not cached): {exc}", delay=exc.delay) from exc
    return commit_from(found, repository, digest)
