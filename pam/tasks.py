"""The beat's periodic task that checks in access sessions past their expiry."""

from celery import shared_task

from pam import services


@shared_task(name="pam.expire_sessions", ignore_result=True)
def expire_sessions() -> int:
    return services.expire_sessions()
