"""``AsyncResult``: a handle on a task's result by id. Polling and backoff live here, once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cloudq.backends.base import Progress, ResultRecord, State
from cloudq.core.errors import ConfigurationError, TaskError, TaskRevokedError

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.task import Task
    from cloudq.backends.base import ResultBackend

R = TypeVar("R")

#: Polling starts at ``interval`` and doubles up to this many seconds.
MAX_POLL_INTERVAL = 1.0


class AsyncResult(Generic[R]):
    """The result of one task invocation. ``id`` is the task id (keep it; it is the key)."""

    def __init__(
        self,
        id: str,  # noqa: A002
        app: CloudQ,
        task: Task[Any, R] | None = None,
        parent: AsyncResult[Any] | None = None,
    ) -> None:
        self.id = id
        self.app = app
        self.task = task
        #: The previous link's handle, for a chain's handle.
        self.parent = parent

    def __repr__(self) -> str:
        return f"<AsyncResult {self.id}>"

    def _backend(self) -> ResultBackend:
        backend = self.app.backend
        if backend is None:
            raise ConfigurationError(
                f"app {self.app.name!r} has results turned off (backend=None); set a backend to fetch results"
            )
        return backend

    def record(self) -> ResultRecord | None:
        """The stored record, or ``None`` while PENDING."""
        return self._backend().get(self.id)

    @property
    def state(self) -> State:
        record = self.record()
        return State.PENDING if record is None else record.state

    @property
    def progress(self) -> Progress | None:
        """The running task's last ``set_progress`` report (state PROGRESS), else ``None``."""
        record = self.record()
        return record.progress if record is not None and record.state is State.PROGRESS else None

    def ready(self) -> bool:
        return self.state.ready

    def successful(self) -> bool:
        return self.state is State.SUCCESS

    def failed(self) -> bool:
        return self.state is State.FAILURE

    def get(self, timeout: float | None = None, interval: float = 0.05) -> R:
        """Wait for the value. Raises ``TimeoutError`` after ``timeout`` seconds, and
        ``TaskError`` (remote type, message, traceback) if the task failed."""
        clock = self.app.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        backend = self._backend()
        while True:
            record = backend.get(self.id)
            if record is not None and record.state.ready:
                return self._value(record)
            if deadline is not None and clock.monotonic() >= deadline:
                state = State.PENDING if record is None else record.state
                raise TimeoutError(f"task {self.id} not ready after {timeout} s (state {state.value})")
            pause = interval if deadline is None else min(interval, max(deadline - clock.monotonic(), 0))
            clock.sleep(pause)
            interval = min(interval * 2, MAX_POLL_INTERVAL)

    def revoke(self) -> bool:
        """Revoke the task: if it has not started (or waits for a retry), it never runs: its
        message is acknowledged without running when it arrives. ``False`` when it had
        already finished. A running task is not stopped. Needs a result backend."""
        return self._backend().revoke(self.id, self.app.clock.time(), self.app.result_expiry()) is None

    def _value(self, record: ResultRecord) -> R:
        if record.state is State.REVOKED:
            raise TaskRevokedError(self.id, "TaskRevokedError", "the task was revoked")
        if record.state is State.FAILURE:
            raise TaskError(
                self.id,
                record.error_type or "Error",
                record.error_message or "",
                record.traceback or "",
            )
        stored = self._stored_value(record)
        if self.task is not None:
            value: R = self.task.arguments.result_from_json(stored)
            return value
        return stored  # type: ignore[no-any-return]

    def _stored_value(self, record: ResultRecord) -> Any:
        """The JSON value, read from the payload store when the record points there."""
        if record.value_pointer is None:
            return record.value
        return self.app.codec.load_value(record.value_pointer)

    @property
    def result(self) -> Any:
        """The value if SUCCESS, the error message if FAILURE, else ``None`` (no waiting)."""
        record = self.record()
        if record is None:
            return None
        return record.error_message if record.state is State.FAILURE else self._stored_value(record)


class GroupResult:
    """The results of a group's members, in order: ``get()``, ``ready()``, ``completed_count()``."""

    def __init__(self, results: list[AsyncResult[Any]], app: CloudQ) -> None:
        self.results = results
        self.app = app

    def __repr__(self) -> str:
        return f"<GroupResult of {len(self.results)}>"

    def __len__(self) -> int:
        return len(self.results)

    def _records(self) -> dict[str, ResultRecord]:
        backend = self.results[0]._backend() if self.results else None
        return {} if backend is None else backend.get_many([result.id for result in self.results])

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(1 for record in self._records().values() if record.state is State.SUCCESS)

    def ready(self) -> bool:
        """Whether every member has finished (succeeded, failed or was revoked)."""
        records = self._records()
        return all(result.id in records and records[result.id].state.ready for result in self.results)

    def get(self, timeout: float | None = None, interval: float = 0.05) -> list[Any]:
        """Every member's value, in order (one batched read per poll). Raises ``TaskError``
        for the first member that failed, ``TimeoutError`` after ``timeout`` seconds."""
        clock = self.app.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            records = self._records()
            done = [records.get(result.id) for result in self.results]
            if all(record is not None and record.state.ready for record in done):
                return [
                    result._value(record) for result, record in zip(self.results, done, strict=True) if record
                ]
            if deadline is not None and clock.monotonic() >= deadline:
                finished = sum(1 for record in done if record is not None and record.state.ready)
                raise TimeoutError(f"group not ready after {timeout} s ({finished} of {len(done)} finished)")
            clock.sleep(interval if deadline is None else min(interval, max(deadline - clock.monotonic(), 0)))
            interval = min(interval * 2, MAX_POLL_INTERVAL)
