"""cloudq in a Django project (the ``django`` extra).

::

    # mysite/cloudq_app.py
    from cloudq.contrib.django import DjangoCloudQ

    app = DjangoCloudQ("events")          # settings from settings.CLOUDQ, then CLOUDQ_*, defaults

    # events/tasks.py                      (found by autodiscovery on the worker)
    from mysite.cloudq_app import app

    @app.task
    def update_participants(event_id: int, n: int) -> int: ...

    # a view
    result = update_participants.delay_on_commit(event.id, 23)   # result.id known now

    DJANGO_SETTINGS_MODULE=mysite.settings cloudq worker mysite.cloudq_app:app

- Settings: ``settings.CLOUDQ`` is a dict with the constructor's keys (``broker``, ``backend``,
  ``default_queue``, …). Precedence: constructor arguments, then ``settings.CLOUDQ``, then
  ``CLOUDQ_*`` variables, then defaults (resolved by ``cloudq.core.config``, which never imports
  Django: ``DjangoSettings`` is the settings source handed to it).
- Worker start: whenever ``DJANGO_SETTINGS_MODULE`` is set, ``cloudq worker`` (and every
  command or Lambda handler that loads an app) calls ``setup()`` first: ``django.setup()``, then
  each installed app's ``tasks`` module is imported, as Celery's autodiscovery does.
- Database connections: ``close_db_connections`` runs before and after every task (the
  ``before_task`` and ``after_task`` hooks), as Django does around every request: connections
  past ``CONN_MAX_AGE``, broken ones, and ones the database dropped are closed and reopened on
  next use (with ``CONN_HEALTH_CHECKS = True`` a dropped connection is noticed before the
  task's first query). ``app.hooks.before_task.disconnect(close_db_connections)`` (and
  ``after_task``) turns it off.
- ``task.delay_on_commit(...)`` sends when the current transaction commits (never if it rolls
  back) and returns the ``AsyncResult`` at once, its id chosen now.
- Tests: ``TEST_RUNNER = "cloudq.contrib.django.testing.DiscoverRunner"`` puts every
  ``DjangoCloudQ`` app on the in-process engines for ``manage.py test``
  (``cloudq.contrib.django.testing.use_memory_engines()`` does it for other runners).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from cloudq.app.base import CloudQ
from cloudq.app.result import AsyncResult
from cloudq.app.task import Task
from cloudq.core.errors import ConfigurationError, MissingExtraError
from cloudq.core.message import new_task_id

try:
    import django
    from django.conf import settings as django_settings
    from django.db import connections, transaction
except ModuleNotFoundError as exc:
    if exc.name != "django":
        raise
    raise MissingExtraError("django", "django") from None

if TYPE_CHECKING:
    from cloudq.app.hooks import TaskEvent

P = ParamSpec("P")
R = TypeVar("R")

MEMORY_ENGINES = {"broker": "memory://", "backend": "memory://"}

__all__ = [
    "DjangoCloudQ",
    "DjangoSettings",
    "DjangoTask",
    "close_db_connections",
    "setup",
]


class DjangoSettings:
    """The settings source of a Django project: the dict ``settings.CLOUDQ`` (optional)."""

    description = "settings.CLOUDQ"

    def values(self, app_name: str) -> Mapping[str, Any]:
        given = getattr(django_settings, "CLOUDQ", {})
        if not isinstance(given, Mapping):
            raise ConfigurationError(f"settings.CLOUDQ must be a dict, not {type(given).__name__}")
        return given


def setup() -> None:
    """``django.setup()``, then import each installed app's ``tasks`` module, so every task
    is registered before the worker receives a message."""
    from django.utils.module_loading import autodiscover_modules

    django.setup()
    autodiscover_modules("tasks")


def close_db_connections(event: TaskEvent | None = None) -> None:
    """Django's ``close_old_connections()`` for this thread's connections, skipping any inside
    an ``atomic`` block (a test's transaction, a task that runs another in-process)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class DjangoTask(Task[P, R]):
    """A task of a ``DjangoCloudQ`` app: also sends when a transaction commits."""

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay(...)`` when the current transaction commits (at once outside one)."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        using: str | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """``apply_async(...)`` when the transaction of database ``using`` commits; nothing is
        sent if it rolls back. Arguments are checked now, and the task id is chosen now, so the
        returned result's ``id`` can go into the response."""
        self.arguments.encode(tuple(args), dict(kwargs or {}))  # a bad argument fails here, not at commit
        task_id = options.pop("task_id", None) or new_task_id()
        send = functools.partial(self.apply_async, args, kwargs, task_id=task_id, **options)
        transaction.on_commit(send, using=using)
        return AsyncResult(task_id, self.app, task=self)


_apps: weakref.WeakSet[DjangoCloudQ] = weakref.WeakSet()
_memory_engines = False


class DjangoCloudQ(CloudQ):
    """A ``CloudQ`` app configured from ``settings.CLOUDQ``, whose tasks have
    ``delay_on_commit``, and that closes stale database connections around every task."""

    task_class = DjangoTask

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, settings_source=DjangoSettings(), **kwargs)
        self.hooks.before_task(close_db_connections)
        self.hooks.after_task(close_db_connections)
        _apps.add(self)
        if _memory_engines:
            self.use_memory_engines()

    def use_memory_engines(self) -> None:
        """Switch to the in-process broker and results (tests): nothing reaches AWS."""
        with self._lock:
            self.settings = self.settings.model_copy(update=MEMORY_ENGINES)
            self._transport = None
            self._backend = None

    @overload
    def task(self, fn: Callable[P, R]) -> DjangoTask[P, R]: ...

    @overload
    def task(self, fn: None = None, **options: Any) -> Callable[[Callable[P, R]], DjangoTask[P, R]]: ...

    def task(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """``@app.task`` as on ``CloudQ``; the task also has ``delay_on_commit``."""
        return super().task(fn, **options)


def use_memory_engines() -> None:
    """Put every ``DjangoCloudQ`` app, existing and future, on the in-process engines."""
    global _memory_engines
    _memory_engines = True
    for app in list(_apps):
        app.use_memory_engines()
