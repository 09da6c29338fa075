"""Semantic transitions: what changed about an object that a person would act on.

Each kind has an observer, registered by decorator, that turns (what was known, the new object)
into the new summary to remember plus the transitions to emit. Summaries are small JSON documents,
not the objects: they are what the watch persists (so a restarted router compares against what it
knew) and what a re-list after 410 Gone is diffed against.

Every transition has an *identity* that does not depend on resourceVersion (uid + generation for a
rollout, uid + container + restart count for a crash): two routers watching the same object, or one
router seeing the object again after a re-list, derive the same event id, and JetStream keeps one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from handlers.kubernetes import workloads

Summary = dict[str, Any]


@dataclass(frozen=True)
class Transition:
    name: str
    """``rollout_completed``; the event type is ``io.k8s.<kind>.<name>``."""
    identity: str
    """What makes this transition unique for the object (besides its uid and name)."""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observer:
    summarize: Callable[[dict[str, Any], Summary | None], Summary]
    """Summary of the object; the previous one is given so that memory (last rollout) carries over."""
    transitions: Callable[[Summary | None, Summary, dict[str, Any]], list[Transition]]
    baseline: Callable[[Summary], Summary] = lambda summary: summary
    """Applied to summaries of objects found at the very first list: history is not replayed."""


OBSERVERS: dict[str, Observer] = {}


def observer(*kinds: str) -> Callable[[Observer], Observer]:
    def register(found: Observer) -> Observer:
        for kind in kinds:
            OBSERVERS[kind] = found
        return found
    return register


def fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# -- Deployments, StatefulSets, DaemonSets ----------------------------------------------------------------

def _workload_summary(obj: dict[str, Any], old: Summary | None) -> Summary:
    state = workloads.rollout(obj)
    return {"generation": obj["metadata"].get("generation", 0),
            "replicas": obj.get("spec", {}).get("replicas"),
            "images": workloads.template_images(obj),
            "template": fingerprint(obj.get("spec", {}).get("template", {})),
            "complete": state.complete, "failed": state.failed is not None,
            "rolled": (old or {}).get("rolled")}


def _workload_baseline(summary: Summary) -> Summary:
    # A rollout already complete when the router first looks is history, not news.
    return {**summary, "rolled": summary["template"] if summary["complete"] else None}


def _workload_transitions(old: Summary | None, new: Summary, obj: dict[str, Any]) -> list[Transition]:
    generation = str(new["generation"])
    state = workloads.rollout(obj)
    found = []
    if old is None or old["template"] != new["template"]:
        found.append(Transition("rollout_started", generation, {"template": new["template"]}))
    if old is not None and old["images"] != new["images"]:
        changes = [{"container": name, "from": old["images"].get(name), "to": image}
                   for name, image in new["images"].items() if old["images"].get(name) != image]
        found.append(Transition("image_changed", generation, {"changes": changes}))
    if old is not None and old["replicas"] != new["replicas"]:
        found.append(Transition("scaled", generation, {"from": old["replicas"], "to": new["replicas"]}))
    if new["complete"] and new["rolled"] != new["template"]:
        found.append(Transition("rollout_completed", generation, {
            "first": new["rolled"] is None, "replicas": state.desired}))
        new["rolled"] = new["template"]
    if new["failed"] and not (old or {}).get("failed"):
        # The images the failed template asks for: which digest failed, for the commit it was built from.
        found.append(Transition("rollout_failed", generation, {"reason": state.failed, "images": [
            workloads.image_entry(name, image) for name, image in new["images"].items()]}))
    return found


observer("Deployment", "StatefulSet", "DaemonSet")(
    Observer(_workload_summary, _workload_transitions, _workload_baseline))


# -- Pods ---------------------------------------------------------------------------------------------------

def _pod_summary(obj: dict[str, Any], old: Summary | None) -> Summary:
    statuses = {s["name"]: s.get("restartCount", 0) for s in (obj.get("status") or {}).get("containerStatuses") or []}
    problems = sorted(f"{c}:{t}:{statuses.get(c, 0)}" for c, t, _ in workloads.problems(obj))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (obj.get("status") or {}).get("conditions") or [])
    was_ready = (old or {}).get("ready", False)
    unready = (old or {}).get("unready", 0) + (1 if was_ready and not ready else 0)
    return {"problems": problems, "ready": ready, "unready": unready}


READINESS_FAILURES = 3
"""Ready -> not ready this many times makes a ``readiness_failed`` transition (repeated, not a blip)."""


def _pod_transitions(old: Summary | None, new: Summary, obj: dict[str, Any]) -> list[Transition]:
    owner = workloads.owner(obj)
    base = {"owner": {"kind": owner[0], "name": owner[1]} if owner else None}
    reasons = {(c, t): r for c, t, r in workloads.problems(obj)}
    found = []
    for problem in new["problems"]:
        if problem in (old or {}).get("problems", []):
            continue
        container, transition, restarts = problem.split(":")
        found.append(Transition(transition, f"{container}:{restarts}", {
            **base, "container": container, "restartCount": int(restarts),
            "reason": reasons.get((container, transition)), "images": [workloads.pod_image(obj, container)]}))
    if new["unready"] >= READINESS_FAILURES and (old or {}).get("unready", 0) < READINESS_FAILURES:
        found.append(Transition("readiness_failed", str(new["unready"]), {**base, "times": new["unready"]}))
    return found


observer("Pod")(Observer(_pod_summary, _pod_transitions))


# -- Jobs ---------------------------------------------------------------------------------------------------

def _job_summary(obj: dict[str, Any], old: Summary | None) -> Summary:
    ended = None
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            ended = condition
    return {"ended": ended and {"Complete": "succeeded", "Failed": "failed"}[ended["type"]],
            "reason": ended and ended.get("reason")}


def _job_transitions(old: Summary | None, new: Summary, obj: dict[str, Any]) -> list[Transition]:
    if new["ended"] and new["ended"] != (old or {}).get("ended"):
        status = obj.get("status") or {}
        return [Transition(new["ended"], "", {"reason": new["reason"], "succeeded": status.get("succeeded", 0),
                                              "failed": status.get("failed", 0)})]
    return []


observer("Job")(Observer(_job_summary, _job_transitions))


# -- any other kind -----------------------------------------------------------------------------------------

def dig(document: Any, path: str) -> Any:
    """``status.conditions[?type==Ready].status``: dotted keys, list indexes, ``[?key==value]`` selection."""
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[?") and part.endswith("]") and "==" in part:
            key, value = part[2:-1].split("==", 1)
            document = next((d for d in document or [] if isinstance(d, dict) and str(d.get(key)) == value), None)
        elif part.startswith("[") and part.endswith("]"):
            index = int(part[1:-1])
            document = document[index] if isinstance(document, list) and index < len(document) else None
        else:
            document = document.get(part) if isinstance(document, dict) else None
        if document is None:
            return None
    return document


def generic(conditions: list[Any]) -> Observer:
    """Observer of a kind without its own: ``changed`` per new generation, plus configured conditions."""

    def summarize(obj: dict[str, Any], old: Summary | None) -> Summary:
        metadata = obj["metadata"]
        return {"generation": metadata.get("generation") or metadata.get("resourceVersion"),
                "conditions": {c.name: dig(obj, c.path) == c.equals for c in conditions}}

    def transitions(old: Summary | None, new: Summary, obj: dict[str, Any]) -> list[Transition]:
        found = []
        if old is not None and old["generation"] != new["generation"]:
            found.append(Transition("changed", str(new["generation"])))
        for name, holds in new["conditions"].items():
            if holds and not (old or {}).get("conditions", {}).get(name):
                found.append(Transition(name, str(new["generation"]), {"condition": name}))
        return found

    return Observer(summarize, transitions)

