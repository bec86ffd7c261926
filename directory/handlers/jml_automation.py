"""jml_automation: act on one joiner, mover or leaver event as its source's rule says."""

from typing import Any

from directory.jml import run_event
from jobs.errors import PermanentError
from jobs.models import Job
from jobs.registry import register


@register("jml_automation")
def run(job: Job) -> dict[str, Any]:
    event_id = (job.params or {}).get("event_id") or job.subject_id
    if not str(event_id).isdigit():
        raise PermanentError(f"Job {job.pk} names no directory event")
    return run_event(int(event_id))
