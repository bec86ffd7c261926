"""The beat's periodic tasks: audit_ingestion runs for the platforms that are due, the daily
late-arrival check runs, and retention."""

from celery import shared_task

from audit import retention, services


@shared_task(name="audit.schedule_ingestion", ignore_result=True)
def schedule_ingestion() -> int:
    return services.enqueue_due_ingestions()


@shared_task(name="audit.schedule_late_checks", ignore_result=True)
def schedule_late_checks() -> int:
    return services.enqueue_late_checks()


@shared_task(name="audit.prune", ignore_result=True)
def prune() -> int:
    return retention.prune()
