"""The same task module (``tests.tasks``) run by a ``cloudq worker`` process and by the app's
Lambda worker under the emulated trigger: the same calls give the same results and errors."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from cloudq import CloudQ, TaskError
from tests.e2e.conftest import LambdaFactory, WorkerFactory
from tests.tasks import Point

WHEN = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("add", (2, 3)),
    ("echo", ({"nested": [1, "two", None, 3.5]},)),
    ("typed", (WHEN, KEY, Decimal("12.50"), Point(x=1, y=2))),
    ("when", (WHEN,)),
    ("retry_once", ()),
    ("always_fails", ("both",)),
    ("returns_object", ()),
]


def _outcome(app: CloudQ, name: str, args: tuple[Any, ...]) -> Any:
    """What a caller sees: the value, or the remote error's type and message."""
    try:
        return app.tasks[name].delay(*args).get(timeout=60)
    except TaskError as exc:
        return (exc.error_type, exc.error_message)


EXPECTED = {
    "add": 5,
    "echo": {"nested": [1, "two", None, 3.5]},
    "typed": {"when": WHEN.isoformat(), "key": str(KEY), "amount": "12.50", "x": "1"},
    "when": WHEN + dt.timedelta(days=1),
    "retry_once": 2,
    "always_fails": ("FlakyError", "failing on purpose both (gave up after 3 attempts)"),
    "returns_object": ("ResultError",),
}


@pytest.mark.parametrize("runner", ["worker", "lambda"])
def test_the_same_tasks_give_the_same_results_under_worker_and_lambda(
    runner: str, e2e_app: CloudQ, start_worker: WorkerFactory, lambda_app: LambdaFactory
) -> None:
    if runner == "worker":
        app = e2e_app
        start_worker("-c", "4")
    else:
        app = lambda_app()
    got = {name: _outcome(app, name, args) for name, args in CALLS}
    # The result of a returned non-JSON value names the problem; its exact text is the executor's
    error_type, message = got.pop("returns_object")
    assert (error_type,) == EXPECTED["returns_object"]
    assert "object" in message
    assert got == {name: value for name, value in EXPECTED.items() if name != "returns_object"}


#: Countdowns under a second, between two whole seconds, and just under a whole second.
COUNTDOWNS = (0.3, 1.5, 5.9)
#: How late a task may start after its eta: SQS delays are whole seconds, rounded up.
MAX_LATE_SECONDS = 1.5


@pytest.mark.parametrize("runner", ["worker", "lambda"])
def test_a_countdown_never_starts_before_its_eta_nor_long_after_it(
    runner: str, e2e_app: CloudQ, start_worker: WorkerFactory, lambda_app: LambdaFactory
) -> None:
    # Given a running worker (or the Lambda worker), warmed up by one task
    if runner == "worker":
        app = e2e_app
        start_worker("-c", "4")
    else:
        app = lambda_app()
    assert app.tasks["add"].delay(1, 1).get(timeout=60) == 2
    # When tasks are sent with countdowns (an eta each)
    now = time.time()
    etas = [now + countdown for countdown in COUNTDOWNS]
    results = [app.tasks["started_at"].apply_async(eta=eta) for eta in etas]
    # Then each starts no earlier than its eta, and at most 1.5 s after it
    late = [result.get(timeout=30) - eta for result, eta in zip(results, etas, strict=True)]
    print(f"{runner}: started after the eta by " + ", ".join(f"{s:.3f} s" for s in late))
    assert all(0 <= seconds <= MAX_LATE_SECONDS for seconds in late), late
