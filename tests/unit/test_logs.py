"""The worker's batched log lines: every line written, in order, soon; warnings at once."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from cloudq.runtime.logs import LOG_FLUSH_LINES, TEXT_FORMAT, BatchedStreamHandler, TextFormatter
from tests.processes import wait_until


@pytest.fixture
def batched() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test-batched-{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)
    handler.close()


def test_lines_of_many_threads_are_all_written_each_thread_in_its_order(
    batched: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = batched

    def log(thread: int) -> None:
        for line in range(300):
            logger.info("thread %d line %d", thread, line)

    threads = [threading.Thread(target=log, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Written by the handler's writer without a flush from here.
    assert wait_until(lambda: stream.getvalue().count("\n") == 8 * 300, 5)
    lines = stream.getvalue().splitlines()
    for index in range(8):
        mine = [line for line in lines if line.startswith(f"INFO thread {index} ")]
        assert mine == [f"INFO thread {index} line {line}" for line in range(300)]


def test_a_warning_is_written_at_once_after_the_lines_before_it(
    batched: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = batched
    logger.info("first")
    logger.info("second")
    logger.warning("third")
    assert stream.getvalue() == "INFO first\nINFO second\nWARNING third\n"


def test_a_full_batch_is_written_at_once(batched: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = batched
    # The writer thread also writes what waits every LOG_FLUSH_SECONDS, so on a loaded machine
    # part of a batch may go early; what holds either way: never LOG_FLUSH_LINES lines wait.
    for line in range(3 * LOG_FLUSH_LINES):
        logger.info("line %d", line)
        if line % 97 == 0:
            waiting = line + 1 - stream.getvalue().count("\n")
            assert waiting < LOG_FLUSH_LINES
    assert 3 * LOG_FLUSH_LINES - stream.getvalue().count("\n") < LOG_FLUSH_LINES


def test_a_process_that_exits_writes_every_line_first() -> None:
    code = (
        "import logging\n"
        "from cloudq.runtime.logs import configure_logging\n"
        "configure_logging(batched=True)\n"
        "for n in range(500):\n"
        "    logging.getLogger('cloudq.test').info('line %d', n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    lines = out.stderr.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [f"line {n}" for n in range(500)]
    assert TEXT_FORMAT.startswith("%(asctime)s") and all(" INFO cloudq.test: " in line for line in lines)


def test_text_lines_read_as_the_standard_formatter_writes_them_across_seconds() -> None:
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for created in (1700000000.123, 1700000000.999, 1700000001.0005, 1700000001.5, 1700000000.2):
        record = logging.LogRecord("cloudq", logging.INFO, __file__, 1, "add[%s] SUCCESS", ("1",), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == standard.format(record)


#: What a worker with DJANGO_SETTINGS_MODULE does: cloudq's logging, then django.setup()'s
#: dictConfig (Django's default LOGGING), then its last line at INFO as the process exits.
LAST_LINE_AFTER_DICTCONFIG = """
import logging, logging.config
from cloudq.runtime.logs import configure_logging
configure_logging(batched=True)
logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
logging.getLogger("cloudq.worker").info("worker stopped: 3 tasks")
"""


def test_the_last_line_is_written_at_exit_after_a_dictconfig() -> None:
    # Given batched logging, then a dictConfig as django.setup() runs one
    # When the process logs its last line at INFO and exits at once
    done = subprocess.run(
        [sys.executable, "-c", LAST_LINE_AFTER_DICTCONFIG], capture_output=True, text=True, timeout=30
    )
    # Then the line is written (it was lost: logging.shutdown no longer knew the handler)
    assert done.returncode == 0 and "worker stopped: 3 tasks" in done.stderr, done.stderr
