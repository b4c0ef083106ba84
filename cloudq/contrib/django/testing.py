"""Testing a Django project's tasks without AWS.

``TEST_RUNNER = "cloudq.contrib.django.testing.DiscoverRunner"`` in the settings makes
``manage.py test`` put every ``DjangoCloudQ`` app on the in-process engines (``memory://``
broker and results) before any test runs, whatever ``settings.CLOUDQ`` says; run the queued
tasks in a test with ``cloudq.testing.drain(app)``. With pytest-django, call
``use_memory_engines()`` in ``conftest.py``.

``TransactionTestCase`` (or ``TestCase.captureOnCommitCallbacks(execute=True)``) is what
lets ``delay_on_commit`` send: inside ``TestCase``'s transaction nothing ever commits.
"""

from __future__ import annotations

from typing import Any

from django.test.runner import DiscoverRunner as DjangoDiscoverRunner

from cloudq.contrib.django import use_memory_engines

__all__ = ["DiscoverRunner", "use_memory_engines"]


class DiscoverRunner(DjangoDiscoverRunner):  # type: ignore[misc]  # Django ships no types
    """Django's test runner, with cloudq apps on the in-process engines."""

    def setup_test_environment(self, **kwargs: Any) -> None:
        super().setup_test_environment(**kwargs)
        use_memory_engines()
