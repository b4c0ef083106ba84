"""Logging set-up for the command line: text or JSON lines.

Every record logged while a task runs (the task's own lines too) carries ``task_id`` and
``task_name`` (and ``trace_id`` when the message carried a trace context, see
``cloudq.tracing``); the executor's outcome lines carry them as well, so ``--log-format json``
lines can be searched by task and by trace. ``--debug`` turns on cloudq's debug lines but keeps the AWS
SDK's wire logs (hundreds of lines a second while polling) off; ``--debug-aws`` adds them.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import os
import sys
import threading
import time
import traceback
import weakref
from typing import TextIO

from cloudq.core.request import current_request
from cloudq.runtime.lines import PendingLines
from cloudq.tracing import trace_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
#: The AWS SDK's loggers: quiet unless ``debug_aws``.
AWS_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")
#: Record attributes that JSON lines carry when present.
CONTEXT_FIELDS = ("task_id", "task_name", "attempt", "message_id", "trace_id", "function_request_id")
#: A worker's lines below WARNING reach the stream at most this late (``BatchedStreamHandler``).
LOG_FLUSH_SECONDS = 0.1
#: ... or as soon as this many are waiting.
LOG_FLUSH_LINES = 1000


class TaskContext(logging.Filter):
    """Adds the running task's id, name and attempt, and its trace id when it has one, to records
    that do not carry them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "task_id"):  # an outcome line carries its task already
            return True
        request = current_request()
        if request is not None:
            record.task_id = request.id
            record.task_name = request.task
            record.attempt = request.attempt
            if request.traceparent is not None:
                record.trace_id = trace_id(request.traceparent)
        return True


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines. The time's text is made once per second, not once per line (it
    is a fifth of a line's cost, and a worker writes a line per task)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        cached = self._second  # one read: another thread may replace it meanwhile
        if cached[0] != second:
            cached = (second, time.strftime(self.default_time_format, self.converter(record.created)))
            self._second = cached
        return f"{cached[1]},{int(record.msecs):03d}"  # as logging.Formatter.default_msec_format


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the task's context."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
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
                line[name] = value if isinstance(value, int) else str(value)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler writing its lines in batches (``cloudq.runtime.lines.PendingLines``): each
    record is formatted when it is logged; the lines waiting are written together, in order,
    at most ``LOG_FLUSH_SECONDS`` later, at once when a record of WARNING or above arrives
    (with the lines before it) or ``LOG_FLUSH_LINES`` wait, and on ``flush()`` (at exit, and
    when a worker exits without waiting for its tasks). For a worker's line per task: written
    one at a time from N task threads, each line is a system call made under the handler's
    lock. Like the standard library's ``MemoryHandler`` with ``flushLevel=WARNING``, but no
    line waits longer than ``LOG_FLUSH_SECONDS``; a process killed outright (SIGKILL) loses at
    most that much of its lines below WARNING."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._lines = PendingLines()
        self._waiting = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        _batched_handlers.add(self)

    def handle(self, record: logging.LogRecord) -> bool:
        """Format the record and queue its line, without the handler's lock (the formatters
        keep no state between records)."""
        if not self.filter(record):
            return False
        try:
            waiting = self._lines.add(self.format(record))
        except Exception:
            self.handleError(record)
            return True
        if record.levelno >= logging.WARNING or waiting >= LOG_FLUSH_LINES:
            self.flush()
        elif not self._waiting.is_set():
            if self._writer is None:
                self._start_writer()
            self._waiting.set()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def flush(self) -> None:
        """Write every line waiting now, in one write."""
        if self.stream is None:
            return
        try:
            self._lines.write_to(self.stream)
        except Exception:  # as logging.Handler.handleError: never raise into the caller
            if logging.raiseExceptions and sys.stderr is not None:
                traceback.print_exc(file=sys.stderr)

    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None:
                writer = threading.Thread(target=self._write_loop, name="cloudq-log-writer", daemon=True)
                writer.start()
                self._writer = writer

    def _write_loop(self) -> None:
        while True:
            self._waiting.wait()
            time.sleep(LOG_FLUSH_SECONDS)
            self._waiting.clear()  # before the lines are taken: one queued after is written next time
            self.flush()

    def _after_fork(self) -> None:
        """In a forked child the writer thread is gone: the next line starts a new one."""
        self._writer = None
        self._waiting = threading.Event()
        self._writer_lock = threading.Lock()
        self._lines.after_fork()


_batched_handlers: weakref.WeakSet[BatchedStreamHandler] = weakref.WeakSet()


def _after_fork() -> None:
    for handler in _batched_handlers:
        handler._after_fork()


os.register_at_fork(after_in_child=_after_fork)


def _flush_batched() -> None:
    """At exit, write what waits: ``logging.shutdown`` flushes only the handlers it still
    knows, and a ``logging.config.dictConfig`` (``django.setup()`` runs one) forgets every
    handler made before it, ours too, though the root logger keeps using it: the worker's
    final ``worker stopped`` line was lost (issue 31)."""
    for handler in list(_batched_handlers):
        handler.flush()


atexit.register(_flush_batched)  # after logging's own hook, so it runs before it


def configure_logging(
    *, debug: bool = False, debug_aws: bool = False, log_format: str = "text", batched: bool = False
) -> None:
    """Set up the root logger for a cloudq process (the CLI, worker child processes);
    ``batched``: write lines in batches (``BatchedStreamHandler``), for a worker."""
    handler = BatchedStreamHandler() if batched else logging.StreamHandler()
    handler.addFilter(TaskContext())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # Neither format shows the caller, the thread or the process: don't collect them for
    # every record (the logging HOWTO's "Optimization"; a worker writes a line per task).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug or debug_aws else logging.INFO)
    for name in AWS_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug_aws else logging.WARNING)
