"""The beat's periodic task that queues the directory syncs whose schedule is due."""

from celery import shared_task

from directory import services


@shared_task(name="directory.enqueue_due_syncs", ignore_result=True)
def enqueue_due_syncs() -> int:
    return services.enqueue_due_syncs()
