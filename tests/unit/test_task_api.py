"""The task API: registration, argument checks at .delay() time, sending options."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from cloudq import ArgumentError, CloudQ, ConfigurationError, Message, MessageTooLargeError
from cloudq.core.errors import TaskRegistrationError
from cloudq.testing import drain
from tests.tasks import Point


def _only_message(app: CloudQ, queue: str = "default") -> Message:
    [received] = app.transport.receive(queue, 10, wait_seconds=0)
    return Message.decode(received.body)


def test_delay_returns_an_id_and_the_worker_side_produces_the_value(app: CloudQ) -> None:
    # Given a task, When it is sent and the queue drained
    result = app.tasks["add"].delay(2, 3)
    drain(app)
    # Then the result is fetched by id
    assert app.AsyncResult(result.id).get(timeout=1) == 5
    assert result.successful()


def test_task_ids_and_message_ids_are_random_version_4_uuids(app: CloudQ) -> None:
    ids = [app.tasks["add"].delay(1, i).id for i in range(50)]
    received = app.transport.receive("default", 10, wait_seconds=0)
    for value in [*ids, *(message.message_id for message in received)]:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, value)
    assert len(set(ids)) == 50


def test_arguments_travel_as_the_signature_binds_them(app: CloudQ) -> None:
    # Positional, keyword, defaulted: the envelope holds what Signature.bind makes of them.
    app.tasks["total"].delay([1, 2])
    app.tasks["total"].delay([1, 2], 3)
    app.tasks["total"].delay([1, 2], offset=3)
    app.tasks["total"].delay(values=[1, 2], offset=3)
    app.tasks["retry_once"].delay(2.5)  # bind=True: ``self`` is not an argument
    received = app.transport.receive("default", 10, wait_seconds=0)
    sent = [(m.args, m.kwargs) for m in (Message.decode(r.body) for r in received)]
    assert sent == [([[1, 2]], {}), ([[1, 2], 3], {}), ([[1, 2], 3], {}), ([[1, 2], 3], {}), ([2.5], {})]


def test_wrong_arity_raises_in_the_caller(app: CloudQ) -> None:
    with pytest.raises(ArgumentError, match="missing a required argument: 'b'"):
        app.tasks["add"].delay(1)
    with pytest.raises(TypeError):  # ArgumentError is a TypeError
        app.tasks["add"].delay(1, 2, 3)
    assert app.transport.stats("default").visible == 0


def test_wrong_type_raises_naming_the_parameter(app: CloudQ) -> None:
    with pytest.raises(ArgumentError, match="argument 'a'"):
        app.tasks["add"].delay("two", 3)


def test_a_non_json_object_is_refused_with_advice_to_pass_an_id(app: CloudQ) -> None:
    class User:
        id = 7

    with pytest.raises(TypeError, match=r"argument 'value' is a User.*pass an id"):
        app.tasks["echo"].delay(User())


def test_an_object_for_a_typed_int_parameter_is_refused_naming_its_type_and_the_hint(app: CloudQ) -> None:
    class Event:  # what a Django model instance looks like to cloudq
        id = 7

    with pytest.raises(ArgumentError) as refused:
        app.tasks["add"].delay(Event(), 3)
    assert str(refused.value) == (
        "argument 'a' should be int, not Event, which cannot travel as JSON; "
        "pass an id (e.g. event.id) and load the object inside the task"
    )
    assert app.transport.stats("default").visible == 0


def test_hinted_rich_types_round_trip_as_their_own_types(app: CloudQ) -> None:
    # Given values pydantic can carry as JSON
    when = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
    key = uuid.uuid4()
    # When sent: the message body is plain JSON
    result = app.tasks["typed"].delay(when, key, Decimal("10.25"), Point(x=1, y=2))
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    body = json.loads(received.body)
    assert body["args"] == [
        when.isoformat().replace("+00:00", "Z"),
        str(key),
        "10.25",
        {"x": 1, "y": 2},
    ]
    app.transport.change_visibility("default", received.receipt_handle, 0)
    # Then the task received the real types (it asserts isinstance) and succeeded
    drain(app)
    assert result.get(timeout=1)["amount"] == "10.25"


def test_a_typed_result_comes_back_as_its_type(app: CloudQ) -> None:
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    result = app.tasks["when"].delay(moment)
    drain(app)
    assert result.get(timeout=1) == dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)


def test_task_names_default_to_module_and_function() -> None:
    app = CloudQ("names", broker="memory://", backend="memory://")

    @app.task
    def hello() -> str:
        return "hi"

    assert hello.name == f"{__name__}.test_task_names_default_to_module_and_function.<locals>.hello"
    assert hello() == "hi"  # calling the task runs it here


def test_two_tasks_with_one_name_are_refused() -> None:
    app = CloudQ("dupes", broker="memory://")
    app.task(name="same")(lambda: 1)
    with pytest.raises(TaskRegistrationError, match="registered twice"):
        app.task(name="same")(lambda: 2)


def test_unknown_task_option_is_refused() -> None:
    app = CloudQ("opts", broker="memory://")
    with pytest.raises(TaskRegistrationError, match="unknown task option"):
        app.task(retries=3)(lambda: 1)  # type: ignore[call-overload]


def test_send_task_sends_by_name_without_importing_the_task(app: CloudQ) -> None:
    result = app.send_task("add", [20, 22])
    drain(app)
    assert result.get(timeout=1) == 42


def test_send_task_refuses_non_json_arguments(app: CloudQ) -> None:
    with pytest.raises(ArgumentError, match="must be JSON"):
        app.send_task("echo", [object()])


def test_countdown_delays_the_message(app: CloudQ) -> None:
    app.tasks["add"].apply_async((1, 2), countdown=60)
    stats = app.transport.stats("default")
    assert (stats.visible, stats.delayed) == (0, 1)


def test_an_eta_past_the_sqs_delay_limit_is_carried_in_the_envelope(app: CloudQ) -> None:
    eta = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    app.tasks["add"].apply_async((1, 2), eta=eta)
    # The broker holds it for its longest delay; the envelope keeps the real eta.
    assert app.transport.stats("default").delayed == 1
    naive = dt.datetime(2026, 1, 1)
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        app.tasks["add"].apply_async((1, 2), eta=naive)


def test_task_id_can_be_chosen_and_is_the_envelope_id(app: CloudQ) -> None:
    result = app.tasks["add"].apply_async((1, 2), task_id="order-17")
    assert result.id == "order-17"
    assert _only_message(app).id == "order-17"


def test_a_task_id_too_long_to_be_a_result_key_is_refused_at_send_time(app: CloudQ) -> None:
    with pytest.raises(ArgumentError, match="id: String should have at most 255 characters"):
        app.tasks["add"].apply_async((1, 2), task_id="x" * 300)


@pytest.mark.parametrize(
    "option", [{"countdown": float("nan")}, {"eta": float("inf")}, {"expires": float("nan")}]
)
def test_a_time_that_is_not_a_finite_number_is_refused_at_send_time(
    app: CloudQ, option: dict[str, float]
) -> None:
    with pytest.raises(ArgumentError, match="finite number"):
        app.tasks["add"].apply_async((1, 2), **option)  # type: ignore[arg-type]


def test_a_message_over_the_size_limit_fails_at_delay_time() -> None:
    from tests.tasks import make_app

    app = make_app("small", broker="memory://", backend="memory://", max_message_bytes=1000)
    with pytest.raises(MessageTooLargeError, match="over the broker limit of 1000 bytes"):
        app.tasks["echo"].delay("x" * 2000)
    assert app.transport.stats("default").visible == 0


def test_queue_routing_uses_the_task_queue_and_apply_async_override() -> None:
    app = CloudQ("routes", broker="memory://", backend="memory://")

    @app.task(queue="emails")
    def mail(user_id: int) -> int:
        return user_id

    mail.delay(1)
    mail.apply_async((2,), queue="urgent")
    assert app.transport.stats("emails").visible == 1
    assert app.transport.stats("urgent").visible == 1
    assert app.queue_names() == {"default", "emails"}
    assert app.physical_queue_name("emails") == "routes-emails"


def test_a_delay_on_a_fifo_queue_is_refused_at_send_time() -> None:
    app = CloudQ("fifo", broker="memory://", backend=None)

    @app.task(queue="orders.fifo")
    def ship(order_id: int) -> int:
        return order_id

    with pytest.raises(ArgumentError, match="FIFO queue: SQS cannot delay"):
        ship.apply_async((1,), countdown=5)
    ship.delay(1)  # undelayed is fine
    assert app.transport.stats("orders.fifo").visible == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"countdown": "60"}, "countdown must be a number of seconds, not str"),
        ({"eta": "tomorrow"}, "eta must be a datetime or epoch seconds, not str"),
        ({"expires": [1]}, "expires must be a datetime or epoch seconds, not list"),
        ({"queue": 7}, "queue must be a string, not int"),
        ({"message_group_id": b"g"}, "message_group_id must be a string, not bytes"),
    ],
)
def test_bad_send_options_are_refused_before_anything_is_sent(
    app: CloudQ, options: dict[str, object], message: str
) -> None:
    # Given send options of the wrong type, When a task is sent with them (every way of sending)
    sends = [
        lambda: app.tasks["add"].apply_async((1, 2), **options),  # type: ignore[arg-type]
        lambda: app.send_task("add", [1, 2], **options),  # type: ignore[arg-type]
        lambda: app.tasks["add"].map([(1, 2)], **options),
        lambda: app.tasks["add"].s(1, 2).set(**options),
    ]
    for send in sends:
        # Then each is one clear error, and nothing reached the queue
        with pytest.raises(ArgumentError, match=message):
            send()
    assert app.transport.stats("default").visible == 0


def test_an_unknown_send_option_is_refused_naming_it(app: CloudQ) -> None:
    with pytest.raises(ArgumentError, match="unknown send option.*: countdwn"):
        app.tasks["add"].map([(1, 2)], countdwn=5)
    with pytest.raises(ArgumentError, match="unknown send option.*: countdwn"):
        app.tasks["add"].s(1, 2).set(countdwn=5)
    assert app.transport.stats("default").visible == 0


def test_send_options_as_one_object_are_the_keywords_ones(app: CloudQ) -> None:
    from cloudq.options import SendOptions

    # Given the options as an object, When sent by name
    result = app.send_task("add", [1, 2], options=SendOptions(countdown=60, task_id="by-object"))
    # Then they apply as the keywords would
    assert result.id == "by-object"
    stats = app.transport.stats("default")
    assert (stats.visible, stats.delayed) == (0, 1)
    # And giving both forms at once is refused
    with pytest.raises(ArgumentError, match="options= or as keywords, not both"):
        app.send_task("add", [1, 2], countdown=5, options=SendOptions(task_id="x"))
