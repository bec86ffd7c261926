"""Identities, the platforms and identity providers they live on, and their provisioning."""
