"""Test settings: PostgreSQL and Redis on 127.0.0.1 when they answer, else SQLite and
the service tests skip (in CI, where CI=true, they fail instead)."""

import os
import socket
import tempfile
from urllib.parse import urlparse

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("ACCESSHIVE_VAR_DIR", tempfile.mkdtemp(prefix="accesshive-test-var-"))
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/accesshive"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        address = (parsed.hostname or "127.0.0.1", parsed.port or default_port)
        with socket.create_connection(address, 1):
            return True
    except OSError:
        return False


POSTGRES_AVAILABLE = _reachable(TEST_DATABASE_URL, 5432)
REDIS_AVAILABLE = _reachable(TEST_REDIS_URL, 6379)
os.environ["DATABASE_URL"] = TEST_DATABASE_URL if POSTGRES_AVAILABLE else "sqlite:///:memory:"
# Integration tests publish to the same Redis their worker consumes from.
os.environ["CELERY_BROKER_URL"] = TEST_REDIS_URL if REDIS_AVAILABLE else "memory://"

from accesshive.settings import *  # noqa: E402, F403

DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False

# Pinned so a developer's own Vault variables never reach the tests.
VAULT_ADDR = ""
VAULT_TOKEN = ""
VAULT_ROLE_ID = ""
VAULT_SECRET_ID = ""
# A fixed test-only key, so a test database can be reused between runs.
VAULT_EMBEDDED_KEYS = ["test1:dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLTAwMDAwMDA="]
