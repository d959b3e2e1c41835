"""Service layer: jobs, ownership and persistence; knows nothing of HTTP or Celery."""
