"""``manifestCheck``: is a manifest fit to apply, and does what runs still match it?

A gate before a release and a drift check after one, with the cluster as the judge. For each
object of the manifests (inline, a file, a ConfigMap key or an HTTP(S) URL such as a raw Git file;
``{{ }}`` rendered against the event):

1. **dry-run**: a server-side apply with ``dryRun=All`` (``manifests.dry_run``): schema, defaulting
   and admission, reported in the apiserver's words;
2. **policies**: CEL expressions over ``object`` (the object as it would be stored, defaults
   included; the manifest itself when the dry run refused it) and ``oldObject`` (the live one or
   null), shaped like a ValidatingAdmissionPolicy's validations: ``{name, expression, message}``,
   true passes;
3. **diff**: when the object exists, what applying would change (``manifests.diff``), ignoring
   server-managed fields; a Secret's values are never printed. It fails the check only with
   ``failOnDiff`` (the drift check after a deploy), else it is reported.

``mode: report`` never fails the run: everything is reported, nothing gates.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

import aiohttp
import yaml
from pydantic import Field, model_validator

from handlers.kubernetes import client as kube
from handlers.kubernetes import manifests
from router import plugins
from router.plugins import actions, celexpr, errors, templates


class ConfigMapManifests(actions.Params):
    name: str
    namespace: str
    key: str = "manifests.yaml"


class UrlManifests(actions.Params):
    url: str = Field(pattern=r"^https?://")
    auth_file: str | None = Field(None, alias="authFile")
    """A file with the credential, read at each run (a mounted Secret): sent as ``<header>: <scheme> <credential>``."""
    header: str = "Authorization"
    scheme: str = "Bearer"
    """Empty for headers that take the bare credential (GitLab's ``PRIVATE-TOKEN``)."""


class Policy(actions.Params):
    name: str
    expression: str
    """CEL over ``object`` and ``oldObject``; true passes (``object.spec.replicas >= 2``)."""
    message: str = ""
    """Reported when the expression is false (default: the expression)."""
    kinds: list[str] = []
    """Only objects of these kinds; empty: every object."""


class ManifestCheck(actions.Params):
    cluster_only: ClassVar[Mapping[str, str]] = {"manifestFile": "it reads files on the router's host",
                                                 "manifestUrl": "it reads credential files on the router's host"}

    manifests: list[dict[str, Any]] | None = None
    """Inline manifests (templated by the rule like every parameter)."""
    manifest_file: str | None = Field(None, alias="manifestFile")
    manifest_config_map: ConfigMapManifests | None = Field(None, alias="manifestConfigMap")
    manifest_url: UrlManifests | None = Field(None, alias="manifestUrl")
    namespace: str | None = None
    """Namespace of namespaced objects whose manifest names none (default ``default``)."""
    policies: list[Policy] = []
    mode: Literal["enforce", "report"] = "enforce"
    fail_on_diff: bool = Field(False, alias="failOnDiff")
    """A difference from the live object fails the check (drift after a deploy), instead of being reported."""
    field_manager: str = Field("trigger-router", alias="fieldManager")
    """The manager of the dry-run apply; the deployer's (``argocd-controller``) makes the diff include
    the removals its next apply would make."""

    @model_validator(mode="after")
    def _one_source(self) -> "ManifestCheck":
        given = [n for n, v in (("manifests", self.manifests), ("manifestFile", self.manifest_file),
                                ("manifestConfigMap", self.manifest_config_map),
                                ("manifestUrl", self.manifest_url)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of manifests, manifestFile, manifestConfigMap, manifestUrl is required "
                             f"(given: {given or 'none'})")
        for index, policy in enumerate(self.policies):
            try:
                _program(policy.expression, f"policies[{index}].expression")
            except errors.RuleError as exc:
                raise ValueError(str(exc)) from exc
        return self


@functools.lru_cache(maxsize=256)
def _program(expression: str, path: str) -> Any:
    return celexpr.compile(expression, path)


async def _fetch(source: UrlManifests) -> str:
    headers = {}
    if source.auth_file:
        try:
            credential = Path(source.auth_file).read_text().strip()
        except OSError as exc:
            raise errors.PermanentError(f"manifestUrl.authFile {source.auth_file}: {exc.strerror}") from exc
        headers[source.header] = f"{source.scheme} {credential}".strip()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.get(source.url, headers=headers) as response:
                text = await response.text()
                if response.status >= 500 or response.status == 429:
                    raise errors.TemporaryError(f"{source.url}: HTTP {response.status}")
                if response.status >= 300:
                    raise errors.PermanentError(f"{source.url}: HTTP {response.status}")
                return text
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise errors.TemporaryError(f"{source.url}: {exc.__class__.__name__} {exc}") from exc


async def load(params: ManifestCheck, context: actions.Context, client: kube.Client) -> list[dict[str, Any]]:
    """The manifests to check, rendered against the event."""
    if params.manifests is not None:
        return manifests.flatten(params.manifests, "manifests")
    if params.manifest_file is not None:
        where = f"manifestFile {params.manifest_file}"
        try:
            text = Path(params.manifest_file).read_text()
        except OSError as exc:
            raise errors.PermanentError(f"{where}: {exc.strerror}") from exc
    elif params.manifest_config_map is not None:
        ref = params.manifest_config_map
        where = f"ConfigMap {ref.namespace}/{ref.name} key {ref.key}"
        config_map = await client.request("GET", f"/api/v1/namespaces/{ref.namespace}/configmaps/{ref.name}")
        text = (config_map.get("data") or {}).get(ref.key)
        if text is None:
            raise errors.PermanentError(f"ConfigMap {ref.namespace}/{ref.name} has no key {ref.key!r}")
    else:
        where = params.manifest_url.url
        text = await _fetch(params.manifest_url)
    try:
        rendered = templates.Template(list(yaml.safe_load_all(text)), where)
        return manifests.flatten([d for d in rendered.render(context.event) if d is not None], where)
    except yaml.YAMLError as exc:
        raise errors.PermanentError(f"{where}: not YAML: {exc}") from exc
    except (errors.RuleError, ValueError) as exc:
        raise errors.PermanentError(f"{where}: {exc}") from exc


def _policy(policy: Policy, index: int, target: str, obj: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    check: dict[str, Any] = {"name": f"{target}: policy {policy.name}", "object": target, "policy": policy.name}
    try:
        value = celexpr.evaluate_over(_program(policy.expression, f"policies[{index}].expression"),
                                      {"object": obj, "oldObject": live})
    except ValueError as exc:
        return {**check, "passed": False, "error": f"{policy.expression}: {exc}"}
    if not isinstance(value, bool):
        # The type, never the value: the object may be a Secret.
        return {**check, "passed": False, "error": f"{policy.expression}: returned {type(value).__name__}, not a bool"}
    return {**check, "passed": value, **({} if value else {"message": policy.message or policy.expression})}


async def check_object(params: ManifestCheck, client: kube.Client, obj: dict[str, Any]) -> list[dict[str, Any]]:
    target = manifests.describe({**obj, "metadata": {"namespace": params.namespace, **(obj.get("metadata") or {})}})
    checks: list[dict[str, Any]] = []
    applied = None
    try:
        applied = await manifests.dry_run(client, obj, params.namespace, params.field_manager)
        checks.append({"name": f"{target}: dry-run", "object": target, "passed": True})
    except errors.KubernetesRefused as exc:
        checks.append({"name": f"{target}: dry-run", "object": target, "passed": False, "status": exc.status,
                       "error": exc.message})
    subject = applied.result if applied else obj
    for index, policy in enumerate(params.policies):
        if not policy.kinds or obj.get("kind") in policy.kinds:
            checks.append(_policy(policy, index, target, subject, applied.live if applied else None))
    if applied is not None and applied.live is not None:
        changes = manifests.diff(applied)
        checks.append({"name": f"{target}: diff", "object": target, "changes": changes,
                       "passed": not (changes and params.fail_on_diff),
                       **({"error": f"{len(changes)} field(s) differ from the live object: "
                                    + ", ".join(c["path"] for c in changes)} if changes and params.fail_on_diff else {})})
    return checks


def _failure(check: dict[str, Any]) -> str:
    return f"{check['name']}: {check.get('message') or check.get('error')}"


@plugins.action("manifestCheck", params=ManifestCheck)
async def manifest_check(params: ManifestCheck, context: actions.Context) -> actions.Result:
    client = await kube.shared()
    objects = await load(params, context, client)
    checks: list[dict[str, Any]] = []
    for obj in objects:
        checks += await check_object(params, client, obj)
    failed = [check for check in checks if not check["passed"]]
    differing = sum(len(check["changes"]) for check in checks if "changes" in check)
    summary = (f"{len(objects)} object(s), {len(checks) - len(failed)}/{len(checks)} checks passed"
               + (f", {differing} field(s) differ from the live objects" if differing else ""))
    if not failed:
        return actions.Result("success", summary, checks)
    first = _failure(failed[0]) + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")
    if params.mode == "report":
        return actions.Result("success", f"report: {summary}; {first}", checks)
    return actions.Result("failure", f"{summary}; {first}", checks, severity="high")
