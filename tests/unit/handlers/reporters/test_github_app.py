"""Signing in as the GitHub App, rate limits and secrets, through the reporters and the contract server.

The waits expected are GitHub's documented ones: ``retry-after`` seconds; until
``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0; at least a minute on a secondary limit
that names no time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from handlers.reporters import github_app
from router import errors
from router.config import settings as config
from tests.support.github_api import generate_key
from tests.unit.handlers.reporters.conftest import APP_ID, WORKFLOW_REPO, context, report

CHECK_RUNS = r"/check-runs$"


def test_the_contract_server_refuses_a_jwt_of_another_key_or_time(github, tmp_path):
    """The server's own check can fail: another key, an expired JWT, one issued in the future."""
    app = github_app.current()
    assert github.api.jwt_problem(app.jwt()) is None
    assert "'exp'" in github.api.jwt_problem(app.jwt(now=time.time() - 700))
    assert "'iat'" in github.api.jwt_problem(app.jwt(now=time.time() + 120))
    generate_key(tmp_path / "other.pem")
    other = github.configure(private_key_file=str(tmp_path / "other.pem"))
    assert github.api.jwt_problem(other.jwt()) == "A JSON web token could not be decoded"


async def test_the_contract_server_refuses_an_unknown_state_with_422(github):
    await report("githubStatus", {}, context("queued"))  # signs in; then a raw request with its token
    token = next(iter(github.api.tokens))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{github.api.url}/repos/{WORKFLOW_REPO}/statuses/{'a' * 40}", json={"state": "green"},
                             headers={"Authorization": f"token {token}"}) as answer:
            assert (answer.status, (await answer.json())["message"]) == (422, "Validation Failed")
        async with http.post(f"{github.api.url}/repos/{WORKFLOW_REPO}/statuses/{'a' * 40}", json={"state": "success"},
                             headers={"Authorization": "Bearer not-a-token"}) as answer:
            assert (answer.status, (await answer.json())["message"]) == (401, "Bad credentials")


async def test_a_wrong_private_key_is_permanent_and_names_the_problem_not_the_key(github, tmp_path):
    generate_key(tmp_path / "other.pem")
    github.configure(private_key_file=str(tmp_path / "other.pem"))
    with pytest.raises(errors.PermanentError) as refused:
        await report("githubCheckRun", {}, context("started"))
    message = str(refused.value)
    assert "refused the App's JWT" in message and f"app_id {APP_ID}" in message
    key_lines = (tmp_path / "other.pem").read_text().splitlines()[1:-1]
    assert not any(line in message for line in key_lines) and "PRIVATE KEY" not in message


async def test_a_key_that_is_not_pem_is_permanent_without_its_content(github, tmp_path):
    (tmp_path / "broken.pem").write_text("not-a-key-but-a-secret-value")
    github.configure(private_key_file=str(tmp_path / "broken.pem"))
    with pytest.raises(errors.PermanentError, match="not a PEM private key") as refused:
        await report("githubCheckRun", {}, context("started"))
    assert "not-a-key-but-a-secret-value" not in str(refused.value) and github.api.requests == []


@pytest.mark.parametrize("limit,wait", [
    ({"status": 429, "retry_after": 2}, (2, 2)),
    ({"status": 403, "reset_in": 30}, (25, 31)),                 # primary: until x-ratelimit-reset (a loaded box lags)
    ({"status": 403, "secondary": True}, (60, 60)),              # secondary, no header: a minute
    ({"status": 429, "secondary": True, "retry_after": 5}, (5, 5)),
])
async def test_rate_limits_are_temporary_with_githubs_wait(github, limit, wait):
    github.api.limit(1, method="POST", path=CHECK_RUNS, **limit)
    with pytest.raises(errors.TemporaryError, match="rate limit") as limited:
        await report("githubCheckRun", {}, context("started"))
    assert wait[0] <= limited.value.delay <= wait[1]
    sent = len(github.api.requests)
    with pytest.raises(errors.TemporaryError, match="waiting out GitHub's rate limit") as held:
        await report("githubCheckRun", {}, context("finished"))  # another stage: the limit is the App's
    assert len(github.api.requests) == sent and held.value.delay <= limited.value.delay


async def test_after_the_wait_the_report_goes_through(github):
    github.api.limit(1, method="POST", path=CHECK_RUNS, retry_after=1)
    with pytest.raises(errors.TemporaryError):
        await report("githubCheckRun", {}, context("started"))
    await asyncio.sleep(1.05)
    state = await report("githubCheckRun", {}, context("started"))
    limited, created = github.api.calls("POST", CHECK_RUNS)
    assert (limited.status, created.status) == (429, 201) and created.time - limited.time >= 1.0
    assert list(github.api.check_runs) == [state["id"]]


