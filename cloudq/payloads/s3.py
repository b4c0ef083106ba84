"""``s3://bucket/prefix``: objects in an S3 bucket. Objects that are not deleted expire by the
bucket's lifecycle rule on the prefix (``cloudq infra render`` writes it with the bucket).
Every botocore error is mapped at one boundary, ``_mapped``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cloudq.core import aws_errors
from cloudq.core.aws import aws_client
from cloudq.core.errors import PayloadMissingError, PayloadStoreError

MISSING_CODES = ("NoSuchKey", "404", "NotFound")


class S3PayloadStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.location = f"s3://{bucket}/{prefix}"
        self._client = client or aws_client("s3", endpoint_url, region_name, read_timeout=30)

    def key_for(self, name: str) -> str:
        return self.prefix + name

    @contextmanager
    def _mapped(self, key: str) -> Iterator[None]:
        try:
            yield
        except aws_errors.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in MISSING_CODES:
                raise PayloadMissingError(
                    f"payload object s3://{self.bucket}/{key} is missing (deleted, or expired by the "
                    "bucket's lifecycle rule)"
                ) from exc
            if code == "NoSuchBucket":
                raise PayloadStoreError(
                    f"bucket {self.bucket!r} does not exist; create it with 'cloudq emulator up --app "
                    "MODULE:APP' locally, or deploy the template of 'cloudq infra render'"
                ) from exc
            raise PayloadStoreError(f"S3 {code} on s3://{self.bucket}/{key}: {exc}") from exc
        except aws_errors.BotoCoreError as exc:
            raise PayloadStoreError(f"S3 unreachable for s3://{self.bucket}/{key}: {exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        with self._mapped(key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")

    def get(self, key: str) -> bytes:
        with self._mapped(key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def delete(self, key: str) -> None:
        with self._mapped(key):
            self._client.delete_object(Bucket=self.bucket, Key=key)
