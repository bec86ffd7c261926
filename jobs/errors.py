"""The two errors a handler or connector raises; imports nothing of ours on purpose.

Connectors raise these without depending on the engine, and the engine decides what to do
with them without knowing any connector.
"""


class JobError(Exception):
    """Base class: the message is shown to admins, so it names what failed and why."""


class TransientError(JobError):
    """Retrying later may succeed (timeouts, 429, 5xx, rate limits)."""


class PermanentError(JobError):
    """Retrying cannot help (bad input, 4xx, missing configuration): fail the job now."""
