"""Stopping the servers the test suite starts, each in its own process group."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def stop_group(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGKILL when the test runner dies (Linux), so a runner killed
    mid-test leaves no server behind; elsewhere a no-op and teardown alone reaps children."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
