"""Every rule in docs/drift-and-gates.md loads as written: a recipe that does not load is a broken promise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from router.plugins import catalog
from router.rules import loading as rules

DOC = Path(__file__).resolve().parents[3] / "docs" / "drift-and-gates.md"
BLOCK = re.compile(r"(?:<!-- recipe: (?P<name>[\w-]+) -->\n)?```yaml\n(?P<body>.*?)```", re.S)


def recipes() -> dict[str, str]:
    """Rule name -> the YAML of its block, in the order of the page."""
    found = {}
    for block in BLOCK.finditer(DOC.read_text()):
        name = re.search(r"metadata: \{name: ([\w-]+)\}", block["body"])[1]
        found[name] = block["body"]
    return found


def recipe(name: str) -> str:
    return recipes()[name]


def test_the_page_has_its_four_recipes():
    assert list(recipes()) == ["alert-on-kubectl-edit", "release-manifests-gate", "release-gate", "drift-after-deploy"]


@pytest.mark.parametrize("name", list(recipes()))
def test_each_recipe_loads(name, tmp_path):
    path = tmp_path / f"{name}.yaml"
    path.write_text(recipe(name))
    [rule] = rules.load([str(path)], catalog.load().actions)
    assert rule.name == name
