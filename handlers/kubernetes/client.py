"""A thin JSON client over ``kubernetes.aio``'s transport, for any resource including CRDs.

The generated typed API of ``kubernetes.aio`` knows only built-in kinds and deserialises every
object into models; the watch source must handle any group/version/kind, and both it and the
actions only need a few fields. So requests go through the library's ``ApiClient`` (which owns
kubeconfig / in-cluster authentication, TLS and token refresh) and answers stay plain dicts.

Errors are mapped once, here: no answer, 429 and 5xx become ``errors.KubernetesUnavailable``
(retry), any other 4xx ``errors.KubernetesRefused`` (with the status, so callers can treat 404,
409 AlreadyExists and 410 Gone as the facts they are).

Watch streams are read in chunks and split into lines by ``watchlines.Lines``, not with aiohttp's
``readline()``: that raises ``LineTooLong`` (not a ``ClientError``) past its buffer limit (4 MiB
with this library's 2 MiB ``read_bufsize``), and a 1 MiB ConfigMap of ``<`` is a 6 MiB line, since
the apiserver writes ``<`` as ``\\u003c``; the watch then retried the same object forever. A line
over ``kubernetes.max_object_bytes`` or one that is not a watch event is skipped, logged and
counted, and the stream goes on.
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
from kubernetes.aio.config import incluster_config

from handlers.kubernetes import watchlines
from handlers.kubernetes.settings import KubernetesSettings
from router.plugins import errors

log = logging.getLogger(__name__)

_settings = KubernetesSettings()
_shared: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client]" = weakref.WeakKeyDictionary()


def configure(settings: KubernetesSettings) -> None:
    """Use ``settings`` for shared clients (the router calls this at start-up).

    Clients already made stay in use unless the connection settings changed."""
    global _settings
    if _connection(settings) != _connection(_settings):
        _shared.clear()
    _settings = settings


def configured() -> KubernetesSettings:
    return _settings


def _connection(settings: KubernetesSettings) -> tuple:
    return (settings.kubeconfig, settings.context, settings.cluster, settings.service_account_dir,
            settings.max_object_bytes)


async def shared() -> "Client":
    """One client per event loop (an aiohttp session cannot cross loops), built on first use."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None:
        client = _shared[loop] = await Client.connect(_settings)
    return client


async def close_shared() -> None:
    """Close this loop's shared client's connections (at shutdown, so none outlives the loop).

    It stays this loop's client: whatever else runs in the loop (a test around an in-process
    ``serve``) and still holds it opens new connections on its next request."""
    client = _shared.get(asyncio.get_running_loop())
    if client is not None:
        await client.close()


