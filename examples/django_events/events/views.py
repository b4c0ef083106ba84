import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from events.models import Event
from events.tasks import update_participants
from eventsite.cloudq_app import app


@csrf_exempt
@require_POST
def set_participants(request: HttpRequest, name: str) -> JsonResponse:
    """Create or update the event, and have a worker update its participants once the row
    is committed. Answers at once with the task id."""
    n = int(json.loads(request.body)["participants"])
    with transaction.atomic():
        event, _ = Event.objects.update_or_create(name=name, defaults={"requested": n})
        result = update_participants.delay_on_commit(event.id, n)
    return JsonResponse({"event_id": event.id, "task_id": result.id}, status=202)


@require_GET
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """The task's state, and its value or error once it is done."""
    record = app.AsyncResult(task_id).record()
    if record is None:
        return JsonResponse({"task_id": task_id, "state": "PENDING"})
    value = record.error_message if record.state == "FAILURE" else record.value
    return JsonResponse({"task_id": task_id, "state": record.state.value, "result": value})
