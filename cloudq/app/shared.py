"""``shared_task``: tasks defined by reusable code (a Django app, a library) that does not
import the project's app, as Celery's ``shared_task`` defines them.

A shared task is registered on every ``CloudQ`` app of the process: those that exist when it
is defined, and each one created later. Sending it (``.delay()``, ``.apply_async()``, ``.s()``)
uses the current app: as in Celery (``set_as_current=True``), that is the app created last.
A worker runs it like any task of the app it loaded.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from cloudq.core.errors import ConfigurationError

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.canvas import Signature
    from cloudq.app.result import AsyncResult
    from cloudq.app.task import Task

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
#: Every shared task defined so far: its function and options.
_defined: list[tuple[Callable[..., Any], dict[str, Any]]] = []
_apps: weakref.WeakSet[CloudQ] = weakref.WeakSet()
_current: weakref.ref[CloudQ] | None = None


def app_created(app: CloudQ) -> None:
    """Called by each new ``CloudQ``: it becomes the current app and gets every shared task."""
    global _current
    with _lock:
        _apps.add(app)
        _current = weakref.ref(app)
        defined = list(_defined)
    for fn, options in defined:
        app.task(**options)(fn)


def current_app() -> CloudQ:
    """The app created last in this process (``ConfigurationError`` when there is none)."""
    app = _current() if _current is not None else None
    if app is None:
        raise ConfigurationError(
            "a shared task was sent before any CloudQ app was created; create the app first"
        )
    return app


class SharedTask(Generic[P, R]):
    """A task of every app, sent through the current one (module docstring)."""

    def __init__(self, fn: Callable[P, R], name: str) -> None:
        self.fn = fn
        self.name = name

    def __repr__(self) -> str:
        return f"<shared task {self.name}>"

    @property
    def task(self) -> Task[P, R]:
        """This task as the current app registered it."""
        task: Task[P, R] = current_app().tasks[self.name]
        return task

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.task(*args, **kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        return self.task.delay(*args, **kwargs)

    def apply_async(self, *args: Any, **options: Any) -> AsyncResult[R]:
        return self.task.apply_async(*args, **options)

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        return self.task.s(*args, **kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        return self.task.si(*args, **kwargs)


@overload
def shared_task(fn: Callable[P, R]) -> SharedTask[P, R]: ...


@overload
def shared_task(fn: None = None, **options: Any) -> Callable[[Callable[P, R]], SharedTask[P, R]]: ...


def shared_task(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``@shared_task`` or ``@shared_task(name=…, queue=…, …)``: the options of ``app.task``."""

    def define(function: Callable[..., Any]) -> SharedTask[Any, Any]:
        from cloudq.app.task import default_task_name

        with _lock:
            _defined.append((function, dict(options)))
            apps = list(_apps)
        for app in apps:
            app.task(**options)(function)
        return SharedTask(function, options.get("name") or default_task_name(function))

    return define if fn is None else define(fn)
