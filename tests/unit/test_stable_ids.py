"""Golden values of every identifier that must never change between releases.

Run ids, ``Nats-Msg-Id`` headers, CDEvents ids and chain ids, dead-letter ids, policy keys and
Kubernetes event ids are derived from their inputs by hashing. JetStream's duplicate window and
the run-state bucket recognise a redelivered event, a retried publish or a second replica's copy
*only* because the id comes out the same. An upgrade that changed one derivation would run every
in-flight event again and duplicate every outcome, and every other test would still pass, since
they compare ids computed by the same code. So the values here are literals, computed once with
the release before the re-layout (commit 7d0f616) and checked against it; a change to any of them
is a breaking change that needs a migration, not an updated literal.
"""

from __future__ import annotations

import inspect
import uuid
from pathlib import Path

import pytest

from handlers.actions import replies
from handlers.sources.kubernetes import emit, state
from handlers.sources.registries import digests
from handlers.sources.kubernetes.transitions import Transition
from router.bus import connection
from router.config import settings as settings_mod
from router.engine import deadletters, runs
from router.engine.executor import outcome_subject
from router.engine.policy import concurrency, correlation, store
from router.model import cdevents, events, outcomes
from router.plugins import Delivery, Rejected, catalog

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "fixtures"
REGISTRY_FIXTURES = ROOT / "tests" / "fixtures" / "registry"

PUSH = events.make({"id": "d1", "source": "https://github.com/acme/web", "type": "com.github.push"},
                   {"ref": "refs/heads/main"})
RUN = "c9718e119fb5903d729a2edeab5864e9"


def test_run_id_of_rule_and_event():
    assert runs.run_id("smoke", PUSH) == RUN


def test_nats_msg_id_of_an_event():
    assert connection.msg_id(PUSH) == "ce-9820bcd5cb4c6bc543313105fee049d9a3716f78"


def test_cdevents_uuid5_namespace():
    assert cdevents._NAMESPACE == uuid.UUID("6f1c3f0e-4b7a-5d8e-9c2a-7e1b2d3c4f5a")
    assert cdevents.deterministic_id("a", "b") == "38026bf7-303e-5066-a991-dad6d8ae9049"


def test_outcome_ids_and_chain_of_a_run():
    finished = outcomes.build("finished", run_id=RUN, rule="smoke", action="exec", environment="e",
                              trigger=PUSH, result=outcomes.Result("success"))
    queued = outcomes.build("queued", run_id=RUN, rule="smoke", action="exec", environment="e", trigger=PUSH)
    assert finished.id == "62e57130-5311-5baf-a512-28caa23d9a09"
    assert queued.json()["context"]["chainId"] == "fba9c3a1-799d-59af-b066-38d4b9e7649b"
    assert outcome_subject("tr.outcomes", "finished", "smoke") == "tr.outcomes.finished.smoke"


def test_dead_letter_ids():
    assert deadletters.retry_id(RUN, 1) == "0bf385d00fc827791515aa30672728ca"
    assert deadletters.run_msg_id(RUN) == "dead-run-c9718e119fb5903d729a2edeab5864e9"
    assert deadletters.event_msg_id("TR_EVENTS", 42) == "dead-TR_EVENTS-42"
    rejected = deadletters.rejected_event("distribution", "del-1", Rejected("bad", {"x": 1}, "events[0]", 0))
    assert rejected.id == "2490ec34-1714-555d-9949-8b51afc2eb2f"


def test_policy_bucket_keys_and_join_ids():
    assert store.slot("slot", "smoke", "main") == "slot.smoke.0d6e4079e36703ebd37c00722f5891d2"
    assert concurrency.cancel_key("r1") == "cancel.r1"
    # A join's id (and, from it, the id of the run it fires) hashes these parts.
    assert correlation._hash("verify", "key-1", "src", "id-1", "1700000000.0") == "dfee5ccae564d548a66b7a033ec5fef8"


def test_default_names_on_the_bus():
    """Renaming a default would start new, empty streams, buckets and consumers on upgrade."""
    defaults = settings_mod.Settings()
    assert (defaults.bus.events_stream, defaults.bus.events_subject, defaults.bus.outcomes_stream,
            defaults.bus.outcomes_subject, defaults.bus.deadletter_stream, defaults.bus.deadletter_subject) == (
        "TR_EVENTS", "tr.events", "TR_OUTCOMES", "tr.outcomes", "TR_DEADLETTER", "tr.deadletter")
    assert (defaults.router.durable, defaults.router.runs_stream, defaults.router.runs_subject,
            defaults.router.state_bucket, defaults.router.policy_bucket, defaults.router.control_subject) == (
        "trigger-router", "TR_RUNS", "tr.runs", "TR_RUN_STATE", "TR_POLICY", "tr.control")
    assert settings_mod.load(None, env={}).kubernetes.state_bucket == "TR_KUBE_WATCH"


def test_kubernetes_event_id_and_watch_key():
    assert emit.event_id("prod", "0b5c-uid", Transition("rollout_completed", "rev-3")) == \
        "325a7528-d263-5046-9ce9-c4fbad16ef6f"
    assert state.key("prod", "apps", "v1", "Deployment", "shop", "team=web") == \
        "prod.apps.v1.Deployment.shop.4263e1e0eba9"


