"""``rules validate`` / ``rules test`` as a rule author uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "router.cli"]
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def test_validate_names_file_line_rule_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: TriggerRule\nmetadata: {name: smoke}\nspec:\n  action: {httpProbe: {checks: [{url: 5}]}}\n")
    result = subprocess.run(CLI + ["rules", "validate", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{bad}:4:34: rule smoke, field spec.action.httpProbe.checks[0].url:" in result.stderr
    assert "Traceback" not in result.stderr


ONE = """\
kind: TriggerRule
metadata: {name: smoke}
spec:
  filters:
    - regex: {type: a}
    - cel: 'data.x =='
  action:
    httpProbe:
      checks:
        - url: 5
        - {url: "http://x", nope: 1}
  report: [{nosuch: {}}]
---
kind: TriggerRule
metadata: {name: Bad_Name}
spec:
  actoin: {}
"""
TWO = """\
kind: TriggerRule
metadata: {name: smoke}
spec:
  filters: [{cesql: "type = 'a'"}]
  action: {exec: {command: [echo]}}
---
kind: TriggerRule
metadata: {name: good}
spec:
  filters: [{cesql: "type = 'a'"}, {sql: "EXISTS subject"}]
  action: {exec: {command: [echo]}}
"""


def test_validate_reports_every_problem_of_every_file_then_a_count(tmp_path):
    (tmp_path / "a.yaml").write_text(ONE)
    (tmp_path / "b.yaml").write_text(TWO)
    (tmp_path / "c.yaml").write_text("kind: TriggerRule\nmetadata: {name: x}\nspec: [\n")
    result = subprocess.run(CLI + ["rules", "validate", str(tmp_path), str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    a, b, c = (str(tmp_path / name) for name in ("a.yaml", "b.yaml", "c.yaml"))
    lines = result.stderr.splitlines()
    assert lines[0] == f"{tmp_path / 'missing.yaml'}: no such file or directory"
    assert lines[1].startswith(f"{a}:5:7: rule smoke, field spec.filters[0].regex: unknown filter dialect 'regex'")
    assert lines[2].startswith(f"{a}:6:7: rule smoke, field spec.filters[1].cel: invalid CEL")
    assert lines[3] == f"{a}:10:11: rule smoke, field spec.action.httpProbe.checks[0].url: Input should be a valid string"
    assert lines[4] == f"{a}:11:29: rule smoke, field spec.action.httpProbe.checks[1].nope: unknown field"
    assert lines[5].startswith(f"{a}:12:13: rule smoke, field spec.report[0].nosuch: unknown reporter 'nosuch'")
    assert lines[6].startswith(f"{a}:15:12: rule Bad_Name, field metadata.name: String should match pattern")
    assert lines[7] == f"{a}:16:1: rule Bad_Name, field spec.action: Field required"
    assert lines[8] == f"{a}:17:3: rule Bad_Name, field spec.actoin: unknown field"
    assert lines[9] == f"{b}:2:12: rule smoke, field metadata.name: duplicate rule name, first defined in {a}"
    assert lines[10].startswith(f"{c}:4:1: not valid YAML: ")
    assert lines[11:] == ["11 problem(s) in 4 file(s)"]
    assert result.stdout == ""


def test_validate_accepts_the_knative_spelling_of_sql(tmp_path):
    rules = tmp_path / "knative.yaml"
    rules.write_text(TWO.replace("name: smoke", "name: other"))
    result = subprocess.run(CLI + ["rules", "validate", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "2 rule(s) valid" in result.stdout


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


RULES = """\
kind: TriggerRule
metadata: {name: on-push}
spec:
  filters: [{exact: {type: com.github.push}}, {cesql: "subject LIKE 'refs/tags/%'"}]
  action: {exec: {command: [echo, "{{ data.repository.name }}"]}}
---
kind: TriggerRule
metadata: {name: on-pipeline-finished}
spec:
  filters: [{prefix: {type: dev.cdevents.pipelinerun.finished.}}]
  action: {exec: {command: [echo, "{{ data.subject.content.outcome }}"]}}
---
kind: TriggerRule
metadata: {name: on-artifact}
spec:
  filters: [{prefix: {type: dev.cdevents.artifact.published.}}, {cel: 'data.subject.id.startsWith("pkg:oci/")'}]
  action: {exec: {command: [echo, "{{ data.subject.id }}"]}}
