"""Function refs found at rule load, and a changed module re-imported at a reload, all or nothing."""

from __future__ import annotations

import json
import textwrap

import pytest

from handlers.functions import loading
from router import errors
from router.plugins import catalog
from router.rules import loading as rules


def write(path, version: str, extra: str = "") -> None:
    path.write_text(textwrap.dedent(f"""
        VERSION = {version!r}
        {extra}
        async def check(event, ctx):
            return True
    """))


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"fnmod_{tmp_path.name.replace('-', '_')}"
    yield tmp_path, name


def load(tmp_path, ref: str) -> list[rules.Rule]:
    path = tmp_path / "rule.yaml"
    path.write_text(json.dumps({"kind": "TriggerRule", "metadata": {"name": "r"}, "spec": {
        "action": {"function": {"ref": ref}}}}))
    return rules.load([str(path)], catalog.load().actions)


def test_a_changed_module_is_imported_again_at_the_next_rule_load_only(module_dir):
    tmp_path, name = module_dir
    source = tmp_path / f"{name}.py"
    write(source, "1")
    load(tmp_path, f"{name}:check")
    first = loading.resolve(f"{name}:check")
    write(source, "2", "# longer, so the size changes even within one mtime tick")
    assert loading.resolve(f"{name}:check") is first, "a run never imports"
    load(tmp_path, f"{name}:check")
    assert loading.resolve(f"{name}:check") is not first
    assert loading._modules[name][0].VERSION == "2"


def test_a_failing_edit_is_rejected_and_the_previous_code_keeps_serving(module_dir):
    tmp_path, name = module_dir
    source = tmp_path / f"{name}.py"
    write(source, "1")
    load(tmp_path, f"{name}:check")
    kept = loading.resolve(f"{name}:check")
    write(source, "2", "raise RuntimeError('half-written edit')")
    with pytest.raises(errors.RuleError) as raised:
        load(tmp_path, f"{name}:check")
    assert raised.value.field == "spec.action.function.ref"
    assert "re-importing changed" in raised.value.message and "RuntimeError: half-written edit" in raised.value.message
    assert loading.resolve(f"{name}:check") is kept


@pytest.mark.parametrize("ref, message", [
    ("not a ref", "'not a ref' is not a reference such as package.module:function"),
    ("json:nope", "module json ("),
    ("json.decoder:JSONDecodeError.nope", "has no attribute 'nope'"),
    ("json:__doc__", "json:__doc__ is a str, not a callable"),
])
def test_refs_to_installed_modules_are_checked_too(tmp_path, ref, message):
    with pytest.raises(errors.RuleError) as raised:
        load(tmp_path, ref)
    assert message in raised.value.message and raised.value.field == "spec.action.function.ref"
