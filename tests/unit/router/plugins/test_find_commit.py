"""The order in which a run's commit is looked for: the event's own, a joined event's, then finders."""

from __future__ import annotations

import pytest

from router import errors
from router.model import commits, events
from router.plugins import catalog

SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
LABELLED = commits.Commit("gitlab", "group/app", "a" * 40, "label org.opencontainers.image.revision of sha256:ab…")
PUSH = events.make({"id": "1", "source": "https://github.com/acme/web", "type": "com.github.push"},
                   {"after": SHA, "repository": {"full_name": "acme/web"}})
ARTIFACT = events.make({"id": "2", "source": "https://r.example/app", "type": "dev.cdevents.artifact.published.0.3.0"}, {})


@pytest.fixture
def plugins():
    with catalog.isolated() as fresh:
        yield fresh


async def test_the_events_own_commit_comes_first(plugins):
    plugins.commit_finder("labels")(lambda event, bus: pytest.fail("asked a finder"))
    commit, why = await plugins.find_commit(PUSH)
    assert (commit.repository, commit.sha, why) == ("acme/web", SHA, "found")


async def test_a_joined_events_commit_before_the_finders(plugins):
    async def never(event, bus):
        raise AssertionError("asked a finder")

    plugins.commit_finder("labels")(never)
    commit, _ = await plugins.find_commit(ARTIFACT, joined=(PUSH,))
    assert commit.repository == "acme/web"


async def test_finders_in_order_not_mine_skipped_a_broken_one_logged(plugins, caplog):
    asked = []

    async def not_mine(event, bus):
        asked.append("not-mine")
        return None

    async def broken(event, bus):
        asked.append("broken")
        raise RuntimeError("boom")

    async def labels(event, bus):
        asked.append("labels")
        return LABELLED, "found"

    for name, find in (("not-mine", not_mine), ("broken", broken), ("labels", labels)):
        plugins.commit_finder(name)(find)
    assert await plugins.find_commit(ARTIFACT) == (LABELLED, "found")
    assert asked == ["not-mine", "broken", "labels"]
    assert "commit finder broken failed" in caplog.text


async def test_no_commit_anywhere_says_the_last_finders_why(plugins):
    async def labels(event, bus):
        return None, "image sha256:ab… in r.example/app has no label org.opencontainers.image.revision"

    plugins.commit_finder("labels")(labels)
    commit, why = await plugins.find_commit(ARTIFACT)
    assert commit is None and why == (await labels(ARTIFACT, None))[1]


async def test_a_finder_that_cannot_tell_now_is_a_temporary_reason_in_a_dry_run(plugins):
    async def unreachable(event, bus):
        raise errors.TemporaryError("registry unreachable (temporary, not cached): connection refused")

    plugins.commit_finder("labels")(unreachable)
    commit, why = await plugins.find_commit(ARTIFACT)
    assert commit is None
    assert why == ("registry unreachable (temporary, not cached): connection refused "
                   "(temporary: the reporting engine asks again later)")
