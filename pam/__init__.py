"""Privileged access: checking out shared credentials, and replacing their passwords after."""
