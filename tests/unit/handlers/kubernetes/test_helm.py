"""Which workloads are Helm's, and the ``helm`` command ``rollback`` runs for them."""

from __future__ import annotations

import pytest

from handlers.kubernetes import helm
from handlers.kubernetes.settings import KubernetesSettings
from router import errors


@pytest.mark.parametrize("annotations,expected", [
    ({"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "apps"}, ("web", "apps")),
    ({"meta.helm.sh/release-name": "web"}, ("web", "ns")),  # the release lives beside the workload
    ({"meta.helm.sh/release-name": ""}, None),
    ({}, None),
    (None, None),
])
def test_a_helm_managed_workload_is_found_by_its_annotations(annotations, expected):
    assert helm.release_of({"metadata": {"namespace": "ns", "annotations": annotations}}) == expected


async def test_a_missing_binary_ends_error_naming_it(tmp_path):
    settings = KubernetesSettings(snapshots={"helm_binary": str(tmp_path / "no-helm")})
    with pytest.raises(errors.PermanentError, match="helm rollback: cannot run .*no-helm"):
        await helm.rollback(settings, "web", "ns", 5)


async def test_a_failing_helm_ends_error_with_its_output(tmp_path):
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\necho \"Error: release: not found ($*)\"\nexit 1\n")
    fake.chmod(0o755)
    settings = KubernetesSettings(kubeconfig=tmp_path / "kc", snapshots={"helm_binary": str(fake)})
    with pytest.raises(errors.PermanentError, match=r"exited 1: Error: release: not found \(rollback web 0 "
                                                    r"--namespace ns --timeout 5s --kubeconfig .*kc\)"):
        await helm.rollback(settings, "web", "ns", 5)
