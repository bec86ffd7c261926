"""The one Celery task that runs every job type, and the sweeper's and retention's periodic
tasks."""

import logging
import random
from datetime import timedelta
from typing import Any, NoReturn

from billiard.einfo import ExceptionWithTraceback  # type: ignore[attr-defined]
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task, shared_task
from celery.exceptions import Ignore, Reject
from celery.signals import task_postrun, task_prerun
from celery.worker.request import Request
from django.conf import settings
from django.utils import timezone

from jobs import connections, context, delivery, lifecycle, retention, runner, sweeper
from jobs.errors import TransientError

log = logging.getLogger(__name__)

# Connected here, where every process that sends or runs jobs imports it.
__all__ = ["delivery"]


class Passed(Ignore):
    """A delivery that ran no attempt: Celery acknowledges it, stores nothing and reports no
    success. ``event`` names what monitors (Flower) are told instead (see JobRequest)."""

    event = "task-ignored"

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Stale(Passed):
    """The delivery found its job gone on without it: finished, cancelled, or under a newer
    message. Monitors show the task IGNORED."""


class Deferred(Passed):
    """The delivery put its job back in its queue to wait for its rate limit; the job runs
    later under a new message id. Monitors show this task DEFERRED."""

    event = "task-deferred"


class JobRequest(Request):
    """A delivery in the worker's main process. Celery sends no event at all for a task that
    raised Ignore, so Flower would show a passed delivery STARTED for ever: announce it here,
    where Celery sends its own task events (and only when they are on)."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, Passed):
            # Flower's task page shows only Celery's own fields: say why in its Result row.
            self.send_event(exc.event, result=repr(exc.outcome), **exc.outcome)


class JobTask(Task[Any, Any]):
    Request = "jobs.tasks:JobRequest"

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
            try:
                lifecycle.record_next_attempt(self.request.args[0], retries=retries + 1, at=at)
            except connections.INFRASTRUCTURE_ERRORS:
                # Only the shown due time is lost; the retry's message still goes out.
                connections.drop_unusable()
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
    try:
        outcome = runner.execute(
            job_id,
            task_id=str(self.request.id),
            retries=self.request.retries or 0,
            max_retries=self.max_retries or 0,
            worker=self.request.hostname or "",
        )
    except runner.NotClaimed as exc:
        postpone(self, exc)
    # Not a success to Celery and its monitors: this delivery ran no attempt.
    if "ignored" in outcome:
        raise Stale(outcome)
    if "deferred_seconds" in outcome:
        raise Deferred(outcome)
    return outcome


def postpone(task: JobTask, exc: Exception) -> NoReturn:
    """The job could not even be claimed (its database is unreachable): send this very
    message again (same id, same retry count) after a pause and acknowledge this delivery;
    if even that fails, hand the message back to the broker. Either way it is not lost, and
    no retry is counted: the job did not run."""
    delay = settings.JOB_INFRA_RETRY_DELAY * random.uniform(1.0, 1.5)  # noqa: S311
    try:
        task.signature_from_request(task.request, countdown=delay).apply_async()
    except Exception as publish_error:
        log.warning("jobs.delivery.requeued", extra={"error": type(publish_error).__name__})
        raise Reject(exc, requeue=True) from publish_error
    log.warning(
        "jobs.delivery.postponed",
        extra={"delay_seconds": round(delay, 1), "error": type(exc.__cause__ or exc).__name__},
    )
    raise Ignore()


@shared_task(name="jobs.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    return sweeper.sweep()


@shared_task(name="jobs.recover_lost", ignore_result=True)
def recover_lost() -> int:
    return sweeper.recover_lost()


@shared_task(name="jobs.prune", ignore_result=True)
def prune() -> dict[str, int]:
    return dict(retention.prune().deleted)


_contexts: dict[str, Any] = {}


@task_prerun.connect
def check_database_connections(**kw: Any) -> None:
    """Every task, run_job and the periodic ones alike, starts on connections that work."""
    connections.check_before_task()


@task_postrun.connect
def drop_broken_connections(**kw: Any) -> None:
    connections.check_after_task()


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
