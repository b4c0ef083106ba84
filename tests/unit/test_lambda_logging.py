"""The Lambda handler's logging: set up on Lambda only, JSON by default, settings checked, and
each line of an invocation carrying its request id."""

from __future__ import annotations

import json
import logging

import pytest

from cloudq.core.errors import ConfigurationError
from cloudq.runtime.lambda_logging import (
    InvocationContext,
    lambda_log_settings,
    reset_request_id,
    set_request_id,
)
from cloudq.runtime.logs import JsonFormatter


def test_json_and_info_by_default_and_the_settings_are_honoured() -> None:
    # Given no setting, then each setting
    # Then JSON at INFO, then what is set (any case)
    assert lambda_log_settings({}) == ("json", logging.INFO)
    assert lambda_log_settings({"CLOUDQ_LOG_FORMAT": "TEXT", "CLOUDQ_LOG_LEVEL": "debug"}) == (
        "text",
        logging.DEBUG,
    )


@pytest.mark.parametrize("environ", [{"CLOUDQ_LOG_FORMAT": "xml"}, {"CLOUDQ_LOG_LEVEL": "LOUD"}])
def test_an_unknown_setting_is_refused_naming_the_choices(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="choose one of"):
        lambda_log_settings(environ)


def test_a_line_of_an_invocation_carries_its_request_id() -> None:
    # Given an invocation's request id
    token = set_request_id("request-7")
    try:
        record = logging.LogRecord("cloudq.execution", logging.INFO, __file__, 1, "t SUCCESS", None, None)
        record.task_id, record.task_name = "id-1", "tasks.double"
        # When the line is filtered and formatted as JSON
        InvocationContext().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        reset_request_id(token)
    # Then it carries the request id and the task
    assert line["function_request_id"] == "request-7" and line["task_id"] == "id-1"
