"""Celery's task options and settings as cloudq takes them (docs/guides/celery.md: the
option table). ``task_options`` turns what a Celery user writes on ``@app.task`` into cloudq's
options, or refuses it with what to do instead; ``from_celery_settings`` turns Celery's
settings (Django's ``CELERY_*``) into cloudq's. No import of Celery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from cloudq.core.errors import ConfigurationError, TaskRegistrationError

#: Celery task options cloudq refuses, with what to do instead.
REFUSED_TASK_OPTIONS = {
    "serializer": "cloudq sends JSON only: remove serializer= (JSON is Celery's default too)",
    "routing_key": "cloudq routes by queue name: use queue= instead of routing_key=",
    "exchange": "cloudq routes by queue name: use queue= instead of exchange=",
    "track_started": "remove track_started=: a run's claim already records it as STARTED",
    "reject_on_worker_lost": (
        "remove reject_on_worker_lost=: the message of a worker that died comes back after its "
        "visibility timeout, and counts as an attempt"
    ),
}
#: Celery's names of cloudq's own task options.
RENAMED_TASK_OPTIONS = {"time_limit": "timeout", "soft_time_limit": "soft_timeout"}


def task_options(options: dict[str, Any]) -> None:
    """Make Celery's task options among ``options`` cloudq's, in place; a refused one raises
    ``TaskRegistrationError`` with what to do instead."""
    for name, message in REFUSED_TASK_OPTIONS.items():
        if name in options:
            raise TaskRegistrationError(message)
    for celery, cloudq in RENAMED_TASK_OPTIONS.items():
        if celery in options:
            _take(options, celery, cloudq, options.pop(celery))
    if "acks_late" in options:
        if not options.pop("acks_late"):
            raise TaskRegistrationError(
                "acks_late=False: cloudq acknowledges a message after its task ends, always "
                "(Celery's acks_late=True); remove the option"
            )
    backoff = options.get("retry_backoff")
    if isinstance(backoff, int | float) and not isinstance(backoff, bool):
        # Celery's retry_backoff=N: exponential backoff from N seconds.
        _take(options, "retry_backoff", "retry_delay", backoff)
        options["retry_backoff"] = True
    if "default_retry_delay" in options:
        # Celery's self.retry() without a countdown waits exactly this long.
        _take(options, "default_retry_delay", "retry_delay", options.pop("default_retry_delay"))
        options.setdefault("retry_backoff", False)
        options.setdefault("retry_jitter", False)


def _take(options: dict[str, Any], celery: str, cloudq: str, value: Any) -> None:
    if cloudq in options:
        raise TaskRegistrationError(f"give {cloudq}= or Celery's {celery}=, not both")
    options[cloudq] = value


def from_celery_settings(values: Mapping[str, Any], namespace: str = "CELERY_") -> dict[str, Any]:
    """cloudq settings from Celery's, named ``<namespace><SETTING>`` (Django's ``CELERY_*``;
    ``namespace=""`` for Celery's lower-case names): ``broker_url`` is the broker,
    ``result_backend`` the Celery result backend (``celery_result_backend``: Celery's
    ``.get()`` keeps working), ``result_expires`` the ``result_ttl``, and
    ``task_default_queue`` the default queue, a Celery queue. Other settings are Celery's
    own and left to it; a serializer other than JSON is refused."""
    given = {
        name[len(namespace) :].lower(): value
        for name, value in values.items()
        if name.startswith(namespace) and (namespace or name.islower())
    }
    for name in ("task_serializer", "result_serializer"):
        if given.get(name, "json") != "json":
            raise ConfigurationError(
                f"cloudq reads and writes JSON only: set {namespace}{name.upper()} = 'json'"
            )
    settings: dict[str, Any] = {}
    if given.get("broker_url"):
        settings["broker"] = given["broker_url"]
    if given.get("result_backend"):
        settings["celery_result_backend"] = given["result_backend"]
    expires = given.get("result_expires")
    if expires is not None:
        settings["result_ttl"] = int(
            expires.total_seconds() if isinstance(expires, dt.timedelta) else expires
        )
    if given.get("task_default_queue"):
        settings["default_queue"] = given["task_default_queue"]
        settings["celery_queues"] = (given["task_default_queue"],)
    return settings
