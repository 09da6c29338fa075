"""Rules from a ConfigMap mounted as a directory, laid out exactly as the kubelet does it.

The kubelet's atomic writer puts the keys' files in a hidden timestamped directory, points
``..data`` at it and links each key to ``..data/<key>``; an update writes a new timestamped
directory, swaps ``..data`` with a rename, fixes the key links and removes the old directory.
Walking that recursively found each rule twice, and ``serve`` exited 2 as soon as the ConfigMap
held one rule.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from pathlib import Path

from router.plugins import catalog
from router.rules import loading as rules
from router.rules.reload import RuleReloader

RULE = """\
kind: TriggerRule
metadata: {{name: {name}}}
spec:
  filters: [{{exact: {{type: com.example.{name}}}}}]
  action: {{exec: {{command: [echo]}}}}
"""

_stamps = itertools.count()


def project(directory: Path, files: dict[str, str]) -> None:
    """One kubelet update of a ConfigMap volume: ``files`` is the ConfigMap's data after it."""
    directory.mkdir(exist_ok=True)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    stamp = directory / f"..2026_12_01_14_00_{next(_stamps):02d}.123456789"
    stamp.mkdir()
    for key, content in files.items():
        (stamp / key).write_text(content)
    os.symlink(stamp.name, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / "..data")  # the atomic swap
    for key in files:
        if not (directory / key).is_symlink():
            os.symlink(f"..data/{key}", directory / key)
    for entry in directory.iterdir():  # keys no longer in the ConfigMap lose their link
        if entry.is_symlink() and entry.name != "..data" and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    if old:
        shutil.rmtree(directory / old)


def names(paths: list[str]) -> list[str]:
    return sorted(r.name for r in rules.load(paths, catalog.load().actions))


def test_each_rule_of_a_mounted_configmap_loads_once(tmp_path):
    mount = tmp_path / "rules"
    project(mount, {"web.yaml": RULE.format(name="web"), "api.yaml": RULE.format(name="api")})
    assert sorted(p.name for p in mount.iterdir()) == ["..2026_12_01_14_00_00.123456789", "..data", "api.yaml",
                                                        "web.yaml"]
    assert names([str(mount)]) == ["api", "web"]


def test_hidden_entries_are_skipped_and_links_to_one_file_load_it_once(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.yaml").write_text("not: a rule\n")
    (tmp_path / ".draft.yaml").write_text(RULE.format(name="draft"))
    (tmp_path / "web.yaml").write_text(RULE.format(name="web"))
    os.symlink("web.yaml", tmp_path / "web-again.yaml")
    assert names([str(tmp_path)]) == ["web"]
    assert names([str(tmp_path), str(tmp_path / "web.yaml")]) == ["web"]


async def test_an_update_swap_is_reloaded_and_removed_keys_drop_their_rules(tmp_path):
    mount = tmp_path / "rules"
    project(mount, {"web.yaml": RULE.format(name="web"), "api.yaml": RULE.format(name="api")})
    current = {}
    reloader = RuleReloader([str(mount)], catalog.load().actions, lambda m: current.update(m=m), interval=0.05)
    current["m"] = reloader.load()
    task = asyncio.create_task(reloader.run())
    try:
        # Same sizes as before, so only the swap itself can tell the files changed.
        project(mount, {"web.yaml": RULE.format(name="wex"), "api.yaml": RULE.format(name="apx")})
        async with asyncio.timeout(10):
            while sorted(r.name for r in current["m"].rules) != ["apx", "wex"]:
                await asyncio.sleep(0.02)
        project(mount, {"web.yaml": RULE.format(name="wex")})
        async with asyncio.timeout(10):
            while sorted(r.name for r in current["m"].rules) != ["wex"]:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
    assert len([p for p in mount.iterdir() if p.name.startswith("..2026")]) == 1
