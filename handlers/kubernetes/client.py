"""A thin JSON client over ``kubernetes.aio``'s transport, for any resource including CRDs.

The generated typed API of ``kubernetes.aio`` knows only built-in kinds and deserialises every
object into models; the watch source must handle any group/version/kind, and both it and the
actions only need a few fields. So requests go through the library's ``ApiClient`` (which owns
kubeconfig / in-cluster authentication, TLS and token refresh) and answers stay plain dicts.

Errors are mapped once, here: no answer, 429 and 5xx become ``errors.KubernetesUnavailable``
(retry), any other 4xx ``errors.KubernetesRefused`` (with the status, so callers can treat 404,
409 AlreadyExists and 410 Gone as the facts they are).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import weakref
from typing import Any, AsyncIterator

import aiohttp
from kubernetes import aio

from handlers.kubernetes.settings import KubernetesSettings
from router.plugins import errors

log = logging.getLogger(__name__)

_settings = KubernetesSettings()
_shared: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client]" = weakref.WeakKeyDictionary()


def configure(settings: KubernetesSettings) -> None:
    """Use ``settings`` for shared clients (the router calls this at start-up).

    Clients already made stay in use unless the connection settings changed."""
    global _settings
    if (settings.kubeconfig, settings.context, settings.cluster) != \
            (_settings.kubeconfig, _settings.context, _settings.cluster):
        _shared.clear()
    _settings = settings


async def shared() -> "Client":
    """One client per event loop (an aiohttp session cannot cross loops), built on first use."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None:
        client = _shared[loop] = await Client.connect(_settings)
    return client


async def close_shared() -> None:
    """Close this loop's shared client (at shutdown, so no connection outlives the loop)."""
    client = _shared.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close()


async def load_configuration(settings: KubernetesSettings) -> aio.client.Configuration:
    """``kubernetes.kubeconfig`` if set, else in-cluster, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    configuration = aio.client.Configuration()
    try:
        if settings.kubeconfig is not None:
            await aio.config.load_kube_config(str(settings.kubeconfig), context=settings.context,
                                              client_configuration=configuration)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            aio.config.load_incluster_config(client_configuration=configuration)
        else:
            await aio.config.load_kube_config(context=settings.context, client_configuration=configuration)
    except (aio.config.ConfigException, OSError) as exc:
        raise errors.ConfigError(f"no usable Kubernetes client configuration: {exc}",
                                 path="kubernetes.kubeconfig") from exc
    return configuration


class Client:
    def __init__(self, api: aio.client.ApiClient, cluster: str = "default") -> None:
        self.api = api
        self.cluster = cluster
        self._plurals: dict[tuple[str, str, str], tuple[str, bool]] = {}

    @classmethod
    async def connect(cls, settings: KubernetesSettings) -> "Client":
        return cls(aio.client.ApiClient(await load_configuration(settings)), settings.cluster)

    async def close(self) -> None:
        await self.api.close()

    async def _send(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                    timeout: Any, content_type: str | None = None):
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, v if not isinstance(v, bool) else str(v).lower()) for k, v in (query or {}).items()
                  if v is not None]
        serialized = await self.api.param_serialize(method=method, resource_path=path, query_params=params,
                                                    header_params=headers, body=body,
                                                    auth_settings=["BearerToken"])
        try:
            return await self.api.call_api(*serialized, _request_timeout=timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise errors.KubernetesUnavailable(0, exc.__class__.__name__, str(exc) or "no answer") from exc

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                      timeout: float = 30.0, content_type: str | None = None) -> Any:
        response = await self._send(method, path, query, body, timeout, content_type)
        try:
            data = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise errors.KubernetesUnavailable(0, exc.__class__.__name__, str(exc)) from exc
        if response.status >= 300:
            raise _error(response.status, data)
        if response.response.content_type == "application/json":
            return json.loads(data)
        return data.decode(errors="replace")

    async def watch(self, path: str, query: dict[str, Any], timeout: float) -> AsyncIterator[dict]:
        """Watch events (``{"type", "object"}``) until the server ends the request.

        An ``ERROR`` event raises ``KubernetesRefused`` with its code (410: the resourceVersion
        is gone); a broken connection raises ``KubernetesUnavailable``.
        """
        query = {**query, "watch": True, "timeoutSeconds": int(timeout)}
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout + 30)
        response = await self._send("GET", path, query, None, client_timeout)
        try:
            if response.status >= 300:
                raise _error(response.status, await response.read())
            while True:
                try:
                    line = await response.response.content.readline()
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise errors.KubernetesUnavailable(0, exc.__class__.__name__, str(exc) or "watch broke") from exc
                if not line:
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object", {})
                    raise errors.KubernetesRefused(int(status.get("code") or 500), status.get("reason", ""),
                                                   status.get("message", ""))
                yield event
        finally:
            response.response.release()

    async def wait_for(self, collection: str, name: str, done, timeout: float) -> dict:
        """The object ``name`` once ``done(object)`` holds, following it with a watch (no polling).

        Raises ``asyncio.TimeoutError`` after ``timeout`` seconds and ``KubernetesRefused`` (404)
        if the object does not exist. A watch that breaks or expires (410) is re-read and resumed.
        """
        async with asyncio.timeout(timeout):
            while True:
                current = await self.request("GET", f"{collection}/{name}")
                if done(current):
                    return current
                query = {"fieldSelector": f"metadata.name={name}",
                         "resourceVersion": current["metadata"]["resourceVersion"]}
                try:
                    async for event in self.watch(collection, query, timeout=min(timeout, 300)):
                        if event["type"] == "DELETED":
                            raise errors.KubernetesRefused(404, "NotFound", f"{name} was deleted")
                        if event["type"] in ("ADDED", "MODIFIED") and done(event["object"]):
                            return event["object"]
                except errors.KubernetesRefused as exc:
                    if exc.status != 410:
                        raise
                except errors.KubernetesUnavailable as exc:
                    log.info("watch on %s/%s broke (%s); resuming", collection, name, exc)
                    await asyncio.sleep(0.5)

    async def resource(self, group: str, version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from API discovery (works for CRDs), cached."""
        key = (group, version, kind)
        if key not in self._plurals:
            listing = await self.request("GET", group_path(group, version))
            for entry in listing.get("resources", []):
                if entry.get("kind") == kind and "/" not in entry["name"]:
                    self._plurals[key] = (entry["name"], bool(entry.get("namespaced")))
                    break
            else:
                raise errors.KubernetesRefused(404, "NotFound", f"{group_path(group, version)} has no kind {kind}")
        return self._plurals[key]

    async def collection_path(self, group: str, version: str, kind: str, namespace: str | None) -> str:
        plural, namespaced = await self.resource(group, version, kind)
        base = group_path(group, version)
        if namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{plural}"
        return f"{base}/{plural}"


def group_path(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _error(status: int, body: bytes) -> errors.KubernetesError:
    try:
        document = json.loads(body)
        reason, message = document.get("reason", ""), document.get("message", "")
    except ValueError:
        reason, message = "", body.decode(errors="replace")[:300]
    cls = errors.KubernetesUnavailable if status == 429 or status >= 500 else errors.KubernetesRefused
    return cls(status, reason, message)
