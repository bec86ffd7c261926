"""Management commands of the credential vault."""
