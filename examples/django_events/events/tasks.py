"""Found by autodiscovery when the worker starts (DJANGO_SETTINGS_MODULE is set)."""

from events.models import Event
from eventsite.cloudq_app import app


@app.task
def update_participants(event_id: int, n: int) -> int:
    """The slow part, off the request: here, set the count the view asked for."""
    event = Event.objects.get(pk=event_id)
    event.participants = n
    event.save(update_fields=["participants", "updated_at"])
    return event.participants
