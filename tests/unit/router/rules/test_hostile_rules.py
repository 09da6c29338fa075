"""Rule files that are broken or hostile: each is refused with one line naming the file, never a
traceback, a hang or a silently different rule set.

The inputs are the ones found by probing rule loading: a bad byte, YAML nested 20,000 levels, a
700-byte alias bomb, repeated keys, an unknown ``apiVersion``, a misspelt CEL function, an
emptied file.
"""

from __future__ import annotations

import pytest

from router import errors
from router.plugins import catalog
from router.rules import loading as rules
from router.rules import yamlfile

RULE = """\
apiVersion: trigger-router.dev/v1alpha1
kind: TriggerRule
metadata: {name: web-smoke}
spec:
  filters: [{exact: {type: com.example.deployed}}]
  action: {exec: {command: [echo, "{{ data.app }}"]}}
"""


def alias_bomb() -> bytes:
    """Nine levels of nine aliases each: 9**9 (387 million) scalars once expanded, in ~700 bytes."""
    lines = ["kind: TriggerRule", "metadata: {name: bomb}", "spec:", "  action: {exec: {command: [x]}}",
             "  filters: []", "  description: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]", "x:"]
    for level in range(1, 9):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


CASES = {
    # name: (file content, words the one-line error must contain)
    "bad byte in a name": (b"kind: TriggerRule\nmetadata: {name: \xff}\n", ["not UTF-8", "0xff", "line 2"]),
    "nested 20,000 levels (flow)": (b"a: " + b"[" * 20_000, ["not valid YAML", "nesting"]),
    "nested 20,000 levels (block)": (b"a:\n" + b"- " * 20_000 + b"x\n", ["nested more than 64 levels"]),
    "alias bomb": (alias_bomb(), ["alias", "1,000,000"]),
    "a key twice": (RULE.replace("spec:\n", "spec:\n  filters: []\n").encode(), ["'filters' appears twice", "line"]),
    "NUL byte": (RULE.replace("web-smoke", "web\0smoke").encode(), ["U+0000", "line 3"]),
    "unclosed flow": (b"kind: TriggerRule\nmetadata: {name: x\n", ["not valid YAML", "line"]),
    "undefined alias": (b"kind: TriggerRule\nmetadata: *nothing\n", ["undefined alias"]),
    "a Python tag": (b"kind: !!python/object/apply:os.system [id]\n", ["not valid YAML"]),
    "unknown apiVersion": (RULE.replace("trigger-router.dev/v1alpha1", "v2").encode(),
                           ["field apiVersion", "unknown apiVersion 'v2'"]),
    "unknown CEL function in a filter": (RULE.replace("{exact: {type: com.example.deployed}}",
                                                      "{cel: 'type.startswith(\"com.\")'}").encode(),
                                         ["field spec.filters[0].cel", "unknown CEL function startswith()"]),
    "unknown CEL function in a template": (RULE.replace("data.app", "lower(data.app)").encode(),
                                           ["spec.action.exec.command[1]", "unknown CEL function lower()"]),
    "an empty file": (b"", ["has no rules", "rules.allow_empty"]),
    "only comments": (b"# nothing yet\n---\n", ["has no rules"]),
    "a name with a newline": (b"kind: TriggerRule\nmetadata: {name: \"a\\nb\"}\nspec: {action: {exec: {command: [x]}}}\n",
                              ["rule #1", "metadata.name"]),
    "too large": (b"# " + b"x" * yamlfile.MAX_FILE_BYTES + b"\n", ["more than the 4,194,304"]),
}


@pytest.mark.parametrize("content,words", CASES.values(), ids=CASES.keys())
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, words):
    path = tmp_path / "rules.yaml"
    path.write_bytes(content)
    with pytest.raises(errors.RuleError) as caught:
        rules.load([str(path)], catalog.load().actions)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for word in words:
        assert word in message, message


