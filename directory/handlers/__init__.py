"""Job handlers of the directory app; importing this package registers them."""

from directory.handlers import directory_sync, jml_automation

__all__ = ["directory_sync", "jml_automation"]
