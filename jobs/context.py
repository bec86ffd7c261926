"""The job attempt running in this process right now, for log lines to name; no Django here."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# Set by the runner for the length of one attempt; read by ops.logs.JobContextFilter, so a
# line logged deep in a handler or connector still says which job and attempt it belongs to.
current_attempt: ContextVar[dict[str, Any] | None] = ContextVar("current_attempt", default=None)


@contextmanager
def attempt_context(*, job_id: int, job_type: str, attempt: int) -> Iterator[dict[str, Any]]:
    fields = {"job_id": job_id, "job_type": job_type, "attempt": attempt}
    token = current_attempt.set(fields)
    try:
        yield fields
    finally:
        current_attempt.reset(token)
