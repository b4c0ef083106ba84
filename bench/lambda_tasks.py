"""The task module ``bench/bench_lambda.py`` deploys as a Lambda function (``bench.lambda_tasks:app``);
its name and Lambda settings come from ``CLOUDQ_*`` variables set by the benchmark."""

from __future__ import annotations

import os

from cloudq import CloudQ

app = CloudQ(os.environ.get("CLOUDQ_BENCH_APP", "benchlambda"))


@app.task(name="noop")
def noop() -> None:
    return None
