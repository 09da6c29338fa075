"""Which image an event names (for its revision label), table-driven over the events the sources emit."""

from __future__ import annotations

import pytest

from handlers.sources.registries import revisions
from router.config import settings as settings_mod
from router.plugins import artifacts, events

DIGEST = "sha256:" + "cd" * 32


def event(type_: str, data: dict, **attributes: str) -> events.CloudEvent:
    return events.make({"id": "1", "source": attributes.pop("source", "k8s://c/namespaces/a/deployments/web"),
                        "type": type_, **attributes}, data)


def entry(digest: str | None = DIGEST) -> dict:
    return {"container": "app", "image": f"127.0.0.1:5000/web@{DIGEST}", "repository": "127.0.0.1:5000/web",
            "digest": digest}


PUSHED = artifacts.published(
    events.make({"id": "p", "source": "https://127.0.0.1:5000/web", "type": "dev.cncf.distribution.push"}, {}),
    artifacts.Push("distribution", "127.0.0.1:5000/web", DIGEST, "v1"))


@pytest.mark.parametrize("given, image", [
    (PUSHED, ("127.0.0.1:5000/web", DIGEST)),
    (event("io.k8s.apps.v1.deployment.rollout_completed", {"images": [entry(None), entry()]}),
     ("127.0.0.1:5000/web", DIGEST)),
    (event("io.k8s.deployment.rollout_failed", {"reason": "ProgressDeadlineExceeded", "images": [entry()]}),
     ("127.0.0.1:5000/web", DIGEST)),
    (event("io.k8s.pod.crashloop", {"container": "app", "images": [entry()]}), ("127.0.0.1:5000/web", DIGEST)),
    (event("dev.cdevents.service.deployed.0.3.0", {"customData": {"images": [entry()]}}),
     ("127.0.0.1:5000/web", DIGEST)),
    (event("com.example.deployed", {"image": f"registry.example/team/web:1@{DIGEST}"}),
     ("registry.example/team/web", DIGEST)),
    (event("dev.cncf.distribution.push", {}, source="https://127.0.0.1:5000/web", subject=DIGEST),
     ("127.0.0.1:5000/web", DIGEST)),
    (event("io.k8s.pod.crashloop", {"images": [entry(None)]}), ("127.0.0.1:5000/web", DIGEST)),  # the pinned image
    (event("io.k8s.pod.crashloop", {"images": [{**entry(None), "image": "127.0.0.1:5000/web:1"}]}), None),
    (event("dev.cncf.distribution.push", {}, source="https://127.0.0.1:5000/web", subject="v1"), None),
    (event("com.github.push", {"after": "a" * 40}, source="https://github.com/acme/web"), None),
    (event("com.example.deployed", {"image": "registry.example/web:1"}), None),
])
def test_which_image_an_event_names(given, image):
    assert revisions.image_of(given) == image


def test_the_found_text_names_label_digest_and_repository():
    revisions.configure(settings_mod.load(env={}))
    commit, why = revisions.commit_from({"labels": {revisions.REVISION: "a" * 40,
                                                    revisions.SOURCE: "https://gitlab.com/g/app"}},
                                        "127.0.0.1:5000/web", DIGEST)
    assert why == "found"
    assert commit.found == "label org.opencontainers.image.revision of sha256:cdcdcdcdcdcd… in 127.0.0.1:5000/web"
