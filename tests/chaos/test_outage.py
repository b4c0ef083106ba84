"""Scenario 2: the network between the worker and AWS drops all traffic mid-run."""

from __future__ import annotations

import time
import uuid

import pytest

from cloudq import CloudQ, State
from tests.chaos.conftest import Scale, WorkerFactory, enqueue, states, succeeded, wait_until
from tests.chaos.fault_proxy import FaultProxy

TASK_SECONDS = 0.1
#: From restore until tasks complete again. The worker backs off at most 15 s between
#: receives, boto3's standard retry mode about as long: past this, recovery is broken.
RECOVERY_LIMIT_SECONDS = 40


@pytest.mark.parametrize("reset", [False, True], ids=["blackhole", "reset"])
def test_the_worker_rides_out_a_network_outage_without_restart(
    chaos_app: CloudQ, start_worker: WorkerFactory, fault_proxy: FaultProxy, scale: Scale, reset: bool
) -> None:
    # Given a worker draining tasks through the proxy
    worker = start_worker("-c", "8")
    before = [str(uuid.uuid4()) for _ in range(scale.outage_tasks)]
    enqueue(chaos_app, "sleep", [([TASK_SECONDS, task_id], task_id) for task_id in before])
    assert wait_until(lambda: succeeded(chaos_app, before) >= len(before) // 4, timeout=60)

    # When the network drops all traffic for a while, and tasks keep arriving meanwhile
    fault_proxy.cut(reset=reset)
    cut_at = time.monotonic()
    during = [str(uuid.uuid4()) for _ in range(scale.outage_tasks // 2)]
    enqueue(chaos_app, "sleep", [([TASK_SECONDS, task_id], task_id) for task_id in during])
    everything = before + during
    time.sleep(2)  # results being written as the cut began have landed or failed by now
    frozen = succeeded(chaos_app, everything)
    time.sleep(max(0.0, cut_at + scale.outage_seconds - time.monotonic()))
    # Then nothing completes while the network is cut (the cut is real)
    assert succeeded(chaos_app, everything) == frozen
    assert frozen < len(everything)
    fault_proxy.restore()
    restored_at = time.monotonic()

    # Then the same process recovers by itself, and nothing is lost
    assert wait_until(lambda: succeeded(chaos_app, everything) > frozen, timeout=RECOVERY_LIMIT_SECONDS)
    recovery = time.monotonic() - restored_at
    wait_until(lambda: succeeded(chaos_app, everything) == len(everything), timeout=120, interval=0.5)
    drained = time.monotonic() - restored_at
    lost = [task_id for task_id, state in states(chaos_app, everything).items() if state is not State.SUCCESS]
    mode = "reset" if reset else "blackhole"
    print(
        f"\n[chaos outage/{mode}] tasks={len(everything)} outage={scale.outage_seconds:.0f}s "
        f"done_before_cut={frozen} recovery={recovery:.1f}s (first task done after restore) "
        f"all_done_after={drained:.1f}s lost={len(lost)} worker_alive={worker.poll() is None}"
    )
    assert worker.poll() is None, "the worker process exited"
    assert lost == []
