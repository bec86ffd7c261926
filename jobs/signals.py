"""Signals the engine sends, so domain apps can follow their jobs without the engine
importing them."""

from django.dispatch import Signal

# Sent inside the transaction that changed the status, with job_id, job_type,
# subject_type_id, subject_id, from_status and to_status.
job_status_changed = Signal()
