"""Router processes as users run them: killed mid-run, and two sharing the work.

Counted in executions of the action (``tests.support.routers.ExecLog``), not in outcome ids the
bus deduplicates; waits are on consumer info and run states, never on a fixed sleep.
"""

from __future__ import annotations

from router.engine import runs
from tests.support import routers
from tests.support.routers import CLI, start_router, stop_router  # noqa: F401  (other tests start routers too)


async def test_router_killed_mid_run_finishes_it_exactly_once(nats_server, tmp_path, free_port):
    log = routers.ExecLog(tmp_path / "exec.log")
    rules = routers.exec_rule(tmp_path, log.path)
    first = start_router(nats_server.url, rules, free_port, tmp_path, "first")
    second = None
    try:
        async with routers.connected(nats_server.url) as probe:
            subscribed = await routers.wait_for(probe.subscribed, bool, 60)
        assert subscribed.ok, f"never subscribed; router log:\n{routers.log_tail(tmp_path, 'first')}"
        [event] = await routers.publish_events(nats_server.url, 1, "kill", lambda i: {"sleep": 3})
        run = runs.run_id(routers.RULE, event)

        async def begun():
            return log.begun()[run]
        began = await routers.wait_for(begun, lambda n: n == 1, 30)
        assert began.ok, f"the action never began; router log:\n{routers.log_tail(tmp_path, 'first')}"
        killed = {first.pid: routers.kill_router(first)}
        second = start_router(nats_server.url, rules, free_port, tmp_path, "second")
        async with routers.connected(nats_server.url) as probe:
            # ack_wait is 2s: the run is redelivered to the second router. Once its message is
            # acknowledged it is gone from the work queue, so no further execution can come.
            done = await routers.wait_finished(probe, {run}, timeout=30)
            exited = await routers.actions_exited(log)
            states, finished = await probe.states(), await probe.finished()
            announced = await probe.announced()
    finally:
        stop_router(first)
        if second:
            stop_router(second)
    executions = log.executions()
    count = routers.tally(executions, {run}, killed, announced)
    print(count.line("killed mid-run"))
    assert done.ok and exited.ok, f"{done.value} {exited.value}\n{routers.log_tail(tmp_path, 'second')}"
    assert not count.reexecuted and not count.never_completed, count.line("killed mid-run")
    # The action outlives its killed router (its own session) and completes; the second router runs
    # it once more, because nothing recorded that the first execution ended.
    assert [e.router for e in executions] == [first.pid, second.pid], executions
    assert len(count.killed_mid_action) == 1 and log.completed()[run] == 2, count.line("killed mid-run")
    assert routers.finished_by_run(finished) == {run: 1}
    assert finished[0]["subject"]["content"]["outcome"] == "success"
    assert states[run]["state"] == "finished" and states[run]["outcome"] == "success"


async def test_two_routers_share_500_events_exactly_once(nats_server, tmp_path):
    log = routers.ExecLog(tmp_path / "exec.log")
    rules = routers.exec_rule(tmp_path, log.path, begin=False)
    processes = [start_router(nats_server.url, rules, 0, tmp_path, f"router{i}") for i in range(2)]
    try:
        async with routers.connected(nats_server.url) as probe:
            # Both subscribed before the burst, so both get a share: each router keeps one pull
            # request waiting on each consumer.
            async def waiting():
                found = [await probe.consumer(*routers.EVENTS), await probe.consumer(*routers.RUNS)]
                return [info.num_waiting if info else 0 for info in found]
            subscribed = await routers.wait_for(waiting, lambda counts: min(counts) >= 2, 60)
            assert subscribed.ok, f"pull requests waiting (events, runs): {subscribed.value}"
            batch = await routers.publish_events(nats_server.url, 500, "burst")
            expected = {runs.run_id(routers.RULE, event) for event in batch}
            done = await routers.wait_finished(probe, expected, timeout=180)
            states, finished = await probe.states(), await probe.finished()
            announced = await probe.announced()
    finally:
        for process in processes:
            stop_router(process)
    executions = log.executions()
    count = routers.tally(executions, expected, announced=announced)
    print(count.line("two routers, 500 events"))
    assert done.ok, f"not all finished: {routers.state_summary(done.value[0], expected)}; {count.line('500')}"
    assert count.executions == 500 and count.per_run == dict.fromkeys(expected, 1), count.line("500")
    assert routers.finished_by_run(finished) == dict.fromkeys(expected, 1)
    assert {f["subject"]["content"]["outcome"] for f in finished} == {"success"}
    assert {s["state"] for s in states.values()} == {"finished"} and set(states) == expected
    assert {e.router for e in executions} == {p.pid for p in processes}, "both router processes executed runs"