"""


def rules_test(tmp_path, *args):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return subprocess.run(CLI + ["rules", "test", str(rules), *args], capture_output=True, text=True, timeout=60)


def test_a_github_payload_is_converted_as_the_edge_would(tmp_path):
    payload = SHARED / "fixtures/github/push/payload.json"
    result = rules_test(tmp_path, "--github", "push", "--delivery", "d-1", "-e", str(payload), "--json",
                        "--expect-match")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {(e["event"]["id"], e["event"]["type"]) for e in report} == {("d-1", "com.github.push")}
    matched = [e for e in report if e["matched"]]
    assert [e["rule"] for e in matched] == ["on-push"]
    assert matched[0]["action"]["exec"]["command"] == ["echo", "Hello-World"]


def test_a_github_workflow_run_is_tested_with_its_derived_cdevent(tmp_path):
    payload = SHARED / "fixtures/github/workflow_run/completed.payload.json"
    result = rules_test(tmp_path, "--github", "workflow_run", "-e", str(payload))
    assert result.returncode == 0, result.stderr
    assert "com.github.workflow_run.completed" in result.stdout
    assert "MATCH     on-pipeline-finished" in result.stdout
    assert "1 match(es) over 2 events" in result.stdout


def test_a_gitlab_pipeline_is_tested_with_its_derived_cdevent(tmp_path):
    payload = SHARED / "fixtures/gitlab/pipeline.json"
    result = rules_test(tmp_path, "--gitlab", "-e", str(payload), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    types = {e["event"]["type"] for e in report}
    assert "com.gitlab.pipeline" in types and any(t.startswith("dev.cdevents.pipelinerun.") for t in types)
    # No --delivery: the id is derived from the payload, so testing it twice tests the same event.
    assert {e["event"]["id"] for e in report if e["event"]["type"] == "com.gitlab.pipeline"} == {
        e["event"]["id"] for e in json.loads(rules_test(tmp_path, "--gitlab", "-e", str(payload), "--json").stdout)
        if e["event"]["type"] == "com.gitlab.pipeline"}


# Registries whose webhooks carry the digest (Docker Hub and Quay send a tag, resolved over the network).
REGISTRY_TYPES = {"acr": "com.azure.containerregistry.push", "distribution": "dev.cncf.distribution.push",
                  "ecr": "com.amazonaws.ecr.push", "gar": "com.google.artifactregistry.push",
                  "harbor": "io.goharbor.push"}


@pytest.mark.parametrize("registry", sorted(REGISTRY_TYPES))
def test_a_registry_payload_goes_through_that_registry_source(tmp_path, registry):
    # The push fixture (Harbor's folder also holds scan results, which are no artifact.published).
    payload = next(path for path in sorted((Path(__file__).resolve().parents[1] / "fixtures/registry" / registry)
                                           .glob("*.json")) if not path.name.startswith("scanning_"))
    result = rules_test(tmp_path, "--registry", registry, "-e", str(payload), "--json", "--expect-match")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {e["event"]["type"] for e in report} == {REGISTRY_TYPES[registry], "dev.cdevents.artifact.published.0.3.0"}
    assert {e["rule"] for e in report if e["matched"]} == {"on-artifact"}
    if registry == "distribution":  # an item the edge would dead-letter is named, not hidden
        assert "would be dead-lettered: payload has no target.digest" in result.stderr


def test_expect_match_exits_1_and_says_so_when_nothing_matches(tmp_path):
    ping = SHARED / "fixtures/github/ping/payload.json"
    result = rules_test(tmp_path, "--github", "ping", "-e", str(ping), "--expect-match")
    assert result.returncode == 1
    assert "no rule matches" in result.stderr and "makes no events" in result.stdout
    push = SHARED / "fixtures/gitlab/push.json"  # refs/heads/master: on-push wants a tag, and GitLab's type
    result = rules_test(tmp_path, "--gitlab", "-e", str(push), "--expect-match")
    assert result.returncode == 1 and "no rule matches the event" in result.stderr


def test_a_payload_the_source_refuses_is_one_line(tmp_path):
    payload = tmp_path / "not-gitlab.json"
    payload.write_text('{"hello": "world"}')
    result = rules_test(tmp_path, "--gitlab", "-e", str(payload))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{payload}: the gitlab source refuses it (HTTP 400): payload has no object_kind (object_kind)" in result.stderr


def test_cel_results_are_explained_in_cel(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "id": "e1", "source": "/ci", "type": "com.example.deployed",
                                 "data": {"service": None}}))
    rule = tmp_path / "cel.yaml"
    rule.write_text("kind: TriggerRule\nmetadata: {name: c}\nspec:\n  filters: [{cel: 'data.service'}]\n"
                    "  action: {exec: {command: [echo]}}\n---\nkind: TriggerRule\nmetadata: {name: d}\nspec:\n"
                    "  filters: [{cel: 'has(data.x)'}]\n  action: {exec: {command: [echo]}}\n")
    result = subprocess.run(CLI + ["rules", "test", str(rule), "-e", str(event)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "no match  c: spec.filters[0] cel: 'data.service' evaluated to null" in result.stdout
    assert "no match  d: spec.filters[0] cel: 'has(data.x)' evaluated to false" in result.stdout


def test_help_says_authentication_is_skipped():
    result = subprocess.run(CLI + ["rules", "test", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "authentication" in result.stdout and "skipped" in result.stdout
