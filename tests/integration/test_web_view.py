"""The run-history web view as a person sees it: a real ``serve``, real runs, a real headless Chromium.

A router process (``serve`` with ``web.enabled``, bound to 0.0.0.0 so the view counts as exposed
and needs credentials) runs one rule whose httpProbe passes for one event and fails for another,
plus a rule that always passes; then Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium) reads the pages. Screenshots go to the test's tmp dir (the path is printed).
Chromium is pointed at a dead proxy for everything but loopback: the pages must work offline.

A second test, without the browser, checks that a page reads only ``web.max_runs`` run states.

Without the browser the first test skips on a developer machine and FAILS in CI (``CI=true``):
``make test`` installs it, so a skip there would hide a broken install step.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import textwrap

import aiohttp
import pytest
from aiohttp import web

from router.engine import runs
from router.model import events
from tests.integration.conftest import make_settings, serve_edge
from tests.support import httpserver, routers

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
USER, PASSWORD, TOKEN = "ops", "correct horse", "web-token-1"
HOSTILE = "<script>document.title='pwned'</script>"


def need_browser() -> None:
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not found]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip)")
    if missing:
        why = f"the web view test needs {', '.join(missing)} (make test installs them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps",
                 "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER, log_output=str(tmp_path / "chromedriver.log")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def target():
    """The service under test (/healthy passes, /broken fails) and a CloudEvents sink for reports."""
    received = []

    async def healthy(request):
        return web.json_response({"status": "ok"})

    async def broken(request):
        return web.json_response({"status": "degraded"}, status=503)

    async def sink(request):
        received.append(await request.read())
        return web.Response(status=202)

    app = web.Application()
    app.router.add_get("/healthy", healthy)
    app.router.add_get("/broken", broken)
    app.router.add_post("/sink", sink)
    async with httpserver.serving(app) as url:
        yield f"{url}", received


RULES = """\
kind: TriggerRule
metadata: {{name: web-smoke}}
spec:
  filters: [{{exact: {{type: com.example.deployed}}}}]
  action:
    httpProbe:
      checks: [{{name: "version page", url: "{target}/{{{{ data.path }}}}", jsonEquals: {{status: ok}}}}]
      deadline: 1s
      interval: 0.5s
  report:
    - cloudevent: {{uri: "{target}/sink"}}
---
kind: TriggerRule
metadata: {{name: web-health}}
spec:
  filters: [{{exact: {{type: com.example.deployed}}}}]
  action:
    httpProbe:
      checks: [{{url: "{target}/healthy"}}]
