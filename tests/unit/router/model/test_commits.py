"""Which commit a forge event is about, read from the real webhook payloads in ../shared/fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.model import commits, event_types, events

FIXTURES = Path(__file__).resolve().parents[4].parent / "shared" / "fixtures"


def github(name: str, file: str, action: str | None = None, change=None) -> events.CloudEvent:
    payload = json.loads((FIXTURES / "github" / name / file).read_text())
    if change:
        change(payload)
    return events.make({"id": "1", "source": "https://github.com/x", "type": event_types.github(name, action)},
                       payload)


def gitlab(file: str, change=None) -> events.CloudEvent:
    payload = json.loads((FIXTURES / "gitlab" / file).read_text())
    if change:
        change(payload)
    return events.make({"id": "1", "source": "https://gitlab.example", "type": event_types.gitlab(payload["object_kind"])},
                       payload)


def expected(path: str, *keys: str) -> str:
    document = json.loads((FIXTURES / path).read_text())
    for key in keys:
        document = document[key]
    return document


@pytest.mark.parametrize("event,sha,found", [
    (github("push", "with-new-branch.payload.json"), expected("github/push/with-new-branch.payload.json", "after"),
     "data.after"),
    (github("workflow_run", "completed.payload.json", "completed"),
     expected("github/workflow_run/completed.payload.json", "workflow_run", "head_sha"), "data.workflow_run.head_sha"),
    (github("workflow_job", "completed.success.with-organization.payload.json", "completed"),
     expected("github/workflow_job/completed.success.with-organization.payload.json", "workflow_job", "head_sha"),
     "data.workflow_job.head_sha"),
    (github("check_suite", "completed.payload.json", "completed"),
     expected("github/check_suite/completed.payload.json", "check_suite", "head_sha"), "data.check_suite.head_sha"),
    (github("deployment", "payload.json", "created"),
     expected("github/deployment/payload.json", "deployment", "sha"), "data.deployment.sha"),
    (github("deployment_status", "payload.json", "created"),
     expected("github/deployment_status/payload.json", "deployment", "sha"), "data.deployment.sha"),
    (github("status", "payload.json"), expected("github/status/payload.json", "sha"), "data.sha"),
    (gitlab("push.json"), expected("gitlab/push.json", "checkout_sha"), "data.checkout_sha"),
    (gitlab("pipeline.json"), expected("gitlab/pipeline.json", "object_attributes", "sha"), "data.object_attributes.sha"),
    (gitlab("deployment.json"), "279484c09fbe69ededfced8c1bb6e6d24616b468", "data.commit_url"),
], ids=["gh-push", "gh-workflow_run", "gh-workflow_job", "gh-check_suite", "gh-deployment", "gh-deployment_status",
        "gh-status", "gl-push", "gl-pipeline", "gl-deployment"])
def test_the_commit_of_each_forge_event(event, sha, found):
    commit, why = commits.of(event)
    assert commit is not None, why
    assert (commit.sha, commit.found) == (sha, f"{found} of {event.type}")
    data = event.json()
    repository = data["repository"]["full_name"] if commit.provider == "github" else data["project"]["path_with_namespace"]
    assert commit.repository == repository and commit.provider in event.type


@pytest.mark.parametrize("event,why", [
    (github("push", "payload.json"), "000…0"),  # the fixture is a branch deletion
    (github("release", "published.payload.json", "published"), "github release events name no commit"),
    (github("ping", "payload.json"), "github ping events name no commit"),
    (github("push", "payload.json", change=lambda p: p.pop("repository")), "has no repository.full_name"),
    (github("push", "payload.json", change=lambda p: p.update(after="main")), "no full commit sha"),
    (gitlab("deployment.json", change=lambda p: p.update(commit_url="http://x/-/tree/main")), "no commit_url"),
    (events.make({"id": "1", "source": "/k8s", "type": "io.k8s.deployment.rollout_completed"}, {}),
     "org.opencontainers.image.revision"),
    (events.make({"id": "1", "source": "/x", "type": "com.github.push"}, None), "has no JSON data"),
])
def test_no_commit_says_why(event, why):
    commit, reason = commits.of(event)
    assert commit is None and why in reason, reason


# -- from an image's org.opencontainers.image.source -------------------------------------------------------

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
GITLABS = ("https://gitlab.com", "https://code.example.com/gitlab", "127.0.0.1:8929")


@pytest.mark.parametrize("source, provider, repository, url", [
    ("https://github.com/acme/web", "github", "acme/web", "https://github.com/acme/web"),
    ("https://github.com/acme/web.git", "github", "acme/web", "https://github.com/acme/web"),
    ("https://github.com/acme/web/tree/main", "github", "acme/web", "https://github.com/acme/web"),
    ("git@github.com:acme/web.git", "github", "acme/web", "https://github.com/acme/web"),
    ("https://gitlab.com/group/sub/app", "gitlab", "group/sub/app", "https://gitlab.com/group/sub/app"),
    ("https://gitlab.com/group/app.git", "gitlab", "group/app", "https://gitlab.com/group/app"),
    ("https://gitlab.com/group/app/-/tree/main", "gitlab", "group/app", "https://gitlab.com/group/app"),
    ("https://code.example.com/gitlab/team/app", "gitlab", "team/app",
     "https://code.example.com/gitlab/team/app"),
    ("http://127.0.0.1:8929/team/app", "gitlab", "team/app", "https://127.0.0.1:8929/team/app"),
])
def test_a_source_url_names_the_repository(source, provider, repository, url):
    commit, why = commits.from_source(source, SHA, "label", GITLABS)
    assert (commit.provider, commit.repository, commit.sha, commit.url, why) == (provider, repository, SHA, url, "found")


@pytest.mark.parametrize("source, says", [
    ("https://git.example.org/team/app", "is on git.example.org, which is neither github.com nor a configured GitLab "
                                         "(set reporters.gitlab.url, or add the host to reporters.gitlab.hosts)"),
    ("https://code.example.com/other/team/app", "is on code.example.com, which is neither"),
    ("https://github.com/acme", "names no GitHub repository"),
    ("https://gitlab.com/app", "names no GitLab project"),
    ("not a url", "is not a repository URL"),
])
def test_a_source_url_that_names_no_known_forge_says_what_to_configure(source, says):
    commit, why = commits.from_source(source, SHA, "label", GITLABS)
    assert commit is None and says in why and repr(source) in why


@pytest.mark.parametrize("value, full", [(SHA, True), (SHA[:12], False), (SHA.upper(), False), ("0" * 40, False),
                                         ("a" * 64, True), ("v1.2.3", False), (None, False)])
def test_full_sha(value, full):
    assert commits.is_full_sha(value) is full
