"""The project's cloudq app. Tasks live in each Django app's ``tasks`` module."""

from cloudq.contrib.django import DjangoCloudQ

app = DjangoCloudQ("events")
