"""cloudq: a Celery-style task queue on SQS, DynamoDB and Lambda."""
