"""The beat's periodic task that sends audit_ingestion runs to the platforms that are due."""

from celery import shared_task

from audit import services


@shared_task(name="audit.schedule_ingestion", ignore_result=True)
def schedule_ingestion() -> int:
    return services.enqueue_due_ingestions()
