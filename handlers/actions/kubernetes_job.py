"""``kubernetesJob``: run a smoke test as a Kubernetes Job and report how it ended.

The Job comes from a template (inline in the rule, a file, or a ConfigMap key), gets the run's
identity (name from the run id, labels and annotations with run and event ids), the test image
pinned by digest when the rule asks for one, and bounded resources (checked at rule load). A
``digest`` that is given but does not render to one (empty, a tag, null) ends the run ``error``
before any Job exists: running the tag unpinned would test whatever it points to now. The run
then follows the Job with a watch until it is Complete or Failed, and reports its conditions, each
pod's exit codes and a bounded tail of their logs.

With ``eventFile: true`` the Job is a function (``handlers.kubernetes.eventfile``): the event is
mounted into its pods from a ConfigMap the Job owns, and the checks its containers write to their
termination message are merged into the outcome (they are read whether or not ``eventFile`` is
set: a Job that writes none reports as before).

A run whose task is cancelled (policy ``replace``, shutdown, ``policy.timeout``) deletes its Job
with background propagation, so a superseded test stops using the cluster: ``delete_job`` is that
path, public for the run-policy code.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, ClassVar, Mapping

import yaml
from pydantic import AfterValidator, Field, model_validator

from handlers.kubernetes import client as kube
from handlers.kubernetes import eventfile, jobs
from router import plugins
from router.plugins import actions, errors, references, templates

log = logging.getLogger(__name__)


class ConfigMapTemplate(actions.Params):
    name: str
    key: str = "job.yaml"
    namespace: str | None = None
    """Default: the Job's namespace."""


