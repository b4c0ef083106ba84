"""cfn-lint reports nothing on the templates ``cloudq infra render`` makes. Here, not in
tests/unit: cfn-lint loads its AWS schemas for seconds, so the templates share one run."""

from __future__ import annotations

from pathlib import Path

from cloudq.infra import app_resources
from cloudq.infra.render import render
from tests.cfn_lint import cfn_lint
from tests.tasks import make_app
from tests.unit.test_infra_payloads_schedules import _app as bucket_and_schedules_app
from tests.unit.test_infra_render import EXAMPLE, cloudq, several_queues_app


def test_cfn_lint_reports_nothing_on_the_example_a_fifo_lambda_app_and_one_with_a_bucket_and_schedules(
    tmp_path: Path,
) -> None:
    """And on an app serving Step Functions (its role may report back: issue 27)."""
    # Given the example app's template (rendered by the command)
    example = tmp_path / "example.yml"
    done = cloudq("infra", "render", "--app", EXAMPLE, "-o", str(example))
    assert (done.returncode, done.stderr) == (0, "")
    # and one of an app with FIFO, several Lambda and worker queues and no result backend
    several = tmp_path / "several.yml"
    several.write_text(render(app_resources(several_queues_app(), "tests.tasks:app"), "cloudformation"))
    assert "ResultTable" not in several.read_text()
    # and one of an app with a payload bucket and periodic tasks
    scheduled = tmp_path / "scheduled.yml"
    scheduled.write_text(render(app_resources(bucket_and_schedules_app()), "cloudformation"))
    # and one of a Lambda app serving Step Functions
    stepfunctions = tmp_path / "stepfunctions.yml"
    serving = make_app("sfn", stepfunctions_queues=("default",), lambda_queues=("default",))
    stepfunctions.write_text(render(app_resources(serving, "tests.tasks:app"), "cloudformation"))
    assert "states:SendTaskSuccess" in stepfunctions.read_text()
    # When cfn-lint checks them, Then it reports nothing
    linted = cfn_lint(example, several, scheduled, stepfunctions)
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")
