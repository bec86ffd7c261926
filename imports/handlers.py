"""bulk_import: processes one uploaded CSV file, resuming where the last chunk left off."""

from typing import Any

from imports.services import run_import
from jobs.models import Job
from jobs.registry import register


@register("bulk_import")
def run(job: Job) -> dict[str, Any]:
    return run_import(job)
