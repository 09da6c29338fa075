"""``cloudevent``'s parameters: what a namespaced TriggerRule may set, what the outcome shows."""

from __future__ import annotations

import pytest

from handlers.actions import cloudevent
from handlers.sources.kubernetes import triggerrules
from router import errors
from router.plugins import catalog
from router.rules import loading


def rule(params: dict) -> dict:
    return {"kind": "TriggerRule", "metadata": {"name": "fn"},
            "spec": {"filters": [{"exact": {"type": "dev.example.deployed"}}], "action": {"cloudevent": params}}}


def compile_namespaced(params: dict):
    return loading.compile_document(rule(params), "TriggerRule web/fn", 0, catalog.load().actions,
                                    name="web/fn", namespace="web",
                                    namespaced_actions=triggerrules.NAMESPACED_ACTIONS)


def test_a_namespaced_rule_may_call_a_function_with_literal_headers():
    compiled = compile_namespaced({"url": "http://fn.web.svc/", "headers": {"X-Team": "web"}})
    assert compiled.action.name == "cloudevent"


@pytest.mark.parametrize("params,field,why", [
    ({"headersFrom": {"Authorization": "/var/run/secrets/router/token"}}, "headersFrom",
     "it reads files on the router's host"),
    ({"headers_from": {"Authorization": "/etc/passwd"}}, "headersFrom", "it reads files on the router's host"),
    ({"publishReply": True}, "publishReply", "it writes to the router's events stream"),
])
def test_a_namespaced_rule_may_not_reach_beyond_its_namespace(params, field, why):
    with pytest.raises(errors.RuleError) as refused:
        compile_namespaced({"url": "http://fn.web.svc/", **params})
    assert refused.value.field == f"spec.action.cloudevent.{field}"
    assert f"may not set {field} ({why}" in refused.value.message
    assert "a ClusterTriggerRule may" in refused.value.message


def test_publish_reply_false_and_cluster_rules_are_fine():
    namespaced = compile_namespaced({"url": "http://fn.web.svc/", "publishReply": False})
    cluster = loading.compile_document(rule({"url": "http://fn/", "publishReply": True,
                                             "headersFrom": {"Authorization": "/run/secrets/fn"}}),
                                       "ClusterTriggerRule fn", 0, catalog.load().actions, name="_cluster/fn")
    assert (namespaced.action.name, cluster.action.name) == ("cloudevent", "cloudevent")
    assert cluster.namespace is None and namespaced.namespace is not None


@pytest.mark.parametrize("name", ["ce-id", "Content-Type", "Bad Header", "X\r\nInjected"])
def test_headers_that_would_change_the_event_or_the_request_are_refused(name):
    with pytest.raises(ValueError, match="is not a header this action may set"):
        cloudevent.CloudEventFunction.model_validate({"url": "http://fn/", "headersFrom": {name: "/x"}})


@pytest.mark.parametrize("url,shown", [
    ("https://user:pw@fn.example.com/api/verify?code=k3y", "https://fn.example.com/api/verify"),
    ("http://fn.web.svc.cluster.local", "http://fn.web.svc.cluster.local"),
])
def test_the_outcome_shows_the_url_without_credentials(url, shown):
    assert cloudevent.shown(url) == shown


@pytest.mark.parametrize("content,value", [("tok\n", "tok"), ("tok\r\n", "tok"), ("tok", "tok")])
def test_a_secret_file_is_one_line(tmp_path, content, value):
    (tmp_path / "s").write_text(content)
    assert cloudevent._secret_headers({"Authorization": str(tmp_path / "s")}) == {"Authorization": value}


@pytest.mark.parametrize("content", ["", "\n", "a\nb\n"])
def test_an_empty_or_multi_line_secret_file_is_refused_without_its_content(tmp_path, content):
    (tmp_path / "s").write_text(content)
    with pytest.raises(errors.PermanentError) as refused:
        cloudevent._secret_headers({"Authorization": str(tmp_path / "s")})
    assert "is empty or holds more than one line" in str(refused.value)
    assert "a\nb" not in str(refused.value)


def test_a_secret_echoed_across_the_excerpts_end_leaves_no_prefix():
    secret = "Bearer 0123456789abcdef"
    body = ("x" * 500 + secret + " and more").encode()
    excerpt = cloudevent._excerpt(body, {"Authorization": secret})
    assert excerpt.startswith("x" * 500 + "[redac") and "Bearer" not in excerpt and excerpt.endswith("…")
