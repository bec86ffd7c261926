"""directory_sync: read a source, store its snapshot and record joiners, movers, leavers."""

from typing import Any

from directory.sync import sync_source
from jobs.errors import PermanentError
from jobs.models import Job
from jobs.registry import register


@register("directory_sync")
def run(job: Job) -> dict[str, Any]:
    source_id = (job.params or {}).get("source_id") or job.subject_id
    if not str(source_id).isdigit():
        raise PermanentError(f"Job {job.pk} names no directory source")
    return sync_source(int(source_id), job=job, force=bool((job.params or {}).get("force")))
