"""boto3 sessions on one shared data loader: the botocore half of the client factory
(``cloudq.core.aws``), imported only when a boto3 client is made, so that the lean path on
Lambda never imports botocore."""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Mapping
from typing import Any

import boto3
import botocore.exceptions
import botocore.loaders
import botocore.session

from cloudq.core.distribution import VERSION


class _FileLoader:
    """botocore's JSON file loader, keeping of endpoints.json only the entries of the services
    it is given (cloudq's: ``cloudq.core.aws.ENDPOINT_PREFIXES``). Parsed whole, that file is
    6.7 MiB of dicts, the largest part of an idle worker's heap, for the hundreds of services
    cloudq never calls (issue 14); every partition and its regions are kept, so region checks
    and endpoints are as before."""

    def __init__(self, kept: Collection[str]) -> None:
        self._files = botocore.loaders.JSONFileLoader()
        self._kept = set(kept)

    def exists(self, file_path: str) -> bool:
        return bool(self._files.exists(file_path))

    def load_file(self, file_path: str) -> Any:
        data = self._files.load_file(file_path)
        if data is None or os.path.basename(file_path) != "endpoints":
            return data
        kept = self._kept
        partitions = [
            {**partition, "services": {k: v for k, v in partition["services"].items() if k in kept}}
            for partition in data.get("partitions", [])
        ]
        return {**data, "partitions": partitions}


class _Loader(botocore.loaders.Loader):  # type: ignore[misc]  # botocore is untyped
    """botocore's data loader, knowing only the services it is given (cloudq's). To check
    that a service exists before loading its model, botocore lists every service it has
    data for: about 430 folders, 900 ``stat`` calls for each kind of model (the service
    model, the endpoint rule set), ~14 ms of the first client of a process, a Lambda cold
    start's included (issue 14). cloudq only loads the models of its own services: each is
    looked for in its own folder (``list_api_versions``), as botocore then does anyway."""

    def __init__(self, services: Mapping[str, str]) -> None:
        super().__init__(file_loader=_FileLoader(services.values()))
        self._services = sorted(services)

    def list_available_services(self, type_name: str) -> list[str]:
        return [service for service in self._services if self._has(service, type_name)]

    def _has(self, service: str, type_name: str) -> bool:
        try:
            return bool(self.list_api_versions(service, type_name))
        except botocore.exceptions.DataNotFoundError:
            return False


#: One data loader for every client of the process: the service models and endpoints.json
#: are read and parsed once, not once per client (a worker has two SQS clients and a
#: DynamoDB one; measured in bench/bench_cold.py). Sessions stay one per client, so
#: credentials and settings are still resolved for each, as before.
_loaders: dict[tuple[tuple[str, str], ...], _Loader] = {}
_loader_lock = threading.Lock()


def session(services: Mapping[str, str]) -> tuple[boto3.session.Session, str]:
    """A session on the shared loader of ``services`` (cloudq's services and their names in
    ``endpoints.json``: ``cloudq.core.aws.ENDPOINT_PREFIXES``), and the User-Agent its
    clients send."""
    core = botocore.session.get_session()
    with _loader_lock:
        key = tuple(sorted(services.items()))
        loader = _loaders.get(key) or _loaders.setdefault(key, _Loader(services))
        core.register_component("data_loader", loader)
        session = boto3.session.Session(botocore_session=core)
        # boto3 appends its own data folder to the loader's search path on every session.
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session, f"{core.user_agent()} cloudq/{VERSION}"