class KubernetesJob(actions.Params):
    cluster_only: ClassVar[Mapping[str, str]] = {"jobFile": "it reads files on the router's host"}

    namespace: str
    job: dict[str, Any] | None = None
    """Inline batch/v1 Job manifest (templated by the rule like every parameter)."""
    job_file: str | None = Field(None, alias="jobFile")
    """A YAML file with the Job manifest; ``{{ }}`` in it are rendered against the event."""
    job_config_map: ConfigMapTemplate | None = Field(None, alias="jobConfigMap")
    """A ConfigMap key holding the manifest, read at run time; ``{{ }}`` rendered likewise."""
    image: str | None = None
    """Replaces the image of ``container`` (default: the first container)."""
    container: str | None = None
    digest: Annotated[str | None, AfterValidator(references.digest_or_template)] = None
    """Pin the image to this digest (``repo[:tag]@sha256:<hex>``): a bare or ``sha256%3A`` digest, a
    purl or an image reference with one (``references.digest``). Absent: no pin; given but empty,
    a tag or null: the run ends ``error`` and no Job is created."""
    backoff_limit: int = Field(0, alias="backoffLimit", ge=0, le=100)
    active_deadline_seconds: int | None = Field(None, alias="activeDeadlineSeconds", ge=1)
    ttl_seconds_after_finished: int | None = Field(3600, alias="ttlSecondsAfterFinished", ge=0)
    allow_unbounded: bool = Field(False, alias="allowUnbounded")
    """Accept containers without resource requests and limits."""
    log_tail_lines: int = Field(50, alias="logTailLines", ge=0, le=1000)
    log_tail_bytes: int = Field(8192, alias="logTailBytes", ge=0, le=1024 * 1024)
    event_file: bool = Field(False, alias="eventFile")
    """Mount the triggering event (structured JSON) at ``/etc/trigger-router/event.json`` in every
    container, from a ConfigMap owned by the Job, and set ``TRIGGER_ROUTER_RUN_ID`` and
    ``TRIGGER_ROUTER_EVENT_ID``."""

    @model_validator(mode="after")
    def _one_template(self) -> "KubernetesJob":
        given = [n for n, v in (("job", self.job), ("jobFile", self.job_file),
                                ("jobConfigMap", self.job_config_map)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of job, jobFile, jobConfigMap is required (given: {given or 'none'})")
        if self.job is not None:
            jobs.check_template(self.job, self.allow_unbounded)
        elif self.job_file and "{{" not in self.job_file:
            jobs.check_template(_read_file(self.job_file), self.allow_unbounded)
        return self


def _read_file(path: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read jobFile {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"jobFile {path} is not valid YAML: {exc}") from exc


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


async def delete_job(namespace: str, name: str) -> None:
    """Delete a Job and (in the background) its pods; a Job already gone is fine."""
    client = await kube.shared()
    try:
        await client.request("DELETE", f"{jobs_path(namespace)}/{name}",
                             body={"kind": "DeleteOptions", "apiVersion": "v1",
                                   "propagationPolicy": "Background"}, timeout=10)
    except errors.KubernetesRefused as exc:
        if exc.status != 404:
            raise


async def _delete_if_ours(client: kube.Client, namespace: str, name: str, run_id: str) -> None:
    """Delete the Job ``name`` if it exists and was created by this run (its annotation says so)."""
    try:
        existing = await client.request("GET", f"{jobs_path(namespace)}/{name}")
    except errors.KubernetesRefused as exc:
        if exc.status == 404:
            return
        raise
    if (existing["metadata"].get("annotations") or {}).get(jobs.ANNOTATION_RUN) == run_id:
        await delete_job(namespace, name)


async def _template(params: KubernetesJob, context: actions.Context, client: kube.Client) -> dict[str, Any]:
    if params.job is not None:
        return params.job
    if params.job_file is not None:
        try:
            raw = _read_file(params.job_file)
        except ValueError as exc:
            raise errors.PermanentError(str(exc)) from exc
        where = f"jobFile {params.job_file}"
    else:
        ref = params.job_config_map
        namespace = ref.namespace or params.namespace
        config_map = await client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{ref.name}")
        text = (config_map.get("data") or {}).get(ref.key)
        if text is None:
            raise errors.PermanentError(f"ConfigMap {namespace}/{ref.name} has no key {ref.key!r}")
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise errors.PermanentError(f"ConfigMap {namespace}/{ref.name} key {ref.key}: not YAML: {exc}") from exc
        where = f"ConfigMap {namespace}/{ref.name} key {ref.key}"
    try:
        rendered = templates.Template(raw, where).render(context.event)
        jobs.check_template(rendered, params.allow_unbounded)
    except (errors.RuleError, ValueError) as exc:
        raise errors.PermanentError(f"{where}: {exc}") from exc
    return rendered


async def _create(client: kube.Client, manifest: dict[str, Any], run_id: str) -> dict[str, Any]:
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        return await client.request("POST", jobs_path(namespace), body=manifest)
    except errors.KubernetesRefused as exc:
        if exc.status != 409:
            raise
    existing = await client.request("GET", f"{jobs_path(namespace)}/{name}")
    if (existing["metadata"].get("annotations") or {}).get(jobs.ANNOTATION_RUN) != run_id:
        raise errors.PermanentError(f"Job {namespace}/{name} exists and belongs to another run")
    log.info("Job %s/%s already exists (run carried out again); following it", namespace, name)
    return existing


async def _create_event_file(client: kube.Client, job: dict[str, Any], text: str) -> None:
    """The event's ConfigMap, owned by ``job``; one already made for this Job (a redelivery) is fine."""
    manifest = eventfile.config_map(job, text, {jobs.LABEL_RUN: job["metadata"]["labels"][jobs.LABEL_RUN]})
    namespace, name = job["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        await client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=manifest)
        return
    except errors.KubernetesRefused as exc:
        if exc.status != 409:
            raise
    existing = await client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    owners = [ref.get("uid") for ref in existing["metadata"].get("ownerReferences") or []]
    if job["metadata"]["uid"] not in owners:
        # An earlier Job of this name (the same run, carried out after its Job was deleted) still
        # has its ConfigMap until the garbage collector takes it: try again shortly.
        raise errors.TemporaryError(f"ConfigMap {namespace}/{name} still belongs to an earlier Job "
                                    f"{job['metadata']['name']}")


def _finished(job: dict[str, Any]) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"]
    return None


async def _pods(client: kube.Client, job: dict[str, Any], params: KubernetesJob) -> list[dict[str, Any]]:
    namespace = job["metadata"]["namespace"]
    listing = await client.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={
        "labelSelector": f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"})
    pods = []
    for pod in sorted(listing["items"], key=lambda p: p["metadata"]["creationTimestamp"]):
        containers = []
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or \
                (status.get("lastState") or {}).get("terminated") or {}
            containers.append({"name": status["name"], "exitCode": terminated.get("exitCode"),
                               "reason": terminated.get("reason"), "imageID": status.get("imageID"),
                               **eventfile.report(terminated.get("message"))})
            if params.log_tail_lines:
                containers[-1]["logs"] = await _logs(client, namespace, pod["metadata"]["name"], status["name"], params)
        pods.append({"name": pod["metadata"]["name"], "phase": (pod.get("status") or {}).get("phase"),
                     "containers": containers})
    return pods


async def _logs(client: kube.Client, namespace: str, pod: str, container: str, params: KubernetesJob) -> str:
    try:
        text = await client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", timeout=5, query={
            "container": container, "tailLines": params.log_tail_lines, "limitBytes": params.log_tail_bytes or None})
    except errors.KubernetesError as exc:
        # kwok's fake kubelets (and nodes that are gone) have no logs to give: say so, not fail.
        return f"(logs unavailable: {exc.message or exc.reason or exc.status})"[:500]
    return text if isinstance(text, str) else str(text)


def _digest(params: KubernetesJob) -> str | None:
    """The digest to pin to; None only when the rule asked for none (the field is absent)."""
    if "digest" not in params.model_fields_set:
        return None
    try:
        return references.digest(params.digest)
    except references.NotADigest as exc:
        raise errors.PermanentError(f"digest: {exc}; no Job created") from exc


@plugins.action("kubernetesJob", params=KubernetesJob)
async def run_job(params: KubernetesJob, context: actions.Context) -> actions.Result:
    digest = _digest(params)
    client = await kube.shared()
    template = await _template(params, context, client)
    try:
        manifest = jobs.build(template, namespace=params.namespace, run_id=context.run_id, rule=context.rule,
                              event_id=context.event.id, event_source=context.event.source,
                              event_type=context.event.type, image=params.image, container=params.container,
                              digest=digest, backoff_limit=params.backoff_limit,
                              active_deadline_seconds=params.active_deadline_seconds,
                              ttl_seconds_after_finished=params.ttl_seconds_after_finished,
                              traceparent=context.traceparent)
    except ValueError as exc:
        raise errors.PermanentError(str(exc)) from exc
    name = manifest["metadata"]["name"]
    event_file = None
    if params.event_file:
        try:
            event_file = eventfile.document(context.event)
            eventfile.mount(manifest, run_id=context.run_id, event_id=context.event.id)
        except ValueError as exc:
            raise errors.PermanentError(f"{exc}; no Job created") from exc
    try:
        created = await _create(client, manifest, context.run_id)
    except asyncio.CancelledError:
        # Cancelled while the POST was in flight: the Job may exist though no answer came back.
        await asyncio.shield(_delete_if_ours(client, params.namespace, name, context.run_id))
        raise
    if event_file is not None:
        try:
            await _create_event_file(client, created, event_file)
        except BaseException:
            # Without its ConfigMap the pod would wait in ContainerCreating until someone looks.
            await asyncio.shield(delete_job(params.namespace, name))
            raise
    try:
        job = await client.wait_for(jobs_path(params.namespace), name, _finished, max(context.timeout - 2, 1))
    except asyncio.TimeoutError:
        await delete_job(params.namespace, name)
        return actions.Result("error", f"Job {params.namespace}/{name} did not finish within {context.timeout:g}s; "
                              "deleted", [_check(created, [], False)], severity="high")
    except asyncio.CancelledError:
        await asyncio.shield(delete_job(params.namespace, name))
        raise
    pods = await _pods(client, job, params)
    reported, said = eventfile.merged(pods)
    ended = _finished(job)
    check = _check(job, pods, ended == "Complete")
    if ended == "Complete":
        return actions.Result("success", f"Job {params.namespace}/{name} complete" + (f": {said}" if said else ""),
                              [check, *reported])
    condition = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    exits = ", ".join(f"{p['name']}/{c['name']}={c['exitCode']}" for p in pods for c in p["containers"]
                      if c["exitCode"] is not None)
    reason = f"Job {params.namespace}/{name} failed: {condition.get('reason')}: {condition.get('message', '')}"
    reason += (f" (exit codes {exits})" if exits else "") + (f": {said}" if said else "")
    return actions.Result("failure", reason, [check, *reported], severity="high")


def _check(job: dict[str, Any], pods: list[dict[str, Any]], passed: bool) -> dict[str, Any]:
    status = job.get("status") or {}
    return {"name": f"job {job['metadata']['namespace']}/{job['metadata']['name']}", "passed": passed,
            "job": job["metadata"]["name"], "namespace": job["metadata"]["namespace"],
            "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                           for c in status.get("conditions") or []],
            "succeeded": status.get("succeeded", 0), "failed": status.get("failed", 0), "pods": pods}
