"""The errors a handler or connector raises; imports nothing of ours on purpose.

Connectors raise these without depending on the engine, and the engine decides what to do
with them without knowing any connector.
"""


class JobError(Exception):
    """Base class: the message is shown to admins, so it names what failed and why."""


class TransientError(JobError):
    """Retrying later may succeed (timeouts, 429, 5xx, rate limits)."""


class PermanentError(JobError):
    """Retrying cannot help (bad input, 4xx, missing configuration): fail the job now."""


class RateLimited(JobError):
    """A shared quota (a platform's rate limit) has no room for this call for a while.

    Not a failure: the engine puts the job back in its queue for ``retry_after`` seconds
    without counting a retry or recording a failed attempt.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
