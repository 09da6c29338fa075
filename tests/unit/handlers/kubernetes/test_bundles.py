"""Which ConfigMaps and Secrets a pod template reads, and what events may say about them."""

from __future__ import annotations

import pytest

from handlers.kubernetes import bundles


@pytest.mark.parametrize("spec,expected", [
    ({"volumes": [{"name": "a", "configMap": {"name": "cm"}}, {"name": "b", "secret": {"secretName": "s"}}]},
     {"configMaps": ["cm"], "secrets": ["s"]}),
    ({"volumes": [{"name": "p", "projected": {"sources": [{"configMap": {"name": "pcm"}}, {"secret": {"name": "ps"}},
                                                          {"serviceAccountToken": {"path": "t"}}]}}]},
     {"configMaps": ["pcm"], "secrets": ["ps"]}),
    ({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "e1"}}, {"secretRef": {"name": "e2"}}]}]},
     {"configMaps": ["e1"], "secrets": ["e2"]}),
    ({"initContainers": [{"name": "i", "env": [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "k1", "key": "a"}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "k2", "key": "b"}}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "D", "value": "x"}]}],
      "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "k1"}}}]}]},
     {"configMaps": ["k1"], "secrets": ["k2"]}),
    ({"containers": [{"name": "c", "image": "x"}]}, {"configMaps": [], "secrets": []}),
])
def test_every_way_a_pod_reads_configuration_is_found(spec, expected):
    assert bundles.references({"spec": spec}) == expected


def test_the_summary_names_and_hashes_but_holds_no_value():
    bundle = {"revision": "r1", "configMaps": {"cm": {"data": {"k": "v"}}, "gone": None},
              "secrets": {"s": {"type": "Opaque", "data": {"password": "aHVudGVyMg=="}}}}
    found = bundles.summary(bundle)
    assert "aHVudGVyMg==" not in repr(found) and "hunter2" not in repr(found)
    assert found["secrets"] == [{"name": "s", "hash": bundles.content_hash({"type": "Opaque",
                                                                            "data": {"password": "aHVudGVyMg=="}})}]
    assert found["configMaps"][0] == {"name": "cm", "hash": bundles.content_hash({"data": {"k": "v"}})}
    assert found["configMaps"][1] == {"name": "gone", "hash": None}
