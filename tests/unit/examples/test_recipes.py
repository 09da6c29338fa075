"""The recipes in ``examples/recipes`` load as rules (their end-to-end test needs a cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.plugins import catalog
from router.rules import loading as rules

RECIPES = sorted((Path(__file__).resolve().parents[3] / "examples" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads(path):
    loaded = rules.load([str(path)], catalog.load().actions)
    assert loaded and all(rule.action.name in {"metricGate", "rollback"} for rule in loaded)