"""


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def publish(nats_url: str, event_id: str, data: dict) -> events.CloudEvent:
    [event] = await routers.publish_events(nats_url, 1, event_id, lambda i: data, event_type="com.example.deployed")
    return event


async def test_runs_run_and_rules_pages_in_a_real_browser(nats_server, tmp_path, free_port, target, browser):
    url, received = target
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent(RULES.format(target=url)))
    router = routers.start_router(
        nats_server.url, str(rules), free_port, tmp_path, "router", HTTP__HOST="0.0.0.0", WEB__ENABLED="true",
        WEB__USERS=json.dumps([{"name": USER, "password": PASSWORD}]), WEB__TOKENS=json.dumps([TOKEN]))
    log = tmp_path / "router.log"
    try:
        async with routers.connected(nats_server.url) as probe:
            await routers.until(probe.subscribed, 60, "the router subscribed", log)
            passing = await publish(nats_server.url, "deploy-good", {"path": "healthy"})
            good = runs.run_id("web-smoke", passing)
            await routers.until(lambda: _finished(probe, {good}), 60, "the passing run finished", log)
            failing = await publish(nats_server.url, "deploy-bad", {"path": "broken", "note": HOSTILE})
            bad = runs.run_id("web-smoke", failing)
            await routers.until(lambda: _finished(probe, {bad, runs.run_id("web-health", failing)}), 60,
                                "the failing run finished", log)
            await routers.until(lambda: _at_least(received, 2), 60, "both finished outcomes reached the sink", log)
        base = f"http://127.0.0.1:{free_port}/ui"

        # Exposed (0.0.0.0): nothing without credentials; wrong ones neither; both kinds of right ones work.
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": basic(password="wrong")}, {"Authorization": "Bearer nope"}):
                async with http.get(f"{base}/runs", headers=headers) as refused:
                    assert refused.status == 401, headers
                    assert refused.headers["WWW-Authenticate"].startswith('Basic realm="trigger-router web view"')
                    refusal = await refused.text()
                    assert bad not in refusal and good not in refusal and PASSWORD not in refusal  # no data
            async with http.get(f"{base}/runs/{bad}") as refused:
                assert refused.status == 401
            async with http.get(f"{base}/static/web.css") as refused:
                assert refused.status == 401
            for credentials in (basic(), f"Bearer {TOKEN}"):
                async with http.get(f"{base}/runs", headers={"Authorization": credentials}) as page:
                    assert page.status == 200 and page.content_type == "text/html"
                    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
                    assert bad in await page.text()
            async with http.post(f"{base}/runs", headers={"Authorization": basic()}) as written:
                assert written.status == 405  # read-only
            async with http.get(f"{base}/runs?outcome=maybe", headers={"Authorization": basic()}) as bad_filter:
                assert bad_filter.status == 400 and (await bad_filter.json())["field"] == "outcome"

        shots = tmp_path / "screenshots"
        shots.mkdir()
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic()}})
        from selenium.webdriver.common.by import By

        browser.get(f"{base}/")  # redirects to the runs page
        assert browser.current_url == f"{base}/runs"
        rows = {row.get_attribute("data-run"): row.text for row in browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")}
        browser.save_screenshot(str(shots / "runs.png"))
        assert good in rows and bad in rows, rows
        assert "success" in rows[good] and "web-smoke" in rows[good] and "deploy-good-0" in rows[good]
        assert "failure" in rows[bad] and "deploy-bad-0" in rows[bad]
        assert len(rows) == 4  # each event ran both rules
        colour = browser.find_element(By.CSS_SELECTOR, f'tr[data-run="{bad}"] .outcome').value_of_css_property(
            "background-color")
        assert colour == "rgba(207, 34, 46, 1)"  # the stylesheet (from the package) was applied: failure is red

        browser.get(f"{base}/runs?outcome=failure")
        filtered = [row.get_attribute("data-run") for row in browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")]
        assert filtered == [bad]

        browser.get(f"{base}/runs")
        browser.find_element(By.LINK_TEXT, bad).click()
        assert browser.current_url == f"{base}/runs/{bad}"
        timeline = browser.find_element(By.ID, "timeline").text
        browser.set_window_size(1400, 2200)  # the whole timeline, its reports and the event in one picture
        browser.save_screenshot(str(shots / "failing-run.png"))
        browser.set_window_size(1400, 1000)
        steps = [li.get_attribute("class").split()[1] for li in browser.find_elements(By.CSS_SELECTOR, "#timeline > li")]
        assert steps[:5] == ["step-event", "step-decision", "step-started", "step-check", "step-finished"], steps
        assert "step-report" in steps
        assert "check: version page" in timeline and "status 503 not in [200]" in timeline
        assert "JSON field 'status' is 'degraded', expected 'ok'" in timeline
        assert "deploy-bad-0" in timeline and "com.example.deployed" in timeline
        assert "finished: failure" in timeline and "report: cloudevent" in timeline
        event_text = browser.find_element(By.ID, "event").text
        assert '"id": "deploy-bad-0"' in event_text and HOSTILE in event_text  # shown as text...
        assert browser.title.startswith("Run ") and "pwned" not in browser.title  # ...never run
        assert len(browser.find_element(By.ID, "chain").text) == 36

        browser.get(f"{base}/rules")
        standings = {row.get_attribute("data-rule"): row for row in browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr")}
        browser.save_screenshot(str(shots / "rules.png"))
        assert set(standings) == {"web-smoke", "web-health"}
        smoke, health = standings["web-smoke"].text, standings["web-health"].text
        assert smoke.split()[1] == "failure" and "failure 1, success 1" in smoke and "50%" in smoke, smoke
        assert health.split()[1] == "success" and "success 2" in health and "100%" in health, health
        # One bar (or two, when the runs straddle an hour) saying one of two succeeded; the rest are gaps.
        titles = [bar.get_attribute("textContent") for bar in
                  standings["web-smoke"].find_elements(By.CSS_SELECTOR, "svg.chart rect.bar:not(.none)")]
        counted = [tuple(map(int, re.search(r"(\d+) of (\d+) succeeded", t).groups())) for t in titles]
        assert 1 <= len(counted) <= 2 and tuple(map(sum, zip(*counted))) == (1, 2), titles
        print(f"\nweb view screenshots: {shots}")
    finally:
        routers.stop_router(router)


async def test_a_page_reads_only_the_newest_run_states(nats_server):
    """``web.max_runs`` bounds what a page reads, and the page says the bucket holds more."""
    settings = make_settings(nats_server.url, WEB__ENABLED="true", WEB__MAX_RUNS="3")
    async with serve_edge(nats_server.url, settings) as served:
        states = await runs.RunStates.open(served.bus.js, settings)
        for i in range(5):  # written oldest first: r0 ... r4
            await states.create(f"{i:032x}", {"runId": f"{i:032x}", "rule": "smoke", "state": "finished",
                                              "outcome": "success" if i % 2 else "failure", "queuedAt": 1_764_590_400 + i})
        async with served.http.get(f"{served.url}/ui/runs") as page:
            assert page.status == 200, await page.text()
            html = await page.text()
        shown = re.findall(r'<tr data-run="([0-9a-f]{32})">', html)
        assert shown == [f"{i:032x}" for i in (4, 3, 2)]  # the three written last, latest queued first
        assert "out of the\n3 most recently written run state(s) (the bucket holds about 5" in html
        async with served.http.get(f"{served.url}/ui/rules") as page:
            rules = await page.text()
        assert "<td>3</td>" in rules and "failure 2, success 1" in rules and "web.max_runs = 3" in rules


async def _finished(probe: routers.Probe, expected: set[str]) -> bool:
    states = await probe.states()
    return all(states.get(run, {}).get("state") == "finished" for run in expected)


async def _at_least(received: list, count: int) -> bool:
    return len(received) >= count
