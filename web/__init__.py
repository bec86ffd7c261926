"""Helpers every app's pages share: permission checks, htmx fragments, list filters and paging."""
