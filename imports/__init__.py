"""CSV bulk import of identities."""
