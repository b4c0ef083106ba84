"""The Lambda handler's log lines: set up once per cold start, JSON lines by default.

On Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set, by AWS and by the emulator) the handler replaces
the runtime's root handler with cloudq's (``cloudq.runtime.logs``): one line per task outcome as on the
worker, each carrying ``task_id``, ``task_name``, ``attempt`` (lines of the running task) and
``function_request_id`` (the invocation's ``aws_request_id``, named as Powertools names it).
``CLOUDQ_LOG_FORMAT`` (``json`` by default here, ``text``) and ``CLOUDQ_LOG_LEVEL`` (``INFO``)
choose the format and the root level. Elsewhere (tests calling the handler, a user's own
set-up) logging is left alone.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Mapping

from cloudq.core.errors import ConfigurationError
from cloudq.runtime.logs import LOG_FORMATS, configure_logging

#: Set by the Lambda runtime (and the emulator) in a function's environment.
LAMBDA_MARKER = "AWS_LAMBDA_FUNCTION_NAME"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LAMBDA_LOG_FORMAT = "json"

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("cloudq_request_id", default=None)
_configured = False


class InvocationContext(logging.Filter):
    """Adds the current invocation's request id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _request_id.get()
        if request_id is not None and not hasattr(record, "function_request_id"):
            record.function_request_id = request_id
        return True


def lambda_log_settings(environ: Mapping[str, str]) -> tuple[str, int]:
    """(format, level) from ``CLOUDQ_LOG_FORMAT`` and ``CLOUDQ_LOG_LEVEL``, or Lambda's defaults."""
    log_format = environ.get("CLOUDQ_LOG_FORMAT", DEFAULT_LAMBDA_LOG_FORMAT).strip().lower()
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(f"CLOUDQ_LOG_FORMAT={log_format!r}: choose one of {', '.join(LOG_FORMATS)}")
    level = environ.get("CLOUDQ_LOG_LEVEL", "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigurationError(f"CLOUDQ_LOG_LEVEL={level!r}: choose one of {', '.join(LOG_LEVELS)}")
    return log_format, logging.getLevelName(level)


def configure_lambda_logging(environ: Mapping[str, str] = os.environ) -> None:
    """Once per execution environment, and only on Lambda: cloudq's handler on the root logger."""
    global _configured
    if _configured or LAMBDA_MARKER not in environ:
        return
    log_format, level = lambda_log_settings(environ)
    configure_logging(log_format=log_format)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        handler.addFilter(InvocationContext())
    _configured = True


def set_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    """The invocation's request id for the lines logged until ``reset_request_id``."""
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)
