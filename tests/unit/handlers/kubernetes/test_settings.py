"""The ``kubernetes:`` settings section: YAML, environment overrides, errors naming the key."""

from __future__ import annotations

import pytest

from router import errors
from router.config import settings


def test_watches_from_yaml(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("""
kubernetes:
  kubeconfig: /etc/kube/config
  cluster: prod-eu
  watches:
    - {group: apps, kind: Deployment, namespaces: [shop, payments], label_selector: "team=web"}
    - group: example.dev
      version: v1beta1
      kind: Canary
      conditions: [{name: promoted, path: "status.phase", equals: Promoted}]
""")
    loaded = settings.load(path, env={}).kubernetes
    assert str(loaded.kubeconfig) == "/etc/kube/config" and loaded.cluster == "prod-eu"
    deployments, canaries = loaded.watches
    assert deployments.namespaces == ["shop", "payments"] and deployments.label_selector == "team=web"
    assert canaries.conditions[0].equals == "Promoted" and loaded.state_bucket == "TR_KUBE_WATCH"


def test_environment_override():
    loaded = settings.load(None, env={"TRIGGER_ROUTER_KUBERNETES__WATCHES": '[{"kind": "Pod"}]',
                                      "TRIGGER_ROUTER_KUBERNETES__MAX_BACKOFF": "10s"}).kubernetes
    assert loaded.watches[0].kind == "Pod" and loaded.watches[0].group == "" and loaded.max_backoff == 10.0


@pytest.mark.parametrize("env,path", [
    ({"TRIGGER_ROUTER_KUBERNETES__WATCHES": '[{"kind": "Pod", "namespace": "x"}]'}, "kubernetes.watches.0.namespace"),
    ({"TRIGGER_ROUTER_KUBERNETES__WATCHES": '[{"group": "apps"}]'}, "kubernetes.watches.0.kind"),
    ({"TRIGGER_ROUTER_KUBERNETES__WATCH_TIMEOUT": "soon"}, "kubernetes.watch_timeout"),
])
def test_errors_name_the_key(env, path):
    with pytest.raises(errors.ConfigError) as refused:
        settings.load(None, env=env)
    assert refused.value.path == path
