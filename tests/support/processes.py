"""Stopping the servers the test suite starts, each in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess


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
