"""Logging set-up for the command line: text or JSON lines.

Every record logged while a task runs (the task's own lines too) carries ``task_id`` and
``task_name`` (and ``trace_id`` when the message carried a trace context, see
``cloudq.tracing``); the executor's outcome lines carry them as well, so ``--log-format json``
lines can be searched by task and by trace. ``--debug`` turns on cloudq's debug lines but keeps the AWS
SDK's wire logs (hundreds of lines a second while polling) off; ``--debug-aws`` adds them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from cloudq.task import current_request
from cloudq.tracing import trace_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
#: The AWS SDK's loggers: quiet unless ``debug_aws``.
AWS_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")
#: Record attributes that JSON lines carry when present.
CONTEXT_FIELDS = ("task_id", "task_name", "message_id", "trace_id")


class TaskContext(logging.Filter):
    """Adds the running task's id and name, and its trace id when it has one, to records
    that do not carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request()
        if request is not None and not hasattr(record, "task_id"):
            record.task_id = request.id
            record.task_name = request.task
            if request.traceparent is not None:
                record.trace_id = trace_id(request.traceparent)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the task's context."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(*, debug: bool = False, debug_aws: bool = False, log_format: str = "text") -> None:
    """Set up the root logger for a cloudq process (the CLI, worker child processes)."""
    handler = logging.StreamHandler()
    handler.addFilter(TaskContext())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    # Neither format shows the caller, the thread or the process: don't collect them for
    # every record (the logging HOWTO's "Optimization"; a worker writes a line per task).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug or debug_aws else logging.INFO)
    for name in AWS_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug_aws else logging.WARNING)
