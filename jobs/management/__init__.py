"""Management commands of the job engine."""