def test_the_valid_rule_the_cases_start_from_loads(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULE)
    assert [r.name for r in rules.load([str(tmp_path / "rules.yaml")], catalog.load().actions)] == ["web-smoke"]


def test_anchors_and_aliases_within_limits_still_work(tmp_path):
    (tmp_path / "rules.yaml").write_text(
        "kind: TriggerRule\nmetadata: {name: first}\n"
        "spec:\n  filters: &shared [{exact: {type: com.example.deployed}}]\n  action: {exec: {command: [x]}}\n"
        "---\nkind: TriggerRule\nmetadata: {name: second}\n"
        "spec:\n  filters: [{exact: {type: com.example.deployed}}]\n  action: {exec: {command: [y]}}\n")
    loaded = rules.load([str(tmp_path / "rules.yaml")], catalog.load().actions)
    assert [r.name for r in loaded] == ["first", "second"]
    anchored = "kind: TriggerRule\nmetadata: {name: a}\nspec:\n  filters: &f [{exact: {type: t}}]\n" \
               "  action: {exec: {command: [x]}}\n  description: x\n"
    (tmp_path / "rules.yaml").write_text(anchored + "---\n" + anchored.replace("name: a", "name: b")
                                         .replace("&f [{exact: {type: t}}]", "[{any: [{exact: {type: t}}]}]"))
    assert len(rules.load([str(tmp_path / "rules.yaml")], catalog.load().actions)) == 2


def test_a_missing_apiversion_still_means_this_release(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULE.replace("apiVersion: trigger-router.dev/v1alpha1\n", ""))
    assert len(rules.load([str(tmp_path / "rules.yaml")], catalog.load().actions)) == 1


def test_empty_files_and_directories_load_only_when_allowed(tmp_path):
    empty_dir = tmp_path / "none"
    empty_dir.mkdir()
    with pytest.raises(errors.RuleError, match="no rule files found"):
        rules.load([str(empty_dir)], catalog.load().actions)
    assert rules.load([str(empty_dir)], catalog.load().actions, allow_empty=True) == []
    (empty_dir / "later.yaml").write_text("# rules come later\n")
    with pytest.raises(errors.RuleError, match="has no rules"):
        rules.load([str(empty_dir)], catalog.load().actions)
    assert rules.load([str(empty_dir)], catalog.load().actions, allow_empty=True) == []


def test_every_function_the_checker_knows_is_one_the_engine_knows():
    """Probes the CEL engine: a name it cannot resolve fails with "Undefined ... 'name'" on every call shape.

    The functions trigger-router registers exist only on the contexts ``celexpr.variables`` builds,
    so every name is probed against such a context (a cached one and a correlated run's), the
    engine's own ones included."""
    import cel

    from router.model import events
    from router.rules import celexpr

    shapes = ['{n}("a")', '{n}(1)', '"a".{n}("a")', '"a".{n}()', 'timestamp("2024-01-01T00:00:00Z").{n}()']
    event = events.make({"id": "probe", "source": "/tests", "type": "t"}, {})

    def engine_knows(name: str, context) -> bool:
        for shape in shapes:
            try:
                cel.compile(shape.format(n=name)).execute(context)
                return True
            except ValueError:
                continue
            except Exception as exc:  # noqa: BLE001 - any error but "undefined" means it resolved
                if not str(exc).startswith(f"Undefined variable or function: '{name}'"):
                    return True
        return False

    for context in (celexpr.variables(event).context, celexpr.variables(event, {"events": {}}).context):
        assert [name for name in sorted(celexpr.FUNCTIONS) if not engine_knows(name, context)] == []
        assert not engine_knows("startswith", context) and not engine_knows("lower", context)
    assert set(celexpr.REGISTERED) <= celexpr.FUNCTIONS
    assert not any(engine_knows(name, cel.Context()) for name in celexpr.REGISTERED)  # ours, not the engine's
