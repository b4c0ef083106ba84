"""A user's own Lambda-only app, in a project outside this repository with cloudq installed from
the wheels (issue 31): ``cloudq infra package`` builds a zip that a bare ``python3.11 -I -S``
runs with only boto3 beside it; the rendered templates deploy that zip (serverless.yml as its
artifact, cfn-lint clean, no ``default`` queue); ``cloudq emulator up`` deploys the same zip
and the emulator's trigger runs a ``.delay()`` through it.

One project, one venv and one build for every check (module-scoped): the set-up is most of
the time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudq_emulator.server import MinistackServer
from tests.cfn_lint import cfn_lint
from tests.checkout import checkout_lock
from tests.deploy.conftest import serverless_cli  # noqa: F401, F811 - the fixture, shared
from tests.e2e.test_install_e2e import ROOT, WHEELHOUSE, run

TASKS = """\
from cloudq import CloudQ

app = CloudQ("{name}", lambda_queues=("jobs",), lambda_timeout=30)


@app.task(queue="jobs")
def double(x: int) -> int:
    return 2 * x


@app.task(queue="jobs", max_retries=3)
def explode() -> None:
    raise ValueError("boom")
"""
SEND = """\
import json, sys
from myapp.tasks import double, explode
print(json.dumps([double.delay(int(sys.argv[1])).id, explode.delay().id]))
"""
#: Run by ``python3.11 -I -S``: no site-packages, no PYTHONPATH, only the two folders given.
CHECK = """\
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from cloudq.aws_lambda import handler

class Context:
    aws_request_id = "request-31"
    function_name = "worker"
    def get_remaining_time_in_millis(self):
        return 30_000

