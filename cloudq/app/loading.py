"""Loading an app from its reference (``module:app``), for the CLI, the supervisor's processes
and the Lambda handler: the one place that knows a framework may need setting up first
(Django: ``DJANGO_SETTINGS_MODULE``), so that ``CloudQ`` itself never does."""

from __future__ import annotations

import importlib
import os
import sys

from cloudq.app.base import CloudQ
from cloudq.core.errors import ConfigurationError


def _import_failure(module_name: str, exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return f"cannot import module {module_name!r}: {exc}"
    text = f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
    if type(exc).__name__ in ("ImproperlyConfigured", "AppRegistryNotReady"):
        settings = os.environ.get("DJANGO_SETTINGS_MODULE")
        text += (
            f" (Django: check the settings module {settings!r})"
            if settings
            else " (Django: set DJANGO_SETTINGS_MODULE, e.g. mysite.settings, and cloudq sets Django up)"
        )
    return text


#: Frameworks to set up before an app's module is imported, by the variable that says one is
#: in use, named as ``module:function`` (Celery's loader aliases habit): the integration lives
#: in ``cloudq.contrib``, above this layer, which so depends on it only by name.
FRAMEWORK_SETUPS = {"DJANGO_SETTINGS_MODULE": "cloudq.contrib.django:setup"}


def _start_frameworks() -> None:
    for variable, target in FRAMEWORK_SETUPS.items():
        if os.environ.get(variable):
            module, _, function = target.partition(":")
            getattr(importlib.import_module(module), function)()


def load_app(reference: str) -> CloudQ:
    """Import ``module:attribute`` (``shop.tasks:app``); the current directory is importable.

    With ``DJANGO_SETTINGS_MODULE`` set, Django is set up first and each installed app's
    ``tasks`` module imported (``cloudq.contrib.django.setup``). Whatever importing raises is
    one ``ConfigurationError`` naming the module and the error.
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"app reference {reference!r} must look like 'module:app'")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        _start_frameworks()
        module = importlib.import_module(module_name)
    except ConfigurationError:
        raise
    except Exception as exc:  # any error of the user's module: one line, not a traceback
        raise ConfigurationError(_import_failure(module_name, exc)) from None
    app = getattr(module, attribute, None)
    if not isinstance(app, CloudQ):
        raise ConfigurationError(f"{reference!r} is not a cloudq app (CloudQ instance)")
    return app
