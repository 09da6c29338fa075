"""A real Prometheus (Debian's ``prometheus``) on a free loopback port, scraping what a test names.

Two suites need one: ``/metrics`` as an operator's Prometheus sees it (``test_metrics``) and the
``metricGate`` action reading a test-controlled exporter through the query API. Each server gets a
1 s scrape interval and its own TSDB under the test's ``tmp_path``; every server started is stopped
when the fixture ends, and its log is at ``tmp_path / "prometheus.log"`` for failure messages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator, Sequence

import aiohttp
import pytest

from tests.support.registryserver import free_port

Start = Callable[..., str]


def binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's prometheus is not installed (make test installs it)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return found


def launcher(tmp_path: Path) -> Iterator[Start]:
    """A fixture body: ``start(target, rule_files=(), job="trigger-router")`` -> the server's base URL."""
    program = binary()
    started: list[subprocess.Popen] = []

    def start(target: str, rule_files: Sequence[str | Path] = (), job: str = "trigger-router") -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}]}))
        with open(tmp_path / "prometheus.log", "wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen([program, f"--config.file={config}",
                                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                        f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


async def query(base: str, promql: str) -> list[dict]:
    """The instant query's result; ``[]`` while the server is still starting (replaying its WAL)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v1/query", params={"query": promql}) as answer:
            if answer.status == 503:
                return []
            body = await answer.json()
    assert body["status"] == "success", body
    return body["data"]["result"]
