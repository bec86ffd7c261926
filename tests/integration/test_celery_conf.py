"""What a running worker tells `celery inspect conf` (and so Flower's Config tab): Celery's own
settings, the broker's password masked, and none of the other Django settings."""

import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import require_services
from tests.integration.worker import ROOT, CeleryProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "s3cret-redis-pa55word"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_with_password() -> Iterator[str]:
    """A Redis of our own that requires a password, as production's does."""
    require_services("postgres", "redis")
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="accesshive-redis-")
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
    process = subprocess.Popen(
        [*args, "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url).ping())
        except redis.RedisError:
            return False

    wait_for(answers, 10, "the password-protected Redis")
    yield url
    process.terminate()
    process.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_inspect_conf_shows_celerys_settings_only_and_no_password(
    redis_with_password: str,
) -> None:
    env = {"CELERY_BROKER_URL": redis_with_password}
    worker = CeleryProcess("worker", env=env).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "accesshive", "inspect", "conf", "-t", "10"],
            cwd=ROOT,
            env=worker.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        worker.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "broker_url" in output
    assert "redis://:********@127.0.0.1" in output
    assert PASSWORD not in output
    for other in ("REDIS_URL", "DATABASE", "SECRET_KEY", "VAULT", "ACCESSHIVE"):
        assert other not in output, other
