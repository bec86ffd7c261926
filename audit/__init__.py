"""Audit-log ingestion: Google Workspace activity reports copied into AccessHive."""
