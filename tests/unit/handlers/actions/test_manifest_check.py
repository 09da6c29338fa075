"""``manifestCheck`` parameters: one manifest source, policies' CEL checked when the rule loads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from handlers.actions import manifest_check

INLINE = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]


@pytest.mark.parametrize("params,error", [
    ({}, "exactly one of manifests, manifestFile, manifestConfigMap, manifestUrl is required (given: none)"),
    ({"manifests": INLINE, "manifestFile": "/x.yaml"}, "(given: ['manifests', 'manifestFile'])"),
    ({"manifests": INLINE, "policies": [{"name": "p", "expression": "object.spec.("}]}, "policies[0].expression"),
    ({"manifests": INLINE, "policies": [{"name": "p", "expression": "object.kind.lower() == 'x'"}]},
     "unknown CEL function lower()"),
    ({"manifestUrl": {"url": "file:///etc/passwd"}}, "should match pattern"),
    ({"manifests": INLINE, "mode": "warn"}, "'enforce' or 'report'"),
])
def test_invalid_parameters_are_refused_at_load(params, error):
    with pytest.raises(ValidationError) as raised:
        manifest_check.ManifestCheck.model_validate(params)
    assert error in str(raised.value)


def test_a_namespaced_rule_may_not_read_router_files():
    assert set(manifest_check.ManifestCheck.cluster_only) == {"manifestFile", "manifestUrl"}


@pytest.mark.parametrize("obj,passed", [
    ({"kind": "Deployment", "spec": {"replicas": 2}}, True),
    ({"kind": "Deployment", "spec": {"replicas": 1}}, False),
])
def test_policy_is_true_to_pass(obj, passed):
    policy = manifest_check.Policy(name="ha", expression="object.spec.replicas >= 2", message="two at least")
    check = manifest_check._policy(policy, 0, "Deployment web", obj, None)
    assert check["passed"] is passed and check.get("message") == (None if passed else "two at least")


def test_a_policy_that_cannot_evaluate_fails_naming_the_expression():
    policy = manifest_check.Policy(name="ha", expression="object.spec.replicas >= 2")
    check = manifest_check._policy(policy, 0, "ConfigMap a", {"kind": "ConfigMap"}, None)
    assert check["passed"] is False and check["error"].startswith("object.spec.replicas >= 2: ")


def test_a_policy_that_returns_no_bool_names_its_type_never_the_value():
    policy = manifest_check.Policy(name="leak", expression="object.data.password")
    check = manifest_check._policy(policy, 0, "Secret db", {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}, None)
    assert check == {"name": "Secret db: policy leak", "object": "Secret db", "policy": "leak", "passed": False,
                     "error": "object.data.password: returned str, not a bool"}
