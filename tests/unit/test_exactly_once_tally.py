"""The exactly-once tests' judge (``tests.support.routers.tally``): which second executions are allowed."""

import pytest

from tests.support.routers import Execution, tally

KILLED_AT = 100.0


def execution(router: int, pid: int, begun: float, done: float | None) -> Execution:
    found = Execution("run", router, pid)
    found.begun, found.done = begun, done
    return found


@pytest.mark.parametrize("first, verdict", [
    (execution(1, 11, 99.0, None), "killed mid-action"),  # began before the kill, never completed
    (execution(1, 11, 99.0, 99.5), "killed mid-action"),  # completed inside the grace before the kill
    (execution(1, 11, 100.004, 101.0), "killed mid-action"),  # forked just before the kill, stamped after
    (execution(1, 11, 90.0, 95.0), "re-executed"),  # completed long before the kill: never again
    (execution(1, 11, 102.0, 103.0), "re-executed"),  # began well after its router died: not its
    (execution(2, 12, 99.0, 99.5), "re-executed"),  # its router was never killed
])
def test_a_second_execution_is_allowed_only_after_an_interrupted_one(first, verdict):
    second = execution(3, 13, 110.0, 111.0)
    judged = tally([first, second], {"run"}, kills={1: KILLED_AT})
    assert (judged.reexecuted == ["run"]) == (verdict == "re-executed")
    assert (judged.killed_mid_action == [first]) == (verdict == "killed mid-action")