event = json.load(open(sys.argv[3]))
print(json.dumps(handler(event, Context())))
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("click", "yaml", "moto"))))
"""


@dataclass
class Project:
    folder: Path
    env: dict[str, str]
    name: str
    boto3_folder: Path
    package_output: str

    @property
    def zip(self) -> Path:
        return self.folder / "dist" / f"{self.name}-lambda.zip"

    def cloudq(self, *args: str) -> str:
        return run("cloudq", *args, cwd=self.folder, env=self.env)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, ministack_server: MinistackServer) -> Iterator[Project]:
    """A fresh venv with both wheels from the wheelhouse, and a project with its own app."""
    if not (WHEELHOUSE / ".filled").exists():
        pytest.fail(f"{WHEELHOUSE} is not filled: run `make test` (its set-up step fills it from PyPI)")
    base = tmp_path_factory.mktemp("lambda-project")
    offline = ["--no-index", "--find-links", str(WHEELHOUSE)]
    with checkout_lock():
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            *offline,
            "-w",
            base / "dist",
            ROOT,
            ROOT / "emulator",
        )
    venv = base / "venv"
    run(sys.executable, "-m", "venv", venv)
    wheels = sorted(map(str, (base / "dist").glob("*.whl")))
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", *offline, *wheels)
    boto3_folder = base / "boto3"
    run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        *offline,
        "--target",
        boto3_folder,
        "boto3",
    )
    folder = base / "project"
    name = f"pkg{uuid.uuid4().hex[:8]}"
    (folder / "myapp" / "tests").mkdir(parents=True)
    (folder / "myapp" / "__init__.py").write_text("")
    (folder / "myapp" / "tasks.py").write_text(TASKS.format(name=name))
    (folder / "myapp" / "tests" / "test_tasks.py").write_text("def test_nothing(): pass\n")
    (folder / "send.py").write_text(SEND)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "CLOUDQ_"))
    }
    env.update(ministack_server.environment())
    # pip (in `infra package`) installs pydantic for Lambda's platform from the wheelhouse, offline
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELHOUSE)
    )
    built = Project(folder, env, name, boto3_folder, "")
    built.package_output = built.cloudq("infra", "package", "--app", "myapp.tasks:app")
    yield built


def aws(project: Project, service: str) -> Any:
    env = project.env
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def lambda_event(project: Project, count: int) -> dict[str, Any]:
    """``count`` messages received from the queue, as the SQS event Lambda would pass."""
    sqs = aws(project, "sqs")
    url = sqs.get_queue_url(QueueName=f"{project.name}-jobs")["QueueUrl"]
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        messages += sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=2,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records = [
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                key: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
                for key, value in message.get("MessageAttributes", {}).items()
            },
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
        }
        for message in messages
    ]
    return {"Records": records}


def check_isolated(project: Project, package: Path, folder: Path) -> None:
    """Unzip ``package`` and run its handler in ``python3.11 -I -S`` on two real ``.delay()``
    bodies, one failing (to be retried): results stored, the failure reported, JSON log lines."""
    unzipped = folder / "task"
    zipfile.ZipFile(package).extractall(unzipped)
    ids = json.loads(run("python", "send.py", "21", cwd=project.folder, env=project.env))
    event = folder / "event.json"
    event.write_text(json.dumps(lambda_event(project, 2)))
    by_message = {
        json.loads(r["body"])["id"]: r["messageId"] for r in json.loads(event.read_text())["Records"]
    }
    (folder / "check.py").write_text(CHECK)
    python311 = shutil.which("python3.11")
    assert python311 is not None, "python3.11 (Lambda's Python) is not on PATH"
    env = {
        **project.env,
        "CLOUDQ_APP": "myapp.tasks:app",
        "AWS_LAMBDA_FUNCTION_NAME": f"{project.name}-worker",
    }
    done = subprocess.run(
        [
            python311,
            "-I",
            "-S",
            str(folder / "check.py"),
            str(unzipped),
            str(project.boto3_folder),
            str(event),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    response_line, heavy_line = done.stdout.strip().splitlines()[-2:]
    # Then the partial batch response names the failing record only
    assert json.loads(response_line) == {"batchItemFailures": [{"itemIdentifier": by_message[ids[1]]}]}
    assert json.loads(heavy_line) == []
    # And the results are stored
    results = run("python", "-c", RESULTS, *ids, cwd=project.folder, env=project.env)
    assert json.loads(results) == ["SUCCESS", 42, "RETRY"]
    # And every log line is JSON, the outcome lines with the task id and the request id
    lines = [json.loads(line) for line in done.stderr.strip().splitlines()]
    outcomes = [line for line in lines if line.get("task_id") in ids]
    assert {line["task_id"] for line in outcomes} == set(ids), lines
    assert all(line["function_request_id"] == "request-31" for line in outcomes), outcomes


RESULTS = """\
import json, sys
from myapp.tasks import app
ok, failed = (app.AsyncResult(task_id) for task_id in sys.argv[1:])
print(json.dumps([ok.state, ok.get(timeout=5), failed.state]))
"""


def test_infra_package_builds_a_zip_that_runs_alone_and_render_leaves_default_out(
    project: Project, tmp_path: Path
) -> None:
    # Given the package `infra package` built in the user's project
    listing = zipfile.ZipFile(project.zip).namelist()
    assert "dist/" in project.package_output and "MB zipped" in project.package_output
    assert "myapp/tasks.py" in listing and "cloudq/aws_lambda.py" in listing
    assert any(name.startswith("pydantic_core/_pydantic_core.cpython-311-x86_64-linux") for name in listing)
    assert "cloudq/__pycache__/aws_lambda.cpython-311.pyc" in listing
    left_out = ("myapp/tests/", "cloudq/cli/", "boto3/", "botocore/")
    assert not [name for name in listing if name.startswith(left_out)]
    # When the app's templates are rendered
    project.cloudq("infra", "render", "--app", "myapp.tasks:app", "-o", "cloudformation.yml")
    template = (project.folder / "cloudformation.yml").read_text()
    # Then a Lambda-only app has no default queue and no worker service, and cfn-lint is quiet
    assert f"{project.name}-jobs" in template and f"{project.name}-default" not in template
    assert "WorkerService" not in template and "AWS::ECS::Service" not in template
    linted = cfn_lint(project.folder / "cloudformation.yml")
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")
    # And the zip runs in a bare Python 3.11 with only boto3 beside it (the queue and table
    # from the template, deployed by `emulator up` without the trigger's mapping)
    deploy(project, with_mapping=False)
    check_isolated(project, project.zip, tmp_path)


def deploy(project: Project, *, with_mapping: bool) -> dict[str, Any]:
    """``cloudq emulator up`` of the app with the zip of ``infra package``; the function."""
    port = project.env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]
    args = ("--app", "myapp.tasks:app", "--artifact", str(project.zip), "--port", port)
    output = project.cloudq("emulator", "up", *args)
    assert "updated the stack" in output, output
    client = aws(project, "lambda")
    function = client.get_function(FunctionName=f"{project.name}-worker")
    for mapping in client.list_event_source_mappings(FunctionName=f"{project.name}-worker")[
        "EventSourceMappings"
    ]:
        client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=with_mapping)
    return dict(function["Configuration"])


def test_emulator_up_deploys_the_packaged_zip_and_its_trigger_runs_a_task(project: Project) -> None:
    # When `emulator up` deploys the app with the zip `infra package` built
    configuration = deploy(project, with_mapping=True)
    # Then the function's code is that zip, byte for byte
    digest = base64.b64encode(hashlib.sha256(project.zip.read_bytes()).digest()).decode()
    assert configuration["CodeSha256"] == digest
    # And a .delay() runs through the emulator's trigger
    code = "from myapp.tasks import double; print(double.delay(8).get(timeout=30))"
    assert run("python", "-c", code, cwd=project.folder, env=project.env).strip() == "16"


def test_serverless_package_of_the_rendered_file_ships_the_same_zip(
    project: Project,
    serverless_cli: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    # Given the rendered serverless.yml in the project
    project.cloudq(
        "infra", "render", "--app", "myapp.tasks:app", "--format", "serverless", "-o", "serverless.yml"
    )
    env = {
        **project.env,
        "HOME": str(tmp_path / "home"),
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    # When serverless packages it, from that folder
    run(serverless_cli, "package", "--package", tmp_path / "package", cwd=project.folder, env=env)
    # Then the function's code is the package's zip (serverless uploads the artifact as it is)
    state = json.loads((tmp_path / "package" / "serverless-state.json").read_text())
    assert state["package"]["artifact"] == project.zip.name
    generated = tmp_path / "package" / "cloudformation-template-update-stack.json"
    assert f'/{project.zip.name}"' in generated.read_text()
    # And cfn-lint reports nothing on the template serverless generated
    linted = cfn_lint(generated)
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")
    # And the zip serverless.yml names passes the same isolated check
    deploy(project, with_mapping=False)
    check_isolated(project, project.folder / "dist" / project.zip.name, tmp_path)
