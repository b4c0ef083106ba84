from django.urls import path

from events import views

urlpatterns = [
    path("events/<str:name>/participants", views.set_participants),
    path("tasks/<str:task_id>", views.task_status),
]
