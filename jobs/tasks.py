"""The one Celery task that runs every job type, and the sweeper's and retention's periodic
tasks."""

from datetime import timedelta
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task, shared_task
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.utils import timezone

from jobs import context, lifecycle, retention, runner, sweeper
from jobs.errors import TransientError


class JobTask(Task[Any, Any]):
    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Exception | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        limit = self.max_retries if max_retries is None else max_retries
        retries = self.request.retries or 0
        if limit is not None and retries < limit and self.request.args:
            at = eta or timezone.now() + timedelta(seconds=countdown or 0)
            lifecycle.record_next_attempt(self.request.args[0], retries=retries + 1, at=at)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)


@shared_task(
    bind=True,
    base=JobTask,
    name="jobs.run_job",
    ignore_result=True,  # the Job row is the record; nobody reads a result row
    autoretry_for=(TransientError, SoftTimeLimitExceeded),
    retry_backoff=settings.JOB_BACKOFF_BASE,
    retry_backoff_max=settings.JOB_BACKOFF_MAX,
    retry_jitter=settings.JOB_BACKOFF_JITTER,
    max_retries=settings.JOB_MAX_RETRIES,
    soft_time_limit=settings.JOB_TIMEOUT,
    time_limit=settings.JOB_HARD_TIMEOUT,
    acks_late=True,
    reject_on_worker_lost=True,
    retry_on_worker_lost=True,
    # The wait before Celery re-sends a job whose pool process died (retry_on_worker_lost).
    default_retry_delay=settings.JOB_BACKOFF_BASE,
)
def run_job(self: JobTask, job_id: int) -> dict[str, Any]:
    return runner.execute(
        job_id,
        task_id=str(self.request.id),
        retries=self.request.retries or 0,
        max_retries=self.max_retries or 0,
        worker=self.request.hostname or "",
    )


@shared_task(name="jobs.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    return sweeper.sweep()


@shared_task(name="jobs.prune", ignore_result=True)
def prune() -> dict[str, int]:
    return dict(retention.prune().deleted)


_contexts: dict[str, Any] = {}


@task_prerun.connect
def name_the_job_in_log_lines(task_id: str, task: Task[Any, Any], args: Any, **kw: Any) -> None:
    """From the start of a run_job delivery to its end, log lines name its job (the runner
    adds the type and attempt once it has claimed it)."""
    if task.name == "jobs.run_job" and args:
        _contexts[task_id] = context.current_attempt.set({"job_id": args[0]})


@task_postrun.connect
def forget_the_job(task_id: str, **kw: Any) -> None:
    token = _contexts.pop(task_id, None)
    if token is not None:
        context.current_attempt.reset(token)