async def test_a_refused_token_is_permanent(github):
    github.configure(app_id="", private_key_file="", token="wrong-token")
    with pytest.raises(errors.PermanentError, match="refused reporters.github.token"):
        await report("githubStatus", {}, context("queued"))


async def test_one_installation_token_serves_many_reports(github):
    for stage in ("queued", "started", "finished"):
        await report("githubStatus", {}, context(stage))
    assert len(github.api.calls("POST", "access_tokens")) == 1
    assert len(github.api.calls("GET", "/installation$")) == 1  # the installation is cached too


async def test_reports_arriving_together_share_one_token_refresh(github):
    await asyncio.gather(*(report("githubStatus", {}, context("queued", run_id=f"run-{i}")) for i in range(8)))
    assert len(github.api.calls("POST", "access_tokens")) == 1 and len(github.api.statuses) == 8


async def test_a_token_about_to_expire_is_replaced_before_use(github):
    github.api.token_lifetime = 120.0  # less than the refresh margin: every report needs a new one
    await report("githubStatus", {}, context("queued"))
    await report("githubStatus", {}, context("started"))
    assert len(github.api.calls("POST", "access_tokens")) == 2


async def test_a_revoked_token_is_dropped_once_and_the_call_retried(github):
    await report("githubStatus", {}, context("queued"))
    github.api.revoke_tokens()
    await report("githubStatus", {}, context("started"))
    assert [r.status for r in github.api.calls("POST", "/statuses/")] == [201, 401, 201]
    assert len(github.api.calls("POST", "access_tokens")) == 2


async def test_a_configured_installation_id_needs_no_lookup(github):
    github.configure(installation_id="1")
    await report("githubStatus", {}, context("queued"))
    assert github.api.calls("GET", "/installation$") == []


async def test_an_app_not_installed_on_the_repository_is_permanent(github):
    github.api.installations = {"someone/else": 1}
    with pytest.raises(errors.PermanentError, match=f"not installed on {WORKFLOW_REPO}"):
        await report("githubCheckRun", {}, context("started"))


async def test_a_wrong_installation_id_is_permanent(github):
    github.configure(installation_id="99")
    with pytest.raises(errors.PermanentError, match="has no installation 99"):
        await report("githubStatus", {}, context("queued"))


async def test_github_unreachable_is_temporary(github):
    await github.api.stop()
    with pytest.raises(errors.TemporaryError, match="cannot reach GitHub"):
        await report("githubCheckRun", {}, context("started"))


async def test_nothing_secret_reaches_the_logs(github, caplog):
    caplog.set_level(logging.DEBUG)
    state = await report("githubCheckRun", {}, context("started"))
    await report("githubCheckRun", {}, context("finished"), state)
    github.api.revoke_tokens()
    await report("githubStatus", {}, context("finished"))
    github.api.limit(1, status=429, retry_after=1)
    with pytest.raises(errors.TemporaryError) as limited:
        await report("githubStatus", {}, context("queued", run_id="run-2"))
    secrets = [*github.api.tokens, *github.key_file.read_text().splitlines()[1:-1]]
    secrets += [r.headers["Authorization"].split()[-1] for r in github.api.requests]  # the JWTs too
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records) + str(limited.value)
    assert any("installation token" in r.getMessage() for r in caplog.records)  # it did log, just not them
    assert [s for s in secrets if s in logged] == []


def test_an_app_id_without_its_key_is_a_settings_error():
    with pytest.raises(errors.ConfigError, match="reporters.github: .*private_key \\(or private_key_file\\) is missing"):
        config.load(None, env={"TRIGGER_ROUTER_REPORTERS__GITHUB__APP_ID": "123"})


def test_the_key_is_checked_once_the_settings_are_loaded(github, tmp_path):
    (tmp_path / "broken.pem").write_text("not a key")
    settings = config.load(None, env={"TRIGGER_ROUTER_REPORTERS__GITHUB__APP_ID": "123",
                                      "TRIGGER_ROUTER_REPORTERS__GITHUB__PRIVATE_KEY_FILE": str(tmp_path / "broken.pem")})
    with pytest.raises(errors.ConfigError, match="reporters.github.private_key: .*not a PEM private key"):
        github_app.configured(settings)
    assert "not a key" not in str(settings.reporters.github)  # SecretStr: masked in reprs


def test_config_check_masks_the_key_and_the_token(github):
    key = github.key_file.read_text()
    settings = config.load(None, env={"TRIGGER_ROUTER_REPORTERS__GITHUB__APP_ID": "123",
                                      "TRIGGER_ROUTER_REPORTERS__GITHUB__PRIVATE_KEY_FILE": str(github.key_file),
                                      "TRIGGER_ROUTER_REPORTERS__GITHUB__TOKEN": "ghp_should_never_show"})
    shown = json.dumps(config.redacted(settings)["reporters"]["github"])
    assert json.loads(shown)["private_key"] == "***" and "ghp_should_never_show" not in shown
    assert key.splitlines()[1] not in shown
