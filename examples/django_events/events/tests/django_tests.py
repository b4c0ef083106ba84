"""The example's tests as a Django user writes them, run by ``manage.py test`` (the
settings' ``TEST_RUNNER`` puts cloudq on in-process engines: nothing reaches AWS)."""

import json

from django.test import TestCase

from cloudq.testing import drain
from events.models import Event
from eventsite.cloudq_app import app


class ParticipantsTest(TestCase):
    def test_the_view_enqueues_on_commit_and_the_task_updates_the_row(self) -> None:
        # TestCase never commits: run the on_commit callbacks as a commit would
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(
                "/events/launch/participants",
                json.dumps({"participants": 42}),
                content_type="application/json",
            )
        self.assertEqual(response.status_code, 202)
        self.assertEqual(app.settings.broker, "memory://")
        drain(app)  # run the queued tasks here, through the real executor
        self.assertEqual(Event.objects.get(name="launch").participants, 42)
        self.assertEqual(app.AsyncResult(response.json()["task_id"]).get(timeout=1), 42)
