"""Signals the engine sends, so domain apps can follow their jobs without the engine
importing them."""

from collections.abc import Iterable

from django.db.models import Model
from django.dispatch import Signal

# Sent with job_id, job_type, subject_type_id, subject_id, from_status and to_status; inside
# the transaction that changed the status for a followed job (see follow()), once the change
# has committed for any other.
job_status_changed = Signal()

followed_job_types: set[str] = set()
followed_subjects: set[type[Model]] = set()


def follow(*, job_types: Iterable[str] = (), subjects: Iterable[type[Model]] = ()) -> None:
    """Declare what a receiver of job_status_changed keeps in step inside the status change's
    own transaction: jobs of these types, and jobs whose subject is one of these models.

    A job no receiver follows (and that waits for no other job, nor has any wait for it)
    is claimed and completed in autocommit, each change a single statement: two round trips
    to the database instead of six. Its receivers still hear of each change, after it."""
    followed_job_types.update(job_types)
    followed_subjects.update(subjects)
