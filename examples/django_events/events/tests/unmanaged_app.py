"""The example's app with cloudq's connection handling switched off (for the test that shows
what it is for): ``cloudq worker events.tests.unmanaged_app:app``."""

from cloudq.contrib.django import close_db_connections
from eventsite.cloudq_app import app

app.hooks.before_task.disconnect(close_db_connections)
app.hooks.after_task.disconnect(close_db_connections)

__all__ = ["app"]
