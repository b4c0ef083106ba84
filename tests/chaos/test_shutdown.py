"""Scenario 4: SIGTERM mid-batch: every unstarted message is visible again within 1 s; running
ones finish.

The worker asks SQS only for as many messages as it has free slots, so with every slot busy it
holds no unstarted message at the signal (``busy``). The hand-back path runs when a receive is
in flight at the signal and brings messages back after it (``receiving``): free slots, a long
poll, and tasks sent right after the signal. Workers consume only the default queue, whose
counts the test watches.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from cloudq import CloudQ, State
from cloudq.core.config import WORKER_WAIT_SECONDS
from tests.chaos.conftest import (
    WorkerFactory,
    enqueue,
    queue_url,
    side_effects,
    sqs_client,
    states,
    succeeded,
    wait_until,
    worker_log,
)

TASKS = 20
RUNNING = 2
#: Long enough that the running tasks are still running well after the signal.
TASK_SECONDS = 3.0
#: Far longer than the test: a message is visible again only if the worker hands it back.
VISIBILITY_SECONDS = 60
GRACE_SECONDS = 10
HAND_BACK_LIMIT_SECONDS = 1.0
#: How long after the signal the queue is watched (every unstarted message must stay visible).
WATCH_SECONDS = 2.0


def _queue_counts(url: str) -> tuple[int, int]:
    """(visible, in flight) on the queue, as SQS reports them."""
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _watch(url: str, visible: int, in_flight: int, since: float) -> tuple[float, tuple[int, int]]:
    """Sample the queue for WATCH_SECONDS after ``since``; return the first moment from which
    ``visible`` messages are visible and at most ``in_flight`` in flight in every later sample
    (inf if not at the end), and the last (visible, in flight) sample that was not."""
    settled_at, unsettled = float("inf"), (visible, in_flight)
    while time.monotonic() - since < WATCH_SECONDS:
        counts = _queue_counts(url)
        now = time.monotonic() - since
        if counts[0] == visible and counts[1] <= in_flight:
            settled_at = min(settled_at, now)
        else:
            settled_at, unsettled = float("inf"), counts
        time.sleep(0.01)
    return settled_at, unsettled


@pytest.mark.parametrize("receiving", [False, True], ids=["busy", "receiving"])
def test_sigterm_hands_back_unstarted_messages_at_once_and_lets_running_tasks_finish(
    chaos_app: CloudQ, chaos_env: dict[str, str], start_worker: WorkerFactory, tmp_path: Path, receiving: bool
) -> None:
    # Given a worker with a long visibility timeout, running 2 slow tasks: either all its slots
    # busy and 18 more tasks queued, or 2 slots free and long-polling an empty queue
    url = queue_url(chaos_app, "default")
    concurrency = RUNNING * 2 if receiving else RUNNING
    worker = start_worker(
        "-Q",
        "default",
        "-c",
        str(concurrency),
        "--visibility-timeout",
        str(VISIBILITY_SECONDS),
        "--grace",
        str(GRACE_SECONDS),
        *(["--wait", "20"] if receiving else []),
    )
    ids = [str(uuid.uuid4()) for _ in range(TASKS)]
    calls = [([TASK_SECONDS, task_id], task_id) for task_id in ids]
    enqueue(chaos_app, "sleep", calls[:RUNNING] if receiving else calls)
    assert wait_until(lambda: len(side_effects(chaos_env, "sleep")) >= RUNNING, timeout=20, interval=0.05), (
        worker_log(tmp_path)
    )
    time.sleep(0.5)  # a worker that prefetched would hold unstarted messages by now
    in_flight_before = _queue_counts(url)[1]

    # When the worker gets SIGTERM while both tasks run (and, receiving, the rest are sent at once)
    started = side_effects(chaos_env, "sleep")
    worker.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    if receiving:
        enqueue(chaos_app, "sleep", calls[RUNNING:])

    # Then within 1 s only the running messages are in flight: every other one is visible
    unstarted = [task_id for task_id in ids if task_id not in started]
    settled_at, unsettled = _watch(url, len(unstarted), len(started), signalled_at)
    # And the running tasks finish, and the worker exits 0 within the grace period
    finished = wait_until(lambda: succeeded(chaos_app, started) == len(started), GRACE_SECONDS, interval=0.05)
    finished_after = time.monotonic() - signalled_at
    exit_code = worker.wait(timeout=GRACE_SECONDS + 5)
    exited_after = time.monotonic() - signalled_at
    log = worker_log(tmp_path)
    stats = re.search(r"handed_back=(\d+)", log)
    handed_back = int(stats.group(1)) if stats else -1
    after_exit = side_effects(chaos_env, "sleep")
    counts_after_exit = _queue_counts(url)
    unstarted_states = Counter(states(chaos_app, unstarted).values())

    # And a second worker runs every remaining task, each exactly once
    second = start_worker("-Q", "default", "-c", str(TASKS), "--visibility-timeout", str(VISIBILITY_SECONDS))
    wait_until(lambda: succeeded(chaos_app, ids) == len(ids), timeout=15, interval=0.2)
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=GRACE_SECONDS)
    runs = Counter(side_effects(chaos_env, "sleep"))
    mode = "receiving" if receiving else "busy"
    print(
        f"\n[chaos shutdown/{mode}] tasks={TASKS} concurrency={concurrency} running_at_signal={len(started)} "
        f"in_flight_before={in_flight_before} signal->visible={settled_at:.3f}s "
        f"(unstarted visible={len(unstarted)}, last unsettled sample {unsettled}) "
        f"handed_back_by_worker={handed_back} "
        f"running_finished={succeeded(chaos_app, started)}/{len(started)} after {finished_after:.1f}s "
        f"exit_code={exit_code} after {exited_after:.1f}s "
        f"started_after_signal={len(after_exit) - len(started)} "
        f"second_worker_done={succeeded(chaos_app, ids)}/{len(ids)} max_runs={max(runs.values())}"
    )
    assert len(started) == RUNNING, f"{len(started)} tasks started, {RUNNING} expected"
    assert in_flight_before == RUNNING, f"the worker held {in_flight_before} messages for {RUNNING} tasks"
    assert settled_at <= HAND_BACK_LIMIT_SECONDS, f"last unsettled sample {unsettled}\n{log}"
    if receiving:
        assert handed_back > 0, f"no receive was in flight at the signal: nothing handed back\n{log}"
    assert finished, log
    assert exit_code == 0, log
    assert exited_after <= GRACE_SECONDS, log
    # No task started after the signal; the others were left untouched on the queue
    assert after_exit == started, log
    assert counts_after_exit == (len(unstarted), 0)
    assert unstarted_states == Counter({State.PENDING: len(unstarted)})
    assert succeeded(chaos_app, ids) == len(ids), worker_log(tmp_path, 1)
    assert set(runs) == set(ids)
    assert max(runs.values()) == 1, [task_id for task_id, count in runs.items() if count > 1]


#: Far below what waiting out a running task takes.
PROMPT_EXIT_SECONDS = 5.0
#: After the signal, past the 1 s a stopping worker used to give its poll before abandoning it.
SEND_AFTER_SIGNAL_SECONDS = 1.5
#: Far below the 30 s a message handed to an abandoned poll would stay hidden.
PROMPT_START_SECONDS = 5.0


def _polling(tmp_path: Path, index: int = 0) -> bool:
    """The worker printed its banner: it is about to long-poll (or polling)."""
    return "cloudq worker:" in worker_log(tmp_path, index)


def test_an_idle_worker_waits_for_its_long_poll_and_hands_back_what_it_receives(
    chaos_app: CloudQ, chaos_env: dict[str, str], start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # Given an idle worker just into a long poll of the default wait
    wait = f"{WORKER_WAIT_SECONDS:g}"
    worker = start_worker("-Q", "default", "--wait", wait)
    assert wait_until(lambda: _polling(tmp_path), timeout=20, interval=0.05), worker_log(tmp_path)
    time.sleep(0.5)
    # When it gets SIGTERM, and a task is sent 1.5 s later while that poll is still open
    worker.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    time.sleep(SEND_AFTER_SIGNAL_SECONDS)
    result = chaos_app.tasks["record"].delay("after-stop")
    exit_code = worker.wait(timeout=WORKER_WAIT_SECONDS + 5)
    exited_after = time.monotonic() - signalled_at
    # Then it exits cleanly within the wait, having handed the message back (its poll took it)
    print(f"\n[chaos shutdown/idle] exit_code={exit_code} after {exited_after:.2f}s")
    assert exit_code == 0, worker_log(tmp_path)
    assert exited_after <= WORKER_WAIT_SECONDS + 1, worker_log(tmp_path)
    assert "handed_back=1" in worker_log(tmp_path), worker_log(tmp_path)
    # And the next worker runs it at once, not after the visibility timeout
    start_worker("-Q", "default")
    assert result.get(timeout=PROMPT_START_SECONDS) == "after-stop"
    assert side_effects(chaos_env, "record") == ["after-stop"]


def test_a_second_signal_exits_at_once_and_the_running_task_comes_back(
    chaos_app: CloudQ, chaos_env: dict[str, str], start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # Given a worker running a 10 s task, stopping gracefully (grace 30 s) after a SIGTERM
    worker = start_worker("-Q", "default", "--visibility-timeout", "2", "--grace", "30")
    result = chaos_app.tasks["sleep"].delay(10.0, "long")
    assert wait_until(lambda: bool(side_effects(chaos_env, "sleep")), timeout=20, interval=0.05)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # When it gets a second signal
    worker.send_signal(signal.SIGINT)
    signalled_at = time.monotonic()
    exit_code = worker.wait(timeout=30)
    exited_after = time.monotonic() - signalled_at
    print(f"\n[chaos shutdown/second signal] exit_code={exit_code} after {exited_after:.2f}s")
    # Then it exits at once, saying so, without waiting for the task
    assert exited_after < PROMPT_EXIT_SECONDS, worker_log(tmp_path)
    assert exit_code == 128 + signal.SIGINT
    assert "second signal: exiting now; 1 running task(s)" in worker_log(tmp_path)
    # And the task's message comes back after its visibility timeout and runs again
    start_worker("-Q", "default")
    assert result.get(timeout=40) == "long"
    assert side_effects(chaos_env, "sleep") == ["long", "long"]
