"""Settings of the events example, as deployed on AWS: SQS and DynamoDB are found through
the usual AWS variables (region, credentials or role); PostgreSQL from EVENTS_DB_*."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "eventsite.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "events"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("EVENTS_DB_NAME", "events"),
        "USER": os.environ.get("EVENTS_DB_USER", "postgres"),
        "HOST": os.environ.get("EVENTS_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("EVENTS_DB_PORT", "5432"),
        # Workers keep connections a minute; cloudq closes stale ones around every task, and
        # the health check notices one the database dropped before the task's first query.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}

# cloudq: the same keys as CloudQ(...); CLOUDQ_* variables fill in what is not here.
CLOUDQ = {"default_queue": "default", "result_ttl": 7 * 86_400}
# manage.py test: every cloudq app on in-process engines; nothing reaches AWS.
TEST_RUNNER = "cloudq.contrib.django.testing.DiscoverRunner"
