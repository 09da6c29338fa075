"""The metrics' names and labels: conventional, bounded, and the ones the shipped alerts and dashboard use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from router.telemetry import metrics

CHART = Path(__file__).resolve().parents[4] / "deploy/helm/trigger-router/files"
NAME = re.compile(r"\btrigger_router_[a-z_]+")


def exposed() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
    return names


def test_names_follow_prometheus_conventions():
    for family in metrics.REGISTRY.collect():
        assert family.name.startswith("trigger_router_"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            assert not {"id", "run_id", "event_id", "delivery"} & set(sample.labels), sample


def test_every_metric_the_alerts_and_the_dashboard_use_exists():
    alerts = yaml.safe_load((CHART / "alerts.yaml").read_text())
    expressions = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads((CHART / "grafana-dashboard.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expression in expressions for name in NAME.findall(expression)}
    assert len(used) >= 12
    assert used <= exposed(), used - exposed()


def test_label_values_are_bounded():
    for i in range(metrics.MAX_LABEL_VALUES + 50):
        metrics.bounded("test-metric", "type", f"type-{i}")
    assert metrics.bounded("test-metric", "type", "type-0") == "type-0"  # seen before: kept
    assert metrics.bounded("test-metric", "type", "a-new-one") == metrics.OTHER
