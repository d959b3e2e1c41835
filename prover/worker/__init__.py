"""Celery interface: the app, its queues, and the task that runs a job."""
