"""The amqp:// broker URL and the missing extra (no server needed: nothing connects)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cloudq import CloudQ, ConfigurationError
from cloudq.transports.amqp import AMQPTransport


def test_an_amqp_url_names_host_vhost_credentials_and_tls() -> None:
    # Given broker URLs as Amazon MQ and a local RabbitMQ give them
    local = CloudQ("shop", broker="amqp://guest:guest@127.0.0.1:5672//").transport
    amazon = AMQPTransport.from_url(
        "amqps://app:s%3Acret@b-1.mq.eu-west-1.amazonaws.com/prod?delivery_limit=5"
    )
    # Then each names where it goes (queues prefixed with the app), and amqps is TLS on 5671
    assert isinstance(local, AMQPTransport)
    assert local.describe() == "RabbitMQ at 127.0.0.1:5672 vhost /"
    assert local.prefix == "shop-"
    assert amazon.describe() == "RabbitMQ at b-1.mq.eu-west-1.amazonaws.com:5671 vhost prod"
    assert amazon.delivery_limit == 5
    # And the engine declares that it keeps no per-message visibility timeout
    assert local.visibility_timeouts is False


def test_a_bad_amqp_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="delivery_limit"):
        AMQPTransport.from_url("amqp://127.0.0.1/?delivery_limit=lots")
    with pytest.raises(ConfigurationError, match="bad port"):
        AMQPTransport.from_url("amqp://127.0.0.1:notaport/")


def test_without_the_extra_the_error_names_the_fix() -> None:
    # Given an interpreter where the amqp client cannot be imported
    code = (
        "import sys; sys.modules['amqp'] = None; import cloudq; "
        "app = cloudq.CloudQ('shop', broker='amqp://127.0.0.1//')\n"
        "try:\n    app.transport\nexcept cloudq.ConfigurationError as exc:\n    print(exc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # Then the error says which extra to install
    assert done.returncode == 0, done.stderr
    assert "pip install 'cloudq-aws[amqp]'" in done.stdout
