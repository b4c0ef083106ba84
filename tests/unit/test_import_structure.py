"""How cloudq's modules import each other: what an engine pulls in (issue 24)."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """The ``modules`` a fresh interpreter has loaded after ``statement``."""
    code = f"import sys\n{statement}\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [name for name in done.stdout.strip().split(",") if name]


def test_the_memory_and_redis_engines_keep_sqs_limits_without_the_sqs_engine() -> None:
    # Given the two engines that keep SQS's limits
    statement = "import cloudq.transports.memory, cloudq.transports.redis"
    # When a fresh interpreter imports them
    loaded = _loaded_after(statement, ("cloudq.transports.sqs",))
    # Then the SQS engine (and the botocore it needs) stays unloaded
    assert loaded == []


def test_the_redis_result_backend_does_not_load_the_redis_broker() -> None:
    # Given an app whose results are in Redis and whose broker is not
    statement = "import cloudq.backends.redis"
    # When a fresh interpreter imports the backend
    loaded = _loaded_after(statement, ("cloudq.transports.redis",))
    # Then the Redis broker stays unloaded (the two share only the scripts' loader)
    assert loaded == []


def test_rendering_a_lambda_deployment_does_not_load_the_lambda_handler() -> None:
    # Given an app with a Lambda queue, whose function the deploy model checks against its tasks
    statement = (
        "from cloudq import CloudQ\n"
        "from cloudq.infra import app_resources\n"
        "app = CloudQ('shop', broker='memory://', backend=None, lambda_queues=('default',))\n"
        "app.task(name='ping', timeout=5)(print)\n"
        "resources = app_resources(app, 'shop.tasks:app')\n"
        "assert resources.function is not None"
    )
    # When a fresh interpreter builds its AWS resources
    loaded = _loaded_after(statement, ("cloudq.aws_lambda", "cloudq.execution"))
    # Then neither the handler nor the executor it runs is loaded (deploying is not running)
    assert loaded == []
