from django.db import models


class Event(models.Model):
    name = models.CharField(max_length=200, unique=True)
    #: Set by the ``update_participants`` task, not by the request.
    participants = models.IntegerField(default=0)
    requested = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
