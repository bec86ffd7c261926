"""The job engine: Job records, their lifecycle, the handler registry and Settings > Jobs."""