def test_derived_id_of_a_function_reply():
    # computed when publishReply was added: a reply without an id is the same event for every
    # execution of the run, so JetStream drops the second publish
    assert replies.derived_id(RUN) == "dbada252-4ae0-5dae-a444-835eab273295"


DELIVERY = "11111111-2222-3333-4444-555555555555"
ARTIFACT = "dev.cdevents.artifact.published.0.3.0"
FINISHED = "dev.cdevents.pipelinerun.finished.0.3.0"

# (source, fixture, headers, [(type, id), ...]) with ids from the release before the re-layout.
SOURCE_IDS = [
    ("harbor", REGISTRY_FIXTURES / "harbor/push_artifact.json", {},
     [("io.goharbor.push", "a46b8029-a8b5-5b67-a39b-2155806f2bd3"), (ARTIFACT, "a616dd6a-afb7-5af8-accc-3f796bfcd82f")]),
    ("distribution", REGISTRY_FIXTURES / "distribution/mixed.json", {},
     [("dev.cncf.distribution.push", "a582a0f3-e620-43e6-8e98-ff850fc9d984"),
      (ARTIFACT, "53118ee7-54e1-58a2-9374-74f6bc7edb43"), ("rejected", 3)]),
    ("ecr", REGISTRY_FIXTURES / "ecr/image-push.json", {},
     [("com.amazonaws.ecr.push", "13cde686-328b-6117-af20-0e5566167482"), (ARTIFACT, "b7bbcc75-f8c5-5a07-adee-68b9ee2ddd60")]),
    ("acr", REGISTRY_FIXTURES / "acr/push.json", {},
     [("com.azure.containerregistry.push", "cb8c3971-9adc-488b-bdd8-43cbb4974ff5"),
      (ARTIFACT, "d235436c-240f-5adc-9cb7-24942886b370")]),
    ("github", SHARED / "github/workflow_run/completed.payload.json",
     {"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": DELIVERY},
     [("com.github.workflow_run.completed", DELIVERY), (FINISHED, "e198fa53-97be-5859-965e-e8a8ee8decd0")]),
    ("github", SHARED / "github/registry_package/published.docker.payload.json",
     {"X-GitHub-Event": "registry_package", "X-GitHub-Delivery": DELIVERY},
     [("com.github.registry_package.published", DELIVERY), (ARTIFACT, "71e4fb0d-5cf4-5c6f-9cc3-8dd85826bd2f")]),
    ("gitlab", SHARED / "gitlab/pipeline.json",
     {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Event-UUID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"},
     [("com.gitlab.pipeline", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"), (FINISHED, "e348aa62-bf83-5661-adae-989ec4f0b6f7")]),
]


RESOLVED = "sha256:" + "cd" * 32
# Docker Hub and Quay name a tag; the id includes the digest the registry resolves it to.
RESOLVING_SOURCE_IDS = [
    ("dockerhub", REGISTRY_FIXTURES / "dockerhub/push.json",
     [("com.docker.hub.push", "e9c037c8-78d9-595a-aa32-18f00e451cc6"), (ARTIFACT, "a37b5672-951f-5935-b6ab-4aa5835b0b9b")]),
    ("quay", REGISTRY_FIXTURES / "quay/push.json",
     [("io.quay.push", "45ef6923-ff52-5897-bad1-b8e7ab9dddb8"), (ARTIFACT, "bcfd381d-cc0d-5365-82b6-0b5441ab8c3e")]),
    ("gar", REGISTRY_FIXTURES / "gar/pubsub-push.json",
     [("com.google.artifactregistry.push", "2070443601311540"), (ARTIFACT, "167fddd4-8255-5dae-82ec-caedc773b705")]),
]


@pytest.mark.parametrize("name,fixture,expected", RESOLVING_SOURCE_IDS, ids=[c[0] for c in RESOLVING_SOURCE_IDS])
async def test_event_ids_of_sources_that_resolve_tags(name, fixture, expected, monkeypatch):
    async def resolved(resolver, path, tag):  # resolution itself is tested against real registries
        return RESOLVED

    monkeypatch.setattr(digests.Resolver, "digest", resolved)
    source = catalog.load().webhook_sources[name](settings_mod.load(None, env={}))
    normalized = await source.normalize(Delivery({}, fixture.read_bytes()))
    assert [(item.type, item.id) for item in normalized] == expected


@pytest.mark.parametrize("name,fixture,headers,expected", SOURCE_IDS,
                         ids=[f"{case[0]}:{case[1].name}" for case in SOURCE_IDS])
async def test_event_ids_of_sources(name, fixture, headers, expected):
    settings = settings_mod.load(None, env={})
    source = catalog.load().webhook_sources[name](settings)
    normalized = source.normalize(Delivery(headers, fixture.read_bytes()))
    if inspect.isawaitable(normalized):
        normalized = await normalized
    got = [("rejected", item.index) if isinstance(item, Rejected) else (item.type, item.id) for item in normalized]
    assert got == expected
