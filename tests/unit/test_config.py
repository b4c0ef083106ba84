"""Settings: argument over CLOUDQ_* over default, resolved in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from cloudq import CloudQ, ConfigurationError
from cloudq.core.config import load_settings


def test_defaults_name_the_sqs_broker_and_the_app_result_table() -> None:
    settings = load_settings("shop", {}, environ={})
    assert settings.broker == "sqs://"
    assert settings.backend == "dynamodb://shop-results"
    assert settings.max_message_bytes is None  # the broker's own limit


def test_environment_overrides_defaults_and_arguments_override_environment() -> None:
    env = {"CLOUDQ_BROKER": "redis://127.0.0.1:6379/0", "CLOUDQ_RESULT_TTL": "60"}
    assert load_settings("shop", {}, environ=env).broker == "redis://127.0.0.1:6379/0"
    assert load_settings("shop", {}, environ=env).result_ttl == 60
    assert load_settings("shop", {"broker": "memory://"}, environ=env).broker == "memory://"


class FrameworkSettings:
    """A settings source, as a framework integration supplies one (Django: settings.CLOUDQ)."""

    description = "settings.CLOUDQ"

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def values(self, app_name: str) -> Mapping[str, Any]:
        return self._values


def test_a_settings_source_sits_between_arguments_and_the_environment() -> None:
    source = FrameworkSettings({"broker": "memory://", "result_ttl": 5})
    env = {"CLOUDQ_BROKER": "sqs://", "CLOUDQ_RESULT_TTL": "60", "CLOUDQ_MAX_RETRIES": "9"}
    settings = load_settings("shop", {"result_ttl": 1}, environ=env, source=source)
    # argument over source, source over environment, environment over default
    assert (settings.result_ttl, settings.broker, settings.max_retries) == (1, "memory://", 9)
    assert settings.default_queue == "default"


def test_a_settings_source_with_a_bad_key_or_value_names_itself() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown setting\(s\) in settings.CLOUDQ: brokr"):
        load_settings("shop", {}, environ={}, source=FrameworkSettings({"brokr": "sqs://"}))
    with pytest.raises(ConfigurationError, match=r"'wait_seconds' \(argument, settings.CLOUDQ or CLOUDQ_"):
        CloudQ("shop", settings_source=FrameworkSettings({"wait_seconds": 99}))


def test_backend_none_turns_results_off_from_argument_or_environment() -> None:
    assert load_settings("shop", {"backend": None}, environ={}).backend is None
    assert load_settings("shop", {}, environ={"CLOUDQ_BACKEND": "none"}).backend is None


def test_signing_keys_come_comma_separated_from_the_environment() -> None:
    env = {"CLOUDQ_SIGNING_KEYS": "new,old"}
    assert load_settings("shop", {}, environ=env).signing_keys == ("new", "old")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"wait_seconds": 30}, "SQS long-poll limit"),
        ({"result_ttl": "soon"}, "result_ttl"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_naming_it(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings("shop", overrides, environ={})


def test_unknown_settings_and_urls_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown setting"):
        CloudQ("shop", brokr="sqs://")
    with pytest.raises(ConfigurationError, match="unknown broker URL"):
        _ = CloudQ("shop", broker="kafka://localhost").transport
    with pytest.raises(ConfigurationError, match="must be letters"):
        CloudQ("shop app")
