"""``kubernetesJob``'s parameters in a namespaced TriggerRule: no template from the router's files."""

from __future__ import annotations

import pytest

from handlers.sources.kubernetes import triggerrules
from router import errors
from router.plugins import catalog
from router.rules import loading


def test_a_namespaced_rule_may_not_read_a_job_template_from_the_routers_files():
    # a YAML error would quote the file it read: the router's config, its rules, a mounted Secret
    document = {"kind": "TriggerRule", "metadata": {"name": "job"}, "spec": {
        "filters": [{"exact": {"type": "dev.example.deployed"}}],
        "action": {"kubernetesJob": {"namespace": "web", "jobFile": "/etc/trigger-router/config.yaml"}}}}
    with pytest.raises(errors.RuleError) as refused:
        loading.compile_document(document, "TriggerRule web/job", 0, catalog.load().actions, name="web/job",
                                 namespace="web", namespaced_actions=triggerrules.NAMESPACED_ACTIONS)
    assert refused.value.field == "spec.action.kubernetesJob.jobFile"
    assert "may not set jobFile (it reads files on the router's host)" in refused.value.message
