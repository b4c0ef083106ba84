"""``cloudq dashboard`` on the in-process engines, through Starlette's TestClient: each page
renders what the ops readers read, replay goes through ``cloudq dlq``'s code, and the security
rules hold (Host check, token, CSRF, replay off by default, loopback unless a token)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cloudq import CloudQ
from cloudq.clock import ManualClock
from cloudq.dashboard.samples import Samples
from cloudq.dashboard.security import Guard, allowed_hosts, refusal
from cloudq.dashboard.server import create_app
from cloudq.testing import drain
from tests.cli_helpers import cloudq

BASE = "http://127.0.0.1:5555"
ROOT = Path(__file__).resolve().parents[2]


def client_for(app: CloudQ, **guard: object) -> TestClient:
    web = create_app(app, Guard("127.0.0.1", 5555, **guard), refresh_seconds=2)  # type: ignore[arg-type]
    return TestClient(web, base_url=BASE)


@pytest.fixture
def dead_app(app: CloudQ) -> Iterator[CloudQ]:
    """The unit app with one task dead-lettered (after its retries) and two queued."""
    app.tasks["always_fails"].delay("dash")
    drain(app, ["default"], raise_failures=False)
    app.tasks["add"].delay(1, 2)
    app.tasks["add"].delay(3, 4)
    yield app


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_the_queue_page_shows_the_status_readers_figures(dead_app: CloudQ) -> None:
    client = client_for(dead_app)
    page = client.get("/")
    assert page.status_code == 200
    row = re.search(r'<tr data-queue="default">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[:5] == ["default", "worker", "2", "0", "0"]
    assert ">1</a>" in cells[5]  # one dead letter, linked to its page
    assert 'hx-get="/partials/queues"' in page.text and "/static/htmx.min.js" in page.text
    # and the panel alone refreshes; the sparkline draws from the samples its reads took
    dead_app.tasks["add"].delay(5, 6)
    panel = client.get("/partials/queues").text
    assert "<html" not in panel and '<td class="visible">3</td>' in panel
    assert re.search(r'<polyline points="[0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+', panel)


def test_htmx_is_served_from_the_package() -> None:
    client = client_for(CloudQ("assets", broker="memory://", backend="memory://"))
    script = client.get("/static/htmx.min.js")
    assert script.status_code == 200 and len(script.content) > 40_000 and b"htmx" in script.content


def test_dead_letters_show_their_reason_and_replay_goes_back_onto_the_queue(dead_app: CloudQ) -> None:
    client = client_for(dead_app, allow_replay=True)
    page = client.get("/dead-letters/default")
    assert "always_fails" in page.text and "FlakyError" in page.text
    [message_id] = re.findall(r'confirm\?id=([^"]+)"', page.text)
    # When the confirmation's form is posted
    confirm = client.get(f"/dead-letters/default/confirm?id={message_id}")
    assert 'method="post"' in confirm.text
    done = client.post("/dead-letters/default/replay", data={"csrf": csrf_of(confirm.text), "id": message_id})
    # Then it is back on its queue and gone from the dead-letter queue
    assert done.status_code == 200 and "Replayed 1 message(s)" in done.text
    assert dead_app.transport.stats("default").visible == 3
    assert "0 shown" in client.get("/dead-letters/default").text


def test_a_task_by_id_shows_state_attempts_history_and_error(dead_app: CloudQ) -> None:
    client = client_for(dead_app, allow_replay=True)
    result = dead_app.tasks["add"].delay(20, 22)
    drain(dead_app, ["default"], raise_failures=False)
    page = client.get("/tasks", params={"id": result.id}).text
    assert 'id="state">SUCCESS<' in page and "42" in page
    failed = [line for line in client.get("/dead-letters/default").text.splitlines() if "tasks?id=" in line]
    task_id = re.search(r"tasks\?id=([^\"]+)\"", failed[0]).group(1)  # type: ignore[union-attr]
    page = client.get("/tasks", params={"id": task_id}).text
    assert 'id="state">FAILURE<' in page and "FlakyError: failing on purpose dash" in page
    assert re.search(r"<th>attempts</th><td[^>]*>3</td>", page)
    assert "PENDING: no record" in client.get("/tasks", params={"id": "nope"}).text


def test_periodic_tasks_and_outcomes_pages(app: CloudQ) -> None:
    app.add_periodic(app.tasks["add"], "rate(5 minutes)", args=[1, 2], name="every-five")
    client = client_for(app)
    page = client.get("/periodic").text
    assert "every-five" in page and "rate(5 minutes)" in page and "UTC" in page
    outcomes = client.get("/outcomes").text
    assert 'id="outcomes-source">n/a: on memory' in outcomes


def test_an_unknown_queue_is_404(app: CloudQ) -> None:
    assert client_for(app).get("/dead-letters/nope").status_code == 404


# -- security ---------------------------------------------------------------------------------


def test_a_host_header_that_is_not_the_bound_address_is_refused(app: CloudQ) -> None:
    client = client_for(app)
    assert client.get("/", headers={"host": "evil.example:5555"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:5555"}).status_code == 200
    assert allowed_hosts("0.0.0.0", 80) is None
    assert allowed_hosts("10.0.0.5", 8080) == frozenset({"10.0.0.5:8080"})


def test_with_a_token_a_request_without_it_is_401(app: CloudQ) -> None:
    client = client_for(app, token="s3cret")
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"authorization": "Bearer s3cret"}).status_code == 200
    # Opening /?token= once moves it into a cookie and out of the address
    moved = client.get("/periodic?token=s3cret", follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/periodic"
    assert "samesite=strict" in moved.headers["set-cookie"].lower()
    assert client.get("/periodic").status_code == 200  # the cookie is sent from now on


def test_a_replay_post_without_the_csrf_token_is_refused(dead_app: CloudQ) -> None:
    client = client_for(dead_app, allow_replay=True)
    assert client.post("/dead-letters/default/replay", data={"all": "1"}).status_code == 403
    refused = client.post("/dead-letters/default/replay", data={"all": "1", "csrf": "forged"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert client.get("/dead-letters/default/replay").status_code == 405  # never a GET
    assert dead_app.transport.stats("default").visible == 2


def test_replay_is_off_unless_allowed(dead_app: CloudQ) -> None:
    client = client_for(dead_app)
    page = client.get("/dead-letters/default").text
    assert "confirm?id=" not in page and "--allow-replay" in page
    csrf = csrf_of(client_for(dead_app, allow_replay=True).get("/dead-letters/default/confirm").text)
    refused = client.post("/dead-letters/default/replay", data={"all": "1", "csrf": csrf})
    assert refused.status_code == 403  # a token of another server, and replay off anyway
    own = re.search(r'csrf" value="([^"]+)"', client.get("/dead-letters/default/confirm").text)
    assert own is None  # no form to post when replay is off


def test_binding_beyond_loopback_needs_a_token() -> None:
    assert refusal("127.0.0.1", None) is None and refusal("::1", None) is None
    assert refusal("0.0.0.0", "t") is None
    reason = refusal("0.0.0.0", None)
    assert reason is not None and "CLOUDQ_DASHBOARD_TOKEN" in reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "binding 0.0.0.0 needs a token"),
        (["--port", "70000"], "--port"),
        (["--refresh", "0"], "--refresh"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    env_free = [arg for arg in args]
    done = cloudq("dashboard", "--app", "tests.tasks:app", *env_free)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("cloudq: error:") and message in line


def test_samples_make_a_sparkline_of_the_last_minutes() -> None:
    clock = ManualClock()
    samples = Samples(clock, span_seconds=60)
    samples.add("q", 5)
    assert samples.points("q") == ""  # one sample is no line
    for value in (10, 0):
        clock.advance(30)
        samples.add("q", value)
    assert samples.values("q") == [5, 10, 0]
    assert samples.points("q") == "0.0,12.0 60.0,1.0 120.0,23.0"
    clock.advance(45)
    samples.add("q", 7)
    assert samples.values("q") == [0, 7]  # older than the span: dropped


def test_a_broker_error_is_one_line_on_the_page() -> None:
    # Given an app whose broker is down (nothing listens on the port)
    down = CloudQ("down", broker="redis://127.0.0.1:1/0", backend="memory://")
    # When the queue page is asked for, then it says why in one line
    page = client_for(down).get("/")
    assert page.status_code == 503 and page.text.startswith("503: ") and len(page.text.splitlines()) == 1


def test_no_page_but_the_dead_letters_receives_from_a_queue(app: CloudQ) -> None:
    # Given one queued task
    app.tasks["add"].delay(1, 2)
    client = client_for(app)
    # When every page that is not the dead letters' is opened, twice
    for _ in range(2):
        for path in (
            "/",
            "/partials/queues",
            "/dead-letters",
            "/tasks?id=x",
            "/periodic",
            "/outcomes",
            "/cost",
        ):
            assert client.get(path).status_code == 200, path
    # Then the message's first receive is the worker's
    [message] = app.transport.receive("default", 1, 0.0, 30)
    assert message.receive_count == 1
    # and the cost says why it has no figures on this engine
    assert "n/a: the cost is derived from AWS&#39;s metrics; on memory" in client.get("/cost").text


def test_without_the_extra_the_command_names_the_fix(tmp_path: Path) -> None:
    # Given an environment where starlette cannot be imported (as without the extra)
    (tmp_path / "starlette.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'starlette'\", name='starlette')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    command = [sys.executable, "-m", "cloudq", "dashboard", "--app", "tests.tasks:app"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    # Then it says which extra to install, in one line
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "cloudq: error: the dashboard needs its extra: pip install 'cloudq-aws[dashboard]'"
    )


def test_the_cost_page_shows_the_figures_of_status_cost(moto_aws: object) -> None:
    """The hour of tests/unit/test_cost.py, put into moto's CloudWatch as AWS would publish it."""
    import datetime as dt

    import boto3

    from cloudq.infra import app_resources
    from tests.tasks import make_app

    app = make_app("priced", broker="sqs://?region=us-east-1", backend="dynamodb://priced-results")
    client = boto3.client("cloudwatch", region_name="us-east-1")
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    resources = app_resources(app)
    assert resources.table is not None
    for queue in resources.queues:
        count = 100.0 if queue.fifo else 1000.0
        sums = {"Sent": count, "Received": count, "Deleted": count}
        data = [(f"NumberOfMessages{name}", value) for name, value in sums.items()]
        data.append(("NumberOfEmptyReceives", 720.0))
        client.put_metric_data(
            Namespace="AWS/SQS",
            MetricData=[
                {
                    "MetricName": name,
                    "Value": value,
                    "Timestamp": when,
                    "Dimensions": [{"Name": "QueueName", "Value": queue.name}],
                }
                for name, value in data
            ],
        )
    client.put_metric_data(
        Namespace="AWS/DynamoDB",
        MetricData=[
            {
                "MetricName": name,
                "Value": 2200.0,
                "Timestamp": when,
                "Dimensions": [{"Name": "TableName", "Value": resources.table.name}],
            }
            for name in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
        ],
    )
    web = create_app(app, Guard("127.0.0.1", 5555), cloudwatch=client)
    page = TestClient(web, base_url=BASE).get("/cost?window=60").text
    assert '<td id="per-million">$2.73</td>' in page
    assert '<td id="idle-per-day">$0.0156</td>' in page
    assert "ignore_result=True" in page and "wait_seconds=20" in page
