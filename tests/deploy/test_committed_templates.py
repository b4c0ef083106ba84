"""The committed deployment of the example app (``infra/``, ``serverless.yml``) is what
``cloudq infra render`` makes now, byte for byte; ``serverless package`` accepts it, and cfn-lint
reports nothing on the template serverless generates from it."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from cloudq.app.loading import load_app
from cloudq.infra import app_resources
from cloudq.infra.package import build_package, default_artifact
from cloudq.infra.render import render
from tests.cfn_lint import cfn_lint
from tests.deploy.conftest import ROOT

EXAMPLE = "examples.shop.tasks:app"
#: path in the repository → format (``make infra`` writes them).
COMMITTED = {
    "infra/cloudformation.yml": "cloudformation",
    "infra/iam.json": "iam",
    "serverless.yml": "serverless",
}


@pytest.mark.parametrize(("path", "format_name"), sorted(COMMITTED.items()))
def test_committed_files_are_a_fresh_render(
    path: str, format_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no CLOUDQ_* setting of this environment (make infra renders with none)
    for name in list(os.environ):
        if name.startswith("CLOUDQ_"):
            monkeypatch.delenv(name)
    # When the example app is rendered in memory
    fresh = render(app_resources(load_app(EXAMPLE), EXAMPLE), format_name)
    # Then the committed file is the same, byte for byte
    committed = (ROOT / path).read_bytes()
    assert committed == fresh.encode(), f"{path} is stale: run `make infra` and commit it"


def test_serverless_package_succeeds_and_its_template_passes_cfn_lint(
    serverless_cli: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the committed serverless.yml, the zip it names (built from the wheelhouse, offline)
    # and the Serverless Framework v3, with no network use
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(ROOT / ".wheelhouse"))
    artifact = ROOT / default_artifact("shop")
    build_package(EXAMPLE, artifact)
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    # When it packages the service
    done = subprocess.run(
        [str(serverless_cli), "package", "--package", str(tmp_path / "package")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Then it succeeds without a configuration warning
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Service packaged" in output and "Warning" not in output, output
    # And the function's code is that zip, with the app and cloudq
    generated = tmp_path / "package" / "cloudformation-template-update-stack.json"
    assert f'/{artifact.name}"' in generated.read_text()
    listing = zipfile.ZipFile(artifact).namelist()
    assert "cloudq/aws_lambda.py" in listing and "examples/shop/tasks.py" in listing
    # And cfn-lint reports nothing on the CloudFormation template serverless generated
    linted = cfn_lint(generated)
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")
