"""Child processes that never outlive the harness that started them.

A control plane left running after a test session holds ports, memory and an etcd directory,
and makes the next session's failures confusing. So every component:

- runs in its own session/process group, and is stopped by PID: SIGTERM to the group, then
  SIGKILL after a grace period, and reaped;
- on Linux, gets PR_SET_PDEATHSIG=SIGKILL, so the kernel kills it even when the harness is
  SIGKILLed and no Python code gets to run (only when spawned from the main thread: the signal
  fires when the spawning *thread* ends);
- is covered by `atexit` and by SIGTERM/SIGHUP handlers installed once (pytest turns SIGINT into
  KeyboardInterrupt and runs fixture teardown by itself), which run the registered stop hooks.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

_stop_hooks: dict[int, Callable[[], None]] = {}
_handlers_installed = False


def spawn(argv: list[str], log_path: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start `argv` with stdout and stderr appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
            env={**os.environ, **(env or {})}, start_new_session=True,
            preexec_fn=parent_death_preexec())


def parent_death_preexec():
    """A Popen `preexec_fn` that makes the child die with us, or None where that can't work."""
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    return _set_parent_death_signal


def terminate(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it if still there after `grace` seconds; reap it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)  # the group: a component's own children go too
        except ProcessLookupError:
            proc.poll()
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def on_exit(owner: object, stop: Callable[[], None]) -> None:
    """Run `stop` at interpreter exit or on SIGTERM/SIGHUP unless `forget(owner)` came first."""
    _install_handlers()
    _stop_hooks[id(owner)] = stop


def forget(owner: object) -> None:
    _stop_hooks.pop(id(owner), None)


def _run_stop_hooks() -> None:
    for stop in list(_stop_hooks.values()):
        stop()


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_run_stop_hooks)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set there; atexit and PDEATHSIG still apply
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_DFL:
            continue  # somebody else owns this signal (e.g. `python -m tests.kubeplane up`)

        def handler(signum, frame):
            _run_stop_hooks()
            signal.signal(signum, signal.SIG_DFL)  # then die of the signal as we would have
            os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


# Looked up here, not in the forked child: a child of a threaded parent should do as little as
# possible between fork and exec (no dlopen, no imports).
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