async def load_configuration(settings: KubernetesSettings) -> aio.client.Configuration:
    """``kubernetes.kubeconfig`` if set, else in-cluster, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    configuration = aio.client.Configuration()
    in_cluster = settings.kubeconfig is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    try:
        if settings.kubeconfig is not None:
            await aio.config.load_kube_config(str(settings.kubeconfig), context=settings.context,
                                              client_configuration=configuration)
        elif in_cluster:
            _load_in_cluster(settings, configuration)
        else:
            await aio.config.load_kube_config(context=settings.context, client_configuration=configuration)
    except (aio.config.ConfigException, OSError) as exc:
        raise errors.ConfigError(f"no usable Kubernetes client configuration: {exc}",
                                 path="kubernetes.service_account_dir" if in_cluster else "kubernetes.kubeconfig"
                                 ) from exc
    return configuration


def _load_in_cluster(settings: KubernetesSettings, configuration: aio.client.Configuration) -> None:
    """The pod's ServiceAccount from ``kubernetes.service_account_dir``.

    The library's loader re-reads the token file every minute, so a projected token that the
    kubelet rotates keeps working. The namespace file is only reported here.
    """
    directory = settings.service_account_dir
    incluster_config.InClusterConfigLoader(token_filename=str(directory / "token"),
                                           cert_filename=str(directory / "ca.crt")
                                           ).load_and_set(configuration)
    try:
        namespace = (directory / "namespace").read_text().strip()
    except OSError:
        namespace = "unknown"
    log.info("in-cluster configuration: %s, ServiceAccount files in %s (namespace %s)",
             configuration.host, directory, namespace)


class Client:
    def __init__(self, api: aio.client.ApiClient, cluster: str = "default",
                 max_object_bytes: int = KubernetesSettings().max_object_bytes) -> None:
        self.api = api
        self.cluster = cluster
        self.max_object_bytes = max_object_bytes
        self.oversized = 0
        """Watch events skipped for being longer than ``max_object_bytes``."""
        self.malformed = 0
        """Watch lines skipped for not being a watch event (not JSON, or not shaped like one)."""
        self._plurals: dict[tuple[str, str, str], tuple[str, bool]] = {}

    @classmethod
    async def connect(cls, settings: KubernetesSettings) -> "Client":
        return cls(aio.client.ApiClient(await load_configuration(settings)), settings.cluster,
                   settings.max_object_bytes)

    async def close(self) -> None:
        """Close its connections; a later request opens new ones (the session is made on first use)."""
        api, self.api = self.api, aio.client.ApiClient(self.api.configuration)
        await api.close()

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
        is gone); a broken connection raises ``KubernetesUnavailable``. An event over
        ``max_object_bytes`` is not parsed: if its metadata (which the apiserver writes first)
        can be read from its head, it becomes a ``BOOKMARK`` at its resourceVersion (a
        ``DELETED`` with that metadata only, if it was a deletion), so the watch position moves past
        it and the object's last known state stays what it was; else it is dropped, and the
        position moves on with the next event. A stand-in carries ``"skipped": {"type", "bytes"}``.
        """
        query = {**query, "watch": True, "timeoutSeconds": int(timeout)}
        client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout + 30)
        response = await self._send("GET", path, query, None, client_timeout)
        try:
            if response.status >= 300:
                raise _error(response.status, await response.read())
            lines = watchlines.Lines(self.max_object_bytes, keep=METADATA_BYTES)
            content = response.response.content
            while True:
                try:
                    chunk = await content.read(CHUNK_BYTES)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise errors.KubernetesUnavailable(0, exc.__class__.__name__, str(exc) or "watch broke") from exc
                for line in lines.feed(chunk) if chunk else lines.end():
                    event = self._event(path, line)
                    if event is not None:
                        yield event
                if not chunk:
                    return
        finally:
            response.response.release()

    def _event(self, path: str, line: "bytes | watchlines.Oversized") -> dict | None:
        if isinstance(line, watchlines.Oversized):
            self.oversized += 1
            event = watchlines.skipped_event(line)
            if event is None:
                what = "an event whose metadata is not in its head (the watch position moves with the next event)"
            else:
                obj, skipped = event["object"], event["skipped"]
                what = "{} {} {}/{} at resourceVersion {}".format(skipped["type"], obj["kind"], *(
                    obj["metadata"].get(key, "-") for key in ("namespace", "name", "resourceVersion")))
            log.warning("watch %s: skipped %s: %d bytes, over kubernetes.max_object_bytes (%d)",
                        path, what, line.size, self.max_object_bytes)
            return event
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
            if not isinstance(obj, dict) or kind != "ERROR" and not isinstance(
                    (obj.get("metadata") or {}).get("resourceVersion"), str):
                raise TypeError("no object with a resourceVersion")  # every consumer moves by it
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.malformed += 1
            log.warning("watch %s: skipped a line that is not a watch event (%s): %r", path, exc, line[:200])
            return None
        if kind == "ERROR":
            raise errors.KubernetesRefused(int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", ""))
        return event

    async def pages(self, path: str, query: dict[str, Any] | None = None, limit: int = 500) -> AsyncIterator[dict]:
        """Every page of a list, ``limit`` objects each (``continue`` tokens); a token that expires
        while paging (etcd compacted past the list) raises ``KubernetesRefused`` with 410."""
        token = None
        while True:
            page = await self.request("GET", path, query={**(query or {}), "limit": limit, "continue": token})
            yield page
            token = page["metadata"].get("continue")
            if not token:
                return

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


CHUNK_BYTES = 256 * 1024
"""Most bytes taken off a watch stream at once: a few reads for a big object, little memory for
many small ones."""


METADATA_BYTES = 1024 * 1024
"""Head of an oversized event kept to read its metadata from, even under a lower limit: annotations
alone may be 256 KiB, labels and managedFields come on top."""
