"""What a function returns, as the run's outcome (README: the result mapping)."""

from __future__ import annotations

import pytest

from handlers.actions import function
from router.plugins import errors
from router.functions import Check, Result

PASSED = Check("health", True, detail="200")
FAILED = Check("version", False, error="1.2 != 1.3")


@pytest.mark.parametrize("returned, recorded, outcome, reason, names", [
    (True, [], "success", "passed", []),
    (None, [], "success", "passed", []),
    (True, [PASSED], "success", "1 check(s) passed", ["health"]),
    (False, [], "failure", "the function returned False", []),
    (False, [PASSED, FAILED], "failure", "version: 1.2 != 1.3", ["health", "version"]),
    (Result.success("fine"), [PASSED], "success", "fine", ["health"]),
    (Result.failure("wrong version", [FAILED]), [PASSED], "failure", "wrong version", ["health", "version"]),
    (Result.failure("recorded once", [FAILED]), [FAILED], "failure", "recorded once", ["version"]),
])
def test_result_mapping(returned, recorded, outcome, reason, names):
    result = function.outcome(returned, recorded)
    assert (result.outcome, result.reason, [c["name"] for c in result.checks]) == (outcome, reason, names)
    assert result.severity == ("high" if outcome == "failure" else None)


def test_anything_else_is_a_permanent_error():
    with pytest.raises(errors.PermanentError, match="returns Result, bool or None, not dict"):
        function.outcome({"ok": True}, [])


def test_a_check_publishes_its_fields():
    assert Check("probe", False, error="503", data={"status": 503}).as_dict() == {
        "name": "probe", "passed": False, "status": 503, "error": "503"}
