"""Settings: argument over CLOUDQ_* over default, resolved in one place."""

from __future__ import annotations

import pytest

from cloudq import CloudQ, ConfigurationError
from cloudq.config import load_settings


def test_defaults_name_the_sqs_broker_and_the_app_result_table() -> None:
    settings = load_settings("shop", {}, environ={})
    assert settings.broker == "sqs://"
    assert settings.backend == "dynamodb://shop-results"
    assert settings.max_message_bytes == 1024 * 1024


def test_environment_overrides_defaults_and_arguments_override_environment() -> None:
    env = {"CLOUDQ_BROKER": "redis://127.0.0.1:6379/0", "CLOUDQ_RESULT_TTL": "60"}
    assert load_settings("shop", {}, environ=env).broker == "redis://127.0.0.1:6379/0"
    assert load_settings("shop", {}, environ=env).result_ttl == 60
    assert load_settings("shop", {"broker": "memory://"}, environ=env).broker == "memory://"


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
        _ = CloudQ("shop", broker="amqp://localhost").transport
    with pytest.raises(ConfigurationError, match="must be letters"):
        CloudQ("shop app")
