"""``--version``: the installed package's version, or the checkout's marked ``+source``."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from router.cli import main

ROOT = Path(__file__).resolve().parents[4]


def test_the_installed_version():
    assert main.version() == importlib.metadata.version("trigger-router")


def test_a_checkout_that_is_not_installed_says_so(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert main.version() == f"{declared}+source"
