"""Sending from asyncio code (FastAPI, Starlette, Django async views) without blocking the
event loop.

boto3 is synchronous, so ``task.adelay()`` / ``task.aapply_async()`` run the ordinary send on
a thread of one process-wide pool and await it. The pool is as large as the AWS clients'
connection pools (``cloudq.core.aws``: 64), not the event loop's default executor (at most 32
threads, 6 on a 2-core machine), so concurrent requests send concurrently.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: Sends in flight at once per process (the AWS clients keep this many connections).
SEND_THREADS = 64

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="cloudq-send")
        return _pool


async def run_in_thread(fn: Callable[[], T]) -> T:
    """Run the blocking ``fn`` on the send pool and await its value (or its exception)."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), fn)
