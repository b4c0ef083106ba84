"""cloudq's boto3 clients share one botocore loader that keeps only the endpoint data of the
services cloudq calls (issue 14: memory). Their endpoints must be the ones botocore's full
data gives."""

from __future__ import annotations

import boto3
import pytest

from cloudq.core.aws import ENDPOINT_PREFIXES, aws_client

#: Regions of the standard, China and GovCloud partitions.
REGIONS = ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1")


@pytest.mark.parametrize("fips", [False, True])
def test_clients_resolve_the_endpoints_botocore_resolves(monkeypatch: pytest.MonkeyPatch, fips: bool) -> None:
    # Given no emulator endpoint, and FIPS endpoints asked for or not
    for suffix in ("", "_SQS", "_DYNAMODB", "_S3", "_CLOUDWATCH"):
        monkeypatch.delenv("AWS_ENDPOINT_URL" + suffix, raising=False)
    monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", "true" if fips else "false")
    # (one plain session for all: a new one loads each service's model again, 0.2 s a client)
    session = boto3.session.Session()
    for service in ENDPOINT_PREFIXES:
        for region in REGIONS:
            # When cloudq and plain boto3 each build a client
            ours = aws_client(service, region_name=region, read_timeout=1)
            plain = session.client(service, region_name=region)
            # Then they talk to the same endpoint
            assert ours.meta.endpoint_url == plain.meta.endpoint_url, (service, region)
            assert ours.meta.region_name == plain.meta.region_name


def test_a_service_without_endpoint_data_is_refused() -> None:
    with pytest.raises(ValueError, match="ENDPOINT_PREFIXES"):
        aws_client("lambda", region_name="us-east-1", read_timeout=1)


def test_the_shared_loader_knows_only_cloudq_services_and_loads_their_latest_models() -> None:
    # Given cloudq's loader, which skips botocore's listing of every service (issue 14); a new
    # one: the process's shared one caches models that botocore amends on a first S3 call
    # (``authPath``), as its own loader's cache is amended within a session
    from cloudq.core.boto_sessions import _Loader

    loader = _Loader(ENDPOINT_PREFIXES)
    plain = boto3.session.Session()._loader
    for type_name in ("service-2", "endpoint-rule-set-1"):
        # Then it lists cloudq's services, and loads the model botocore's own loader loads
        assert loader.list_available_services(type_name) == sorted(ENDPOINT_PREFIXES)
        for service in ENDPOINT_PREFIXES:
            ours = loader.load_service_model(service, type_name)
            assert ours == plain.load_service_model(service, type_name), (service, type_name)
