"""Which commit an event is about: where a verdict belongs when it is reported back (issue 16).

A trigger from a forge names its commit in its own place: a GitHub push's ``after``, a
``workflow_run``'s ``head_sha``, a deployment's ``sha``, a GitLab push's ``checkout_sha``, a
pipeline's ``object_attributes.sha``, a GitLab deployment only inside its ``commit_url``. This
module is the one table of those places; :func:`of` answers a :class:`Commit` with where it was
found, or ``None`` with why not, so ``rules test`` can say both. Events that carry no commit
(a registry push, a Kubernetes rollout) find theirs through the image's
``org.opencontainers.image.revision`` label instead: the registry plug-in reads the label, and
:func:`from_source` here turns its ``org.opencontainers.image.source`` URL into a repository.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable

from router.model import event_types
from router.model.events import CloudEvent

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1, or SHA-256 object names
_NULL_SHA = "0" * 40
_COMMIT_URL = re.compile(r"/-/commit/([0-9a-f]{40}(?:[0-9a-f]{24})?)(?:[/?#]|$)")


@dataclass(frozen=True)
class Commit:
    provider: str
    """``github`` or ``gitlab``."""
    repository: str
    """``owner/name`` (GitHub) or the project's ``path_with_namespace`` (GitLab)."""
    sha: str
    found: str
    """Where: ``data.after of com.github.push``."""
    url: str | None = None
    """The repository's web address, as the sender gave it."""

    def describe(self) -> str:
        return f"{self.provider} {self.repository} @ {self.sha[:12]} (from {self.found})"


# (provider, event name -> sha paths tried in order); repository and url paths per provider.
_GITHUB_SHA = {
    "push": ["after"],
    "workflow_run": ["workflow_run.head_sha"],
    "workflow_job": ["workflow_job.head_sha"],
    "check_suite": ["check_suite.head_sha"],
    "check_run": ["check_run.head_sha"],
    "deployment": ["deployment.sha"],
    "deployment_status": ["deployment.sha"],
    "status": ["sha"],
    "pull_request": ["pull_request.head.sha"],
}
_GITLAB_SHA = {
    "push": ["checkout_sha", "after"],
    "tag_push": ["checkout_sha"],
    "pipeline": ["object_attributes.sha"],
    "merge_request": ["object_attributes.last_commit.id"],
    "build": ["sha"],
    "deployment": [],  # only in commit_url
}


def _dig(document: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(document, dict):
            return None
        document = document.get(part)
    return document


def _name(event_type: str, prefix: str) -> str:
    return event_type[len(prefix):].split(".", 1)[0]


def of(event: CloudEvent) -> tuple[Commit | None, str]:
    """(the commit, where it was found) or (None, why there is none)."""
    if event.type.startswith(event_types.GITHUB_PREFIX):
        provider, table, prefix = "github", _GITHUB_SHA, event_types.GITHUB_PREFIX
    elif event.type.startswith(event_types.GITLAB_PREFIX):
        provider, table, prefix = "gitlab", _GITLAB_SHA, event_types.GITLAB_PREFIX
    else:
        return None, (f"{event.type} names no commit of its own; a registry or Kubernetes event finds "
                      "it through the image's org.opencontainers.image.revision label")
    name = _name(event.type, prefix)
    if name not in table:
        return None, f"{provider} {name} events name no commit (known: {', '.join(sorted(table))})"
    try:
        data = event.json() if event.is_json() else None
    except Exception:  # noqa: BLE001 - data that is not JSON names nothing
        data = None
    if not isinstance(data, dict):
        return None, f"{event.type} has no JSON data"
    if provider == "github":
        repository, url = _dig(data, "repository.full_name"), _dig(data, "repository.html_url")
    else:
        repository = _dig(data, "project.path_with_namespace")
        url = _dig(data, "project.web_url")
    if not isinstance(repository, str) or not repository:
        where = "repository.full_name" if provider == "github" else "project.path_with_namespace"
        return None, f"{event.type} has no {where}"
    for path in table[name]:
        sha = _dig(data, path)
        if isinstance(sha, str) and _SHA.match(sha) and sha != _NULL_SHA:
            return Commit(provider, repository, sha, f"data.{path} of {event.type}", url), "found"
    if provider == "gitlab" and name == "deployment":
        found = _COMMIT_URL.search(str(data.get("commit_url") or ""))
        if found:
            return Commit(provider, repository, found.group(1), f"data.commit_url of {event.type}", url), "found"
        return None, f"{event.type} has no commit_url ending in a commit"
    tried = ", ".join(f"data.{p}" for p in table[name])
    return None, f"{event.type} has no full commit sha at {tried} (a branch deletion names 000…0)"


def is_full_sha(value: object) -> bool:
    """A full SHA-1 (40) or SHA-256 (64) commit name in lowercase hex, not the null sha."""
    return isinstance(value, str) and bool(_SHA.match(value)) and value != _NULL_SHA


_SCP_LIKE = re.compile(r"^[\w.-]+@([\w.-]+):(.+)$")  # git@github.com:acme/web.git


def _host_and_path(url: str) -> tuple[str, str] | None:
    scp = _SCP_LIKE.match(url)
    if scp:
        return scp.group(1).lower(), scp.group(2)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https", "ssh", "git") or not parsed.hostname:
        return None
    host = parsed.hostname.lower() + (f":{parsed.port}" if parsed.port else "")
    return host, parsed.path


def from_source(source: str, sha: str, found: str, gitlab: Iterable[str] = ()) -> tuple[Commit | None, str]:
    """The commit ``sha`` of the repository at URL ``source`` (an image's
    ``org.opencontainers.image.source``), or ``None`` with why not.

    ``github.com`` is GitHub; a host in ``gitlab`` (base URLs such as ``https://gitlab.example.com``
    or ``https://example.com/gitlab``, or bare ``host[:port]``) is GitLab, its project path what
    follows the base. Any other host is no forge this router reports to.
    """
    where = _host_and_path(source.strip())
    if where is None:
        return None, f"source {source!r} is not a repository URL (https://<host>/<path>)"
    host, path = where
    path = path.strip("/").split("/-/", 1)[0].removesuffix(".git").strip("/")
    if host in ("github.com", "www.github.com"):
        parts = path.split("/")
        if len(parts) < 2 or not all(parts[:2]):
            return None, f"source {source!r} names no GitHub repository (https://github.com/<owner>/<name>)"
        repository = "/".join(parts[:2])
        return Commit("github", repository, sha, found, f"https://github.com/{repository}"), "found"
    for base in gitlab:
        base_where = _host_and_path(base if "//" in base else f"https://{base}")
        if base_where is None or base_where[0] != host:
            continue
        prefix = base_where[1].strip("/")
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            continue
        project = path[len(prefix):].strip("/") if prefix else path
        if "/" not in project:
            return None, f"source {source!r} names no GitLab project (<namespace>/<project>) under {base}"
        web = base.rstrip("/") if "//" in base else f"https://{base}"
        return Commit("gitlab", project, sha, found, f"{web}/{project}"), "found"
    return None, (f"source {source!r} is on {host}, which is neither github.com nor a configured GitLab "
                  "(set reporters.gitlab.url, or add the host to reporters.gitlab.hosts)")
