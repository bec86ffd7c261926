"""Clients for outside systems, one module each: the only code importing their client libraries."""
