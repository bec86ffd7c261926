"""Where each job message is, as far as the sweeper needs to know: a marker per message id in
the broker's Redis, "queued" once published, the worker's name and instance once a worker holds
it (jobs.workers.holder), gone once the attempt its delivery ran has ended and been recorded
(or once the delivery found itself stale): never a moment when the job is still waiting and its
marker already gone. A flush or a restart without persistence removes markers with the
messages, so the sweeper can tell a message that is lost from one that is merely waiting in a
long queue.
"""

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import redis
from celery.signals import after_task_publish, task_received
from django.conf import settings

from jobs import routing, shared_redis, workers

log = logging.getLogger(__name__)

KEY_PREFIX = "accesshive:message:"
QUEUED = "queued"
TASK = "jobs.run_job"
# The "queued" messages found in no queue and in no worker's hands by the last look.
MISSING_KEY = "accesshive:sweeper:missing"
# kombu's Redis transport: a list per queue and priority step, the messages workers have
# taken in a hash. Beyond this many queued messages the queues are not searched.
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_UNACKED_KEY = "unacked"
SEARCHED_AT_MOST = 10_000


def tracked() -> "redis.Redis[bytes] | None":
    """The client to read and write markers with, or None when they would not tell the truth:
    no Redis, or a Redis other than the broker's (its flush would not take markers along)."""
    if settings.REDIS_URL != settings.CELERY_BROKER_URL:
        return None
    return shared_redis.client()


def mark(task_id: str, where: str) -> None:
    client = tracked()
    if client is None:
        return
    try:
        # "queued" never overwrites a worker's mark: a worker waiting on the queue can take
        # the message, and mark it held, before the publisher's own mark arrives. Overwritten,
        # a message held by a worker that then died would look queued for good.
        client.set(
            KEY_PREFIX + task_id,
            where,
            ex=settings.CELERY_VISIBILITY_TIMEOUT,
            nx=where == QUEUED,
        )
    except redis.RedisError as exc:
        # Without its marker a message looks lost, and the worst that follows is a re-send
        # whose stale copy is ignored.
        log.warning("jobs.delivery.unmarked", extra={"error": type(exc).__name__})


def unmark(task_id: str) -> None:
    client = tracked()
    if client is None:
        return
    try:
        client.delete(KEY_PREFIX + task_id)
    except redis.RedisError as exc:
        log.warning("jobs.delivery.unmarked", extra={"error": type(exc).__name__})


def marker_keys(task_id: str) -> list[str]:
    """The message's marker key, for a caller that removes it along with its own writes (the
    runner, with the attempt's metrics); none when markers are not kept."""
    return [KEY_PREFIX + task_id] if tracked() is not None else []


def where(task_ids: list[str]) -> dict[str, str | None] | None:
    """Each message's marker ("queued", a worker instance's holder(), or None: not in the
    broker); None when markers are not kept here."""
    client = tracked()
    if client is None:
        return None
    found = client.mget([KEY_PREFIX + task_id for task_id in task_ids]) if task_ids else []
    return {
        task_id: value.decode() if value is not None else None
        for task_id, value in zip(task_ids, found, strict=True)
    }


def vanished(task_ids: list[str]) -> set[str]:
    """Those of these "queued" messages that are in no queue and in no worker's hands, now and
    at the last look too.

    kombu's Redis transport takes a message off its queue (BRPOP) and writes it among the
    taken ones in a second step: a worker killed between the two loses the message while its
    marker still says "queued". Seen once is not enough, since a worker may be between those
    two steps: seen missing by two looks a sweep apart, it is lost. Queues longer than
    SEARCHED_AT_MOST are not searched: their messages count as waiting until they shorten.
    """
    client = tracked()
    if client is None:
        return set()
    missing = set(task_ids) - _in_broker(client, set(task_ids)) if task_ids else set()
    with client.pipeline() as pipe:
        pipe.smembers(MISSING_KEY)
        pipe.delete(MISSING_KEY)
        if missing:
            pipe.sadd(MISSING_KEY, *missing)
            pipe.expire(MISSING_KEY, settings.CELERY_VISIBILITY_TIMEOUT)
        seen_before = pipe.execute()[0]
    return {task_id for task_id in missing if task_id.encode() in seen_before}


def _in_broker(client: "redis.Redis[bytes]", task_ids: set[str]) -> set[str]:
    """Those of these messages waiting in one of our queues or taken by a worker; all of them
    when the queues are too long to search."""
    lists = [
        name + KOMBU_PRIORITY_SEP + str(step) if step else name
        for name in routing.queue_names()
        for step in KOMBU_PRIORITY_STEPS
    ]
    with client.pipeline(transaction=False) as pipe:
        for key in lists:
            pipe.llen(key)
        lengths = pipe.execute()
    if sum(lengths) > SEARCHED_AT_MOST:
        return task_ids
    with client.pipeline(transaction=False) as pipe:
        for key, length in zip(lists, lengths, strict=True):
            if length:
                pipe.lrange(key, 0, -1)
        pipe.hvals(KOMBU_UNACKED_KEY)
        *queued, taken = pipe.execute()
    ids = {_message_id(raw) for raws in queued for raw in raws}
    ids |= {_message_id(raw, taken=True) for raw in taken}
    return task_ids & ids


def _message_id(raw: bytes, *, taken: bool = False) -> str | None:
    """The task id of a message as kombu stores it: the message itself in a queue, a list of
    (message, exchange, routing key) once taken."""
    try:
        message = json.loads(raw)
        if taken:
            message = message[0]
        return str(message["headers"]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


# While a batch is published (marked_together), the ids published so far: marked in one
# round trip when the batch ends rather than one each.
_batch: ContextVar[list[str] | None] = ContextVar("delivery_batch", default=None)


@contextlib.contextmanager
def marked_together() -> Iterator[None]:
    """Mark the messages published inside as queued with one pipelined round trip at the end
    (those published before a failure too)."""
    published_ids: list[str] = []
    token = _batch.set(published_ids)
    try:
        yield
    finally:
        _batch.reset(token)
        mark_queued(published_ids)


def mark_queued(task_ids: list[str]) -> None:
    client = tracked()
    if client is None or not task_ids:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.set(
                    KEY_PREFIX + task_id, QUEUED, ex=settings.CELERY_VISIBILITY_TIMEOUT, nx=True
                )
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("jobs.delivery.unmarked", extra={"error": type(exc).__name__})


@after_task_publish.connect
def published(sender: str | None = None, headers: dict[str, Any] | None = None, **kw: Any) -> None:
    if sender == TASK and headers and headers.get("id"):
        batch = _batch.get()
        if batch is None:
            mark(str(headers["id"]), QUEUED)
        else:
            batch.append(str(headers["id"]))


@task_received.connect
def received(request: Any = None, **kw: Any) -> None:
    """In the worker's main process, when it takes a message (to run, or to hold until its
    countdown ends): marked with the worker's name and its instance (jobs.workers.holder),
    so a message the worker held when it died is not taken for its restart's."""
    # request.name is the shown name (jobs.services.task_name); type is the task's own.
    if request is not None and request.type == TASK:
        mark(str(request.id), workers.holder(str(request.hostname)))
