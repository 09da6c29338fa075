"""A short run of ``bench/fuzz.py`` (issue #13): the edge under a few hundred hostile requests.

The full 20,000-request run is a benchmark (its table is in README); this one keeps the suite
honest between runs: the same generator, a real nats-server and ``trigger-router serve``, and the
script's own verdict (exit 0: no answer >= 500, no non-JSON error body, no bus disconnect, nothing
stored for a refused request). A different seed than the README's run, so both sets get exercised.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_three_hundred_fuzzed_requests_leave_the_edge_and_the_bus_intact():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz.py"), "--requests", "300", "--seed", "7"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "| **answers >= 500 (NATS up throughout)** | **0** |" in run.stdout
