"""Priority lanes (README "Flow control"): names, routing at send time, the worker's queues and
its pick between lanes, and the lane queues and mappings ``cloudq infra render`` writes."""

from __future__ import annotations

import pytest
import yaml

from cloudq import ArgumentError, CloudQ
from cloudq.core.errors import ConfigurationError, TaskRegistrationError
from cloudq.core.flow import LanePolicy
from cloudq.core.naming import dead_letter_queue_name, lane_of, lane_queue_name
from cloudq.infra import app_resources
from cloudq.infra.render import render
from cloudq.runtime.lanes import LaneBuffer
from cloudq.transports.base import ReceivedMessage
from cloudq.worker import Worker
from tests.tasks import make_app


@pytest.fixture
def app() -> CloudQ:
    return make_app("lanes", broker="memory://", backend="memory://", priority_queues=("default",))


def _queued(app: CloudQ, queue: str) -> list[str]:
    return [message.message_id for message in app.transport.receive(queue, 10, wait_seconds=0)]


def test_a_lane_is_a_sibling_queue_named_once() -> None:
    assert lane_queue_name("emails", "high") == "emails-high"
    assert lane_queue_name("orders.fifo", "high") == "orders-high.fifo"
    assert lane_queue_name("emails", None) == lane_queue_name("emails", "default") == "emails"
    assert lane_of("emails-high") == ("emails", "high")
    assert lane_of("orders-high.fifo") == ("orders.fifo", "high")
    assert lane_of("emails") == ("emails", "default")
    assert dead_letter_queue_name("emails-high") == "emails-high-dlq"


def test_a_high_call_goes_to_the_lane_and_a_default_one_to_the_queue(app: CloudQ) -> None:
    # Given a queue with a high lane
    task = app.tasks["add"]
    # When one call is sent high and one default
    task.apply_async((1, 2), priority="high")
    task.apply_async((1, 2), priority="default")
    # Then each is on its own queue
    assert len(_queued(app, "default-high")) == 1
    assert len(_queued(app, "default")) == 1


def test_a_tasks_priority_is_its_calls_default(app: CloudQ) -> None:
    # Given a task declared high (which gives its queue a lane)
    @app.task(name="urgent", queue="alerts", priority="high")
    def urgent() -> None: ...

    assert "alerts" in app.laned_queues()
    # When it is called plainly, then explicitly on the default lane
    urgent.delay()
    urgent.apply_async(priority="default")
    # Then the first went to the lane, the second to the queue
    assert (len(_queued(app, "alerts-high")), len(_queued(app, "alerts"))) == (1, 1)


