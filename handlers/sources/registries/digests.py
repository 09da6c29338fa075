"""Tag -> digest through the registry HTTP API v2, for webhooks that only name a tag.

Docker Hub and Quay say "``latest`` was pushed to ``owner/app``" and nothing about what ``latest``
now is. Before anything is published the digest is asked of the registry itself: ``HEAD
/v2/<name>/manifests/<tag>`` with the OCI and Docker manifest media types in ``Accept`` (without
them a registry may answer with a converted schema-1 manifest and its digest), reading
``Docker-Content-Digest``. Authentication follows the distribution token protocol: a 401 carrying
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` is answered by fetching a token from the
realm (with the configured credentials, else anonymously) and asking again; a ``Basic`` challenge is
answered with the configured credentials.

Failures are retried a bounded number of times with backoff (the webhook may outrun the registry's
replication: a 404 now can be a 200 in a second). When the digest cannot be learnt the delivery is
refused with ``errors.DigestUnresolved`` (503 + Retry-After): nothing is published, so nothing
downstream can mistake a tag for a digest, and the sender's retry tries again.

The same client, with the same authentication, reads an image's config (:meth:`Resolver.image_config`:
manifest, for an index the linux/amd64 or first platform manifest, then the config blob), whose
labels say which commit the image was built from (``revisions``). Every document read by digest is
checked against it: the registry cannot hand over a different image's labels.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import SecretStr

from router.plugins import artifacts, errors

log = logging.getLogger(__name__)

ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
"""A manifest or image config larger than this is refused (the distribution spec's manifest limit)."""
PLATFORM = ("linux", "amd64")
"""The platform whose manifest of an index is read when the index is asked for; else the first one."""


class _Retry(Exception):
    """This attempt failed in a way another attempt may not."""


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: SecretStr | None = None

    def basic(self) -> str | None:
        """The ``Authorization`` value for basic auth, if a username is configured."""
        if not self.username:
            return None
        password = self.password.get_secret_value() if self.password else ""
        return "Basic " + base64.b64encode(f"{self.username}:{password}".encode()).decode()


@dataclass(frozen=True)
class ImageConfig:
    """The config of the image a digest names (for an index: of one platform's image)."""

    labels: dict[str, str] = field(default_factory=dict)
    """``config.Labels`` (``LABEL`` in a Dockerfile, ``--label`` of ``docker buildx``)."""
    manifest: str = ""
    """The digest of the image manifest read: the one asked for, or the platform's of an index."""
    platform: str | None = None
    """``os/architecture`` of the manifest picked from an index, ``None`` when no index was involved."""


class Resolver:
    """Resolves tags of one registry; bearer tokens are reused until the registry refuses them."""

    def __init__(self, api_url: str, credentials: Credentials = Credentials(), *, timeout: float = 5.0,
                 attempts: int = 3, backoff: float = 0.5) -> None:
        self.api_url = api_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._tokens: dict[str, str] = {}

    async def image_config(self, repository: str, digest: str) -> ImageConfig:
        """The config (labels) of the image ``repository@digest``; ``errors.TemporaryError`` when
        the registry cannot be read after the configured attempts (nothing here is permanent: the
        digest exists, it was pushed or is running)."""
        answer, reason = await self._attempts(lambda http: self._config(http, repository, digest),
                                              f"reading the image config of {repository}@{digest}")
        if answer is not None:
            return answer
        raise errors.TemporaryError(f"registry {self.api_url} unreachable or refusing: cannot read the image "
                                    f"config of {repository}@{digest} after {self.attempts} attempt(s): {reason}")

    async def _config(self, http: aiohttp.ClientSession, repository: str, digest: str) -> ImageConfig:
        manifest = await self._document(http, repository, "manifests", digest)
        platform = None
        if "manifests" in manifest:  # an OCI index or a Docker manifest list
            entry, platform = _pick(manifest["manifests"], repository, digest)
            digest = entry["digest"]
            manifest = await self._document(http, repository, "manifests", digest)
        config = manifest.get("config")
        if not isinstance(config, dict) or not artifacts.is_digest(config.get("digest")):
            raise _Retry(f"manifest {digest} has no config descriptor")
        blob = await self._document(http, repository, "blobs", config["digest"])
        labels = (blob.get("config") or {}).get("Labels") or {}
        if not isinstance(labels, dict):
            labels = {}
        return ImageConfig({str(k): str(v) for k, v in labels.items()}, digest, platform)

    async def _document(self, http: aiohttp.ClientSession, repository: str, kind: str, digest: str) -> dict[str, Any]:
        """A JSON manifest or blob by digest, checked against the digest."""
        url = f"{self.api_url}/v2/{repository}/{kind}/{digest}"
        headers = {"Accept": ACCEPT} if kind == "manifests" else {}
        status, body = await self._get(http, url, headers, repository)
        if status == 404:
            raise _Retry(f"{repository}@{digest} not found (404: {kind[:-1]} unknown to this registry)")
        if status != 200:
            raise _Retry(f"GET {kind[:-1]} {digest} answered {status}")
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise _Retry(f"the registry answered a {kind[:-1]} that does not match {digest}")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise _Retry(f"{kind[:-1]} {digest} is not JSON") from exc
        if not isinstance(document, dict):
            raise _Retry(f"{kind[:-1]} {digest} is not a JSON object")
        return document

    async def _get(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                   repository: str) -> tuple[int, bytes]:
        async with http.get(url, headers={**headers, **self._auth_for(repository)}) as response:
            status, challenge = response.status, response.headers.get("WWW-Authenticate", "")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1) if status == 200 else b""
        if status == 401:
            auth_headers = await self._answer(http, challenge, repository)
            async with http.get(url, headers={**headers, **auth_headers}) as response:
                status = response.status
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1) if status == 200 else b""
            if status == 401:
                self._tokens.pop(repository, None)
                raise _Retry("the registry refused the credentials (401)")
        if len(body) > MAX_DOCUMENT_BYTES:
            raise _Retry(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
        return status, body

    async def _attempts(self, call, what: str) -> tuple[Any, str]:
        """(``call(http)``'s answer, "") or (None, the last reason) after ``self.attempts`` tries,
        backing off exponentially; ``_Retry`` and client errors are what a retry may fix."""
        reason = "no attempt made"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http:
            for attempt in range(self.attempts):
                if attempt:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    return await call(http), ""
                except _Retry as exc:
                    reason = str(exc)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    reason = f"{exc.__class__.__name__}: {exc}".rstrip(": ")
                log.info("%s at %s, attempt %d failed: %s", what, self.api_url, attempt + 1, reason)
        return None, reason

    async def digest(self, repository: str, tag: str) -> str:
        """``sha256:<hex>`` of the manifest ``repository:tag`` names now."""
        answer, reason = await self._attempts(lambda http: self._head(http, repository, tag),
                                              f"resolving {repository}:{tag}")
        if answer is not None:
            return answer
        raise errors.DigestUnresolved(f"cannot resolve {repository}:{tag} to a digest at {self.api_url} "
                                      f"after {self.attempts} attempt(s): {reason}")

    async def _head(self, http: aiohttp.ClientSession, repository: str, tag: str) -> str:
        url = f"{self.api_url}/v2/{repository}/manifests/{tag}"
        headers = {"Accept": ACCEPT}
        token = self._tokens.get(repository)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with http.head(url, headers=headers, allow_redirects=True) as response:
            status, challenge = response.status, response.headers.get("WWW-Authenticate", "")
            found = response.headers.get("Docker-Content-Digest")
        if status == 401:
            auth_headers = await self._answer(http, challenge, repository)
            async with http.head(url, headers={**headers, **auth_headers}, allow_redirects=True) as response:
                status, found = response.status, response.headers.get("Docker-Content-Digest")
            if status == 401:
                self._tokens.pop(repository, None)
                raise _Retry("the registry refused the credentials (401)")
        if status == 404:
            raise _Retry(f"{repository}:{tag} not found (404)")
        if status != 200:
            raise _Retry(f"HEAD manifest answered {status}")
        if found is None:
            # Not every registry sets the header on HEAD; the digest of the bytes is the same thing.
            async with http.get(url, headers={**headers, **self._auth_for(repository)}) as response:
                if response.status != 200:
                    raise _Retry(f"GET manifest answered {response.status}")
                found = "sha256:" + hashlib.sha256(await response.read()).hexdigest()
        if not artifacts.is_digest(found):
            raise _Retry(f"the registry reported {found!r}, not a sha256 digest")
        return found

    def _auth_for(self, repository: str) -> dict[str, str]:
        token = self._tokens.get(repository)
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _answer(self, http: aiohttp.ClientSession, challenge: str, repository: str) -> dict[str, str]:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        basic = self.credentials.basic()
        if scheme.lower() == "basic":
            if basic is None:
                raise _Retry("the registry wants basic credentials and none are configured")
            return {"Authorization": basic}
        if scheme.lower() != "bearer" or "realm" not in params:
            raise _Retry(f"unsupported authentication challenge {scheme or '(none)'!r}")
        query = {"scope": params.get("scope") or f"repository:{repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        async with http.get(params["realm"], params=query,
                            headers={"Authorization": basic} if basic else None) as response:
            if response.status != 200:
                raise _Retry(f"the token endpoint answered {response.status}")
            body = await response.json(content_type=None)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise _Retry("the token endpoint returned no token")
        if len(self._tokens) >= 256:  # one entry per repository; a bound, not a cache policy
            self._tokens.clear()
        self._tokens[repository] = token
        return {"Authorization": f"Bearer {token}"}


def _pick(manifests: Any, repository: str, digest: str) -> tuple[dict[str, Any], str | None]:
    """The index entry for :data:`PLATFORM`, else the first platform manifest (attestations, whose
    platform is ``unknown/unknown``, are no image of the index)."""
    images = [m for m in manifests if isinstance(m, dict) and artifacts.is_digest(m.get("digest"))
              and (m.get("platform") or {}).get("os") != "unknown"] if isinstance(manifests, list) else []
    if not images:
        raise _Retry(f"index {repository}@{digest} lists no platform manifest")

    def name(entry: dict[str, Any]) -> str | None:
        platform = entry.get("platform") or {}
        return f"{platform['os']}/{platform['architecture']}" if platform.get("os") and platform.get("architecture") else None

    for entry in images:
        platform = entry.get("platform") or {}
        if (platform.get("os"), platform.get("architecture")) == PLATFORM:
            return entry, name(entry)
    return images[0], name(images[0])
