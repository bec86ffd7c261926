"""The registry of job handlers, keyed by job type; domain apps register into it."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.models import Job

Handler = Callable[["Job"], dict[str, Any] | None]

_handlers: dict[str, Handler] = {}


def register(job_type: str) -> Callable[[Handler], Handler]:
    """Decorator: ``@register("create_domain_user") def run(job): ...``."""

    def decorator(handler: Handler) -> Handler:
        existing = _handlers.get(job_type)
        if existing is not None and existing is not handler:
            raise ValueError(f"a handler for job type {job_type!r} is already registered")
        _handlers[job_type] = handler
        return handler

    return decorator


def get_handler(job_type: str) -> Handler | None:
    return _handlers.get(job_type)


def registered_types() -> list[str]:
    return sorted(_handlers)