@pytest.mark.parametrize(
    ("priority", "message"),
    [
        (
            "urgent",
            "priority must be one of 'high', 'default', an integer 0-255 .Celery's. or None, not 'urgent'",
        ),
        (256, "priority must be one of 'high', 'default', an integer 0-255 .Celery's. or None, not 256"),
        (True, "priority must be one of 'high', 'default', an integer 0-255 .Celery's. or None, not True"),
    ],
)
def test_an_unknown_priority_is_refused_at_send_time(app: CloudQ, priority: object, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        app.tasks["add"].apply_async((1, 2), priority=priority)  # type: ignore[arg-type]
    assert _queued(app, "default") == [] and _queued(app, "default-high") == []


def test_a_high_call_to_a_queue_without_a_lane_is_refused(app: CloudQ) -> None:
    with pytest.raises(ArgumentError, match="queue 'orders.fifo' has no high priority lane: add it to"):
        app.tasks["ordered"].apply_async(("a",), priority="high", message_group_id="g")


def test_a_task_declared_with_an_unknown_priority_is_refused(app: CloudQ) -> None:
    with pytest.raises(TaskRegistrationError, match="priority must be one of"):
        app.task(name="bad_lane", priority="urgent")(lambda: None)


def test_a_worker_serves_a_queues_lane_with_it(app: CloudQ) -> None:
    assert Worker(app, ["default"]).queues == ["default", "default-high"]
    assert {"default", "default-high"} <= set(Worker(app).queues)


def _run(queue: str, index: int) -> list[ReceivedMessage]:
    return [ReceivedMessage(queue, f"{queue}-{index}", f"{queue}-{index}", "")]


def _picked(policy: LanePolicy, high: int, default: int) -> str:
    """The order a buffer holding ``high`` and ``default`` runs hands them out: H or D each."""
    buffer = LaneBuffer(policy)
    for index in range(default):
        buffer.put(_run("work", index))
    for index in range(high):
        buffer.put(_run("work-high", index))
    order = ""
    for _ in range(high + default):
        run = buffer.get()
        assert run is not None
        order += "H" if run[0].queue == "work-high" else "D"
    return order


def test_strict_lanes_hand_out_every_high_run_first() -> None:
    assert _picked(LanePolicy.parse("strict"), high=5, default=3) == "HHHHHDDD"


def test_weighted_lanes_keep_the_default_lane_moving() -> None:
    assert _picked(LanePolicy.parse("weighted:4:1"), high=10, default=3) == "HHHHDHHHHDHHD"
    assert _picked(LanePolicy.parse("weighted:1:2"), high=3, default=6) == "HDDHDDHDD"


def test_a_stop_comes_after_the_runs_left() -> None:
    buffer = LaneBuffer()
    buffer.put(_run("work", 0))
    buffer.put(None)
    buffer.put(_run("work-high", 0))
    assert [run and run[0].queue for run in (buffer.get(), buffer.get(), buffer.get())] == [
        "work-high",
        "work",
        None,
    ]


@pytest.mark.parametrize("text", ["weighted", "weighted:4", "weighted:0:1", "fair", "weighted:a:b"])
def test_a_bad_lane_policy_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigurationError, match="write strict or weighted:H:L"):
        LanePolicy.parse(text)


def test_the_template_has_each_lane_with_its_dead_letter_queue_and_mapping() -> None:
    # Given a Lambda app whose queue has a high lane, capped at 5 and its lane at 20
    app = make_app(
        "laneapp",
        lambda_queues=("default",),
        priority_queues=("default",),
        lambda_maximum_concurrency=5,
        lambda_queue_concurrency={"default-high": 20},
    )
    # When its template is rendered
    body = yaml.safe_load(render(app_resources(app, "tests.tasks:app"), "cloudformation"))["Resources"]
    # Then the lane is a queue with its own dead-letter queue, and each queue has its mapping
    assert body["DefaultHighQueue"]["Properties"]["QueueName"] == "laneapp-default-high"
    assert body["DefaultHighDeadLetterQueue"]["Properties"]["QueueName"] == "laneapp-default-high-dlq"
    caps = {
        value["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: value["Properties"]["ScalingConfig"]
        for value in body.values()
        if value["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert caps == {
        "DefaultQueue": {"MaximumConcurrency": 5},
        "DefaultHighQueue": {"MaximumConcurrency": 20},
    }
    # ...and so does serverless.yml
    functions = yaml.safe_load(render(app_resources(app, "tests.tasks:app"), "serverless"))["functions"]
    events = [event["sqs"] for function in functions.values() for event in function["events"]]
    assert sorted(event["maximumConcurrency"] for event in events) == [5, 20]


def test_a_concurrency_for_a_queue_the_function_does_not_consume_is_refused() -> None:
    app = make_app("laneapp", lambda_queues=("default",), lambda_queue_concurrency={"default-high": 20})
    with pytest.raises(ConfigurationError, match="lambda_queue_concurrency names queue"):
        app_resources(app, "tests.tasks:app")


def test_lane_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDQ_PRIORITY_QUEUES", "default,images")
    monkeypatch.setenv("CLOUDQ_LAMBDA_QUEUE_CONCURRENCY", "default-high=20, images=3")
    monkeypatch.setenv("CLOUDQ_LANES", "weighted:4:1")
    settings = CloudQ("envapp").settings
    assert settings.priority_queues == ("default", "images")
    assert settings.lambda_queue_concurrency == {"default-high": 20, "images": 3}
    assert settings.lanes == "weighted:4:1"
