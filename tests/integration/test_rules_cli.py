"""``rules validate`` / ``rules test`` as a rule author uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "router.cli"]
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def test_validate_names_file_rule_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: TriggerRule\nmetadata: {name: smoke}\nspec:\n  action: {httpProbe: {checks: [{url: 5}]}}\n")
    result = subprocess.run(CLI + ["rules", "validate", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{bad}: rule smoke, field spec.action.httpProbe.checks[0].url:" in result.stderr
    assert "Traceback" not in result.stderr


def test_examples_validate():
    result = subprocess.run(CLI + ["rules", "validate", "examples/rules"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 rule(s) valid" in result.stdout


def test_dry_run_explains_match_and_non_match(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "id": "e1", "source": "/ci", "type": "com.example.deployed",
                                 "subject": "production/web", "data": {"service": "web"}}))
    result = subprocess.run(CLI + ["rules", "test", "examples/rules", "--event", str(event), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = {entry["rule"]: entry for entry in json.loads(result.stdout)}
    assert report["smoke-healthy"]["matched"] is True
    assert report["smoke-healthy"]["action"]["httpProbe"]["checks"][0]["url"] == "http://127.0.0.1:8080/healthz"
    assert report["smoke-healthy"]["environment"] == "production/web"
    assert report["smoke-broken"]["matched"] is False
    assert report["smoke-broken"]["reason"].startswith("spec.filters[1] cel:")
    assert "org.opencontainers.image.revision" in report["smoke-healthy"]["commit"]["none"]


def test_dry_run_names_the_commit_a_verdict_belongs_to(tmp_path):
    rule = tmp_path / "push.yaml"
    rule.write_text("kind: TriggerRule\nmetadata: {name: on-push}\nspec:\n  filters: [{exact: {type: com.github.push}}]\n"
                    "  action: {exec: {command: [echo]}}\n"
                    "  report: [{cloudevent: {uri: 'https://hooks.example/{{ data.repository.name }}'}}]\n")
    payload = json.loads((SHARED / "fixtures/github/push/with-new-branch.payload.json").read_text())
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "id": "p1", "source": "https://github.com/x",
                                 "type": "com.github.push", "datacontenttype": "application/json", "data": payload}))
    result = subprocess.run(CLI + ["rules", "test", str(rule), "--event", str(event)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (f"commit: github {payload['repository']['full_name']} @ {payload['after'][:12]} "
            "(from data.after of com.github.push)") in result.stdout
    reported = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("report:")]
    assert len(reported) == 1 and reported[0].startswith("report: cloudevent {")
    assert f'"uri": "https://hooks.example/{payload["repository"]["name"]}"' in reported[0]
