"""Scenario 1: a worker SIGKILLed every few seconds and restarted until all tasks are done."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from pathlib import Path

from cloudq import CloudQ, State
from tests.chaos.conftest import Scale, WorkerFactory, enqueue, side_effects, states, succeeded, wait_until

CONCURRENCY = 8
#: Short enough for many tasks per worker life, long enough that kills land mid-task.
TASK_SECONDS = 0.05
DEADLINE_SECONDS = 600


def test_sigkill_loop_loses_nothing_and_reruns_only_tasks_in_flight(
    chaos_app: CloudQ, chaos_env: dict[str, str], start_worker: WorkerFactory, scale: Scale
) -> None:
    # Given idempotent tasks: each run is logged, the side effect is keyed by the task id
    ids = [str(uuid.uuid4()) for _ in range(scale.kill_tasks)]
    enqueue(chaos_app, "once", [([TASK_SECONDS], task_id) for task_id in ids])
    rng = random.Random(1)
    started = time.monotonic()
    kills = 0

    # When a worker is SIGKILLed every few seconds and restarted until all are done
    while True:
        assert time.monotonic() - started < DEADLINE_SECONDS, f"not done after {kills} kills"
        worker = start_worker("-c", str(CONCURRENCY), "--visibility-timeout", "3")
        life = rng.uniform(*scale.kill_every)
        if wait_until(lambda: succeeded(chaos_app, ids) == len(ids), life, interval=0.5):
            break
        worker.kill()
        worker.wait()
        kills += 1
    elapsed = time.monotonic() - started

    # Then no task is lost: every result is SUCCESS in DynamoDB
    final = states(chaos_app, ids)
    lost = [task_id for task_id, state in final.items() if state is not State.SUCCESS]
    # And each task's side effect was recorded exactly once, under the id it was sent with
    effects = sorted(path.name for path in (Path(chaos_env["CLOUDQ_TEST_LOG_DIR"]) / "once").iterdir())
    assert effects == sorted(ids)
    # And only runs cut by a kill ran again
    runs = Counter(side_effects(chaos_env, "once-runs"))
    never_ran = [task_id for task_id in ids if runs[task_id] == 0]
    duplicated = sum(count - 1 for count in runs.values() if count > 1)
    print(
        f"\n[chaos kill loop] tasks={len(ids)} kills={kills} lost={len(lost)} effects={len(effects)} "
        f"duplicated={duplicated} (tasks run twice or more: {sum(1 for c in runs.values() if c > 1)}) "
        f"elapsed={elapsed:.1f}s"
    )
    assert kills >= 2, "the run ended before the loop killed the worker twice: make it longer"
    assert lost == []
    assert never_ran == []
    assert set(runs) == set(ids)
    assert duplicated <= kills * CONCURRENCY
