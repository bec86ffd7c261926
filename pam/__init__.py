"""Privileged access: checking out managed shared credentials, and rotating them at check-in."""
