"""The resource model: what provisioning and templates are made from."""

from __future__ import annotations

import pytest

from cloudq import ConfigurationError
from cloudq.infra import app_resources
from tests.tasks import make_app


def test_each_queue_gets_a_dead_letter_queue_and_redrive_headroom_over_its_retries() -> None:
    app = make_app("shop")
    resources = app_resources(app)
    queue, fifo = resources.queues
    assert (queue.name, queue.dead_letter_name) == ("shop-default", "shop-default-dlq")
    assert (fifo.name, fifo.dead_letter_name, fifo.fifo) == ("shop-orders.fifo", "shop-orders-dlq.fifo", True)
    attempts = max(t.max_retries + 1 for t in app.tasks.values() if t.queue == "default")
    assert queue.max_receive_count > attempts
    assert resources.table is not None and resources.table.name == "shop-results"
    assert resources.function is None


def test_lambda_queues_make_a_function_and_a_6x_visibility_timeout() -> None:
    app = make_app("shop", lambda_queues=("default",), lambda_timeout=20)
    resources = app_resources(app, "tests.tasks:app")
    assert resources.function is not None
    assert (resources.function.function_name, resources.function.app_reference) == (
        "shop-worker",
        "tests.tasks:app",
    )
    assert [q.visibility_timeout for q in resources.queues] == [120, 30]


def test_lambda_queues_must_be_queues_of_the_app() -> None:
    with pytest.raises(ConfigurationError, match="no task uses: nope"):
        app_resources(make_app("shop", lambda_queues=("nope",)))


def test_a_lambda_timeout_too_short_for_a_task_on_its_queues_is_refused() -> None:
    from cloudq import ConfigurationError

    # untimed tasks count 1 s, and "hang" and "overrun" have timeout=1: with the 1 s margin, 2 s
    app = make_app("shop", lambda_queues=("default",), lambda_timeout=1)
    with pytest.raises(ConfigurationError, match="task 'add' on Lambda queue 'default' needs 2 s"):
        app_resources(app)
    assert app_resources(make_app("shop", lambda_queues=("default",), lambda_timeout=2)).function is not None
