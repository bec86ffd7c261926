"""docker-compose.yml and the Dockerfile describe a production stack the settings can run on.

There is no Docker engine here, so these read the files: every setting the app reads from the
environment is either given to the app services or listed below with the reason it may be left
to its default.
"""

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "accesshive" / "settings.py"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

WORKER_SERVICES = ("worker-provisioning", "worker-sync", "worker-bulk")
APP_SERVICES = ("web", *WORKER_SERVICES, "beat")
# Their defaults are for a laptop (SQLite, filesystem broker, localhost) or there is none.
REQUIRED_IN_PRODUCTION = {
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
}
# Read by settings, safe to leave to the default in production, and why.
DEFAULT_IS_FINE = {
    "ACCESSHIVE_VAR_DIR": "the Dockerfile sets it to /app/var",
    "DATABASE_CONN_MAX_AGE": "60s persistent connections suit gunicorn and the worker",
    "DJANGO_SECURE_COOKIES": "defaults to on whenever DEBUG is off",
    "ACCESSHIVE_JOB_BACKOFF_JITTER": "off keeps retry times predictable for admins",
    "ACCESSHIVE_JOB_HARD_TIMEOUT_GRACE": "10s after the soft limit",
    "ACCESSHIVE_JOB_PAGE_SIZE": "a UI preference",
    "ACCESSHIVE_IDENTITY_PAGE_SIZE": "a UI preference",
    "ACCESSHIVE_PAM_SESSION_PAGE_SIZE": "a UI preference",
    "ACCESSHIVE_IMPORT_MAX_BYTES": "20 MB uploads",
    "ACCESSHIVE_IMPORT_MAX_ROWS": "100,000 rows",
    "ACCESSHIVE_IMPORT_CHUNK_ROWS": "1,000 rows per transaction",
    "ACCESSHIVE_IMPORT_SLICE_SECONDS": "half the job time limit",
    "ACCESSHIVE_PAM_MAX_SESSION_MINUTES": "an hour per check-out",
    "ACCESSHIVE_PAM_PASSWORD_LENGTH": "24 characters, four character classes",
    "ACCESSHIVE_PAM_EXPIRY_INTERVAL": "expired sessions checked in within a minute",
    "CELERY_RESULT_EXPIRES": "a week of results",
    "CELERY_DB_REUSE_MAX": "a worker tuning knob",
    "ACCESSHIVE_VAULT_KEYS": "given: with the vault service, they encrypt waiting CSV uploads",
    "ACCESSHIVE_LOCKOUT_FAILURES": "5 wrong passwords per user name and address",
    "ACCESSHIVE_LOCKOUT_MINUTES": "15 min locked, or until an admin unlocks",
    "ACCESSHIVE_SESSION_IDLE_MINUTES": "30 min idle signs a session out",
    "ACCESSHIVE_SESSION_MAX_HOURS": "12 h after sign-in at most",
    "ACCESSHIVE_TRAIL_ANONYMOUS_REFUSALS": "10 trail rows per address per window, then counted",
    "ACCESSHIVE_TRAIL_REFUSAL_WINDOW": "10 min windows",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "off until every subdomain serves HTTPS",
    "DJANGO_SECURE_HSTS_PRELOAD": "off: preloading is a decision for the domain's owner",
    "ACCESSHIVE_JOB_QUEUES": "the built-in routing is what the worker services consume",
    "ACCESSHIVE_JOB_TIMEOUTS": "directory_sync and asset_discovery get 900 s",
    "ACCESSHIVE_JOB_PRUNE_BATCH": "1,000 jobs per delete transaction",
    "ACCESSHIVE_REDIS_URL": "follows CELERY_BROKER_URL (the same Redis)",
    "ACCESSHIVE_TRUSTED_PROXIES": "0: the connection's own address; set it behind a proxy",
    "ACCESSHIVE_RATE_LIMIT_MAX_WAIT": "0.5 s of waiting inside an attempt, then back to the queue",
    "ACCESSHIVE_HEALTH_CHECK_TIMEOUT": "2 s per /healthz check",
    "ACCESSHIVE_WORKER_HEARTBEAT_FILE": "/app/var/worker-heartbeat, one per container",
    "ACCESSHIVE_WORKER_HEARTBEAT_MAX_AGE": "the healthcheck passes --max-age itself",
    "ACCESSHIVE_BEAT_HEARTBEAT_FILE": "/app/var/beat-heartbeat in the beat container",
    "ACCESSHIVE_BEAT_HEARTBEAT_MAX_AGE": "the healthcheck passes --max-age itself",
    "ACCESSHIVE_JOB_INFRA_RETRY_DELAY": "5 s between tries while the database is unreachable",
    "ACCESSHIVE_JOB_RECOVER_INTERVAL": "beat looks for dead workers' jobs every 5 s",
    "ACCESSHIVE_DIRECTORY_MAX_LEAVER_SHARE": "10%: a safety brake an admin overrides per sync",
    "ACCESSHIVE_DIRECTORY_SYNC_STALE_SECONDS": "15 min without progress means a dead worker",
    "ACCESSHIVE_DIRECTORY_SCHEDULE_INTERVAL": "due syncs are queued within a minute",
    "ACCESSHIVE_DIRECTORY_EVENT_PAGE_SIZE": "a UI preference",
    "ACCESSHIVE_AUDIT_APPLICATIONS": "admin, login, token; each platform picks its own",
    "ACCESSHIVE_AUDIT_INTERVAL_MINUTES": "every 15 min; each platform sets its own",
    "ACCESSHIVE_AUDIT_OVERLAP_MINUTES": "10 min re-read for activities Google publishes late",
    "ACCESSHIVE_AUDIT_INITIAL_LOOKBACK_HOURS": "a platform's first run reads the last day",
    "ACCESSHIVE_AUDIT_WINDOW_MINUTES": "hour-long windows between checkpoint moves",
    "ACCESSHIVE_AUDIT_RUN_BUDGET_SECONDS": "half the job timeout; the beat sends the rest",
    "ACCESSHIVE_AUDIT_SCHEDULE_INTERVAL": "due ingestions are queued within a minute",
    "ACCESSHIVE_AUDIT_PAGE_SIZE": "a UI preference",
    "ACCESSHIVE_ASSET_PAGE_SIZE": "a UI preference",
    "ACCESSHIVE_AUDIT_RETENTION_DAYS": "400 days of audit events",
    "ACCESSHIVE_AUDIT_PRUNE_BATCH": "5,000 audit events per delete transaction",
    "ACCESSHIVE_ASSETS_TOKEN_USER_PAGE": "100 users per recorded step of the token listing",
}
ENV_READERS = {"env_int", "env_bool", "env_list", "env_float", "rate_limits"}


def settings_env_names() -> set[str]:
    """Every environment variable name accesshive/settings.py reads."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Name) and func.id in ENV_READERS:
                key = node.args[0]
            elif isinstance(func, ast.Attribute) and func.attr in {"get", "getenv"}:
                owner = ast.unparse(func.value)
                if owner in {"os.environ", "os"}:
                    key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command", [])
    return cmd.split() if isinstance(cmd, str) else [str(part) for part in cmd]


def test_settings_reader_finds_the_known_names():
    names = settings_env_names()
    assert names >= REQUIRED_IN_PRODUCTION
    assert names >= {"ACCESSHIVE_VAR_DIR", "ACCESSHIVE_JOB_TIMEOUT", "CELERY_VISIBILITY_TIMEOUT"}


def test_all_services_exist(compose):
    assert {"web", *WORKER_SERVICES, "beat", "redis", "postgres", "vault"} <= set(
        compose["services"]
    )


def worker_queues(compose: dict[str, Any], name: str) -> list[str]:
    worker = command(service(compose, name))
    return worker[worker.index("-Q") + 1].split(",")


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_worker_commands(compose, name):
    worker = command(service(compose, name))
    assert worker[:4] == ["celery", "-A", "accesshive", "worker"]
    # Only prefork enforces the jobs' time limits.
    assert worker[worker.index("--pool") + 1] == "prefork"
    # Distinct node names, so `celery inspect` and Flower tell the workers apart.
    assert worker[worker.index("-n") + 1].startswith(name.removeprefix("worker-") + "@")
    healthcheck = service(compose, name)["healthcheck"]["test"]
    assert healthcheck[:4] == ["CMD", "python", "manage.py", "check_worker"]


def test_beat_health_is_its_heartbeat(compose):
    healthcheck = service(compose, "beat")["healthcheck"]["test"]
    assert healthcheck[:4] == ["CMD", "python", "manage.py", "check_beat"]


def test_beat_command(compose):
    beat = command(service(compose, "beat"))
    assert beat[:4] == ["celery", "-A", "accesshive", "beat"]


def test_every_queue_has_a_worker_and_each_worker_its_own_queues(compose, settings):
    queues = [queue for name in WORKER_SERVICES for queue in worker_queues(compose, name)]
    assert sorted(queues) == sorted(settings.JOB_QUEUE_NAMES)  # each queue once
    assert worker_queues(compose, "worker-provisioning") == ["provisioning"]
    assert worker_queues(compose, "worker-sync") == ["sync"]
    assert set(worker_queues(compose, "worker-bulk")) == {"bulk", settings.JOB_DEFAULT_QUEUE}


def test_web_health_is_checked_at_healthz(compose):
    healthcheck = " ".join(service(compose, "web")["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in healthcheck


def test_web_runs_gunicorn_after_migrations(compose):
    web = service(compose, "web")
    assert command(web)[:2] == ["gunicorn", "accesshive.wsgi"]
    depends = web.get("depends_on", {})
    migrates_first = "migrate" in " ".join(command(web))
    migrate_service = depends.get("migrate", {}).get("condition") == (
        "service_completed_successfully"
    )
    assert migrates_first or migrate_service
    if migrate_service:
        assert command(service(compose, "migrate"))[-2:] == ["migrate", "--noinput"]


def test_redis_persists(compose):
    redis = service(compose, "redis")
    assert re.search(r"--appendonly\s+yes", " ".join(command(redis)))
    assert any(str(v).endswith(":/data") for v in redis.get("volumes", []))


def test_postgres_has_a_volume(compose):
    postgres = service(compose, "postgres")
    assert str(postgres["image"]).startswith("postgres:16")
    assert any(":/var/lib/postgresql/data" in str(v) for v in postgres.get("volumes", []))


def test_vault_is_a_real_server(compose):
    vault = service(compose, "vault")
    assert command(vault)[:1] == ["server"]
    assert "-dev" not in " ".join(command(vault))
    assert not any(key.startswith("VAULT_DEV") for key in environment(vault))
    assert '"file"' in environment(vault)["VAULT_LOCAL_CONFIG"]
    assert any(str(v).endswith(":/vault/file") for v in vault.get("volumes", []))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_get_production_settings(compose, name):
    svc = service(compose, name)
    env = environment(svc)
    assert svc.get("build") == "." or svc.get("build", {}).get("context") == "."
    missing = sorted(REQUIRED_IN_PRODUCTION - {k for k, v in env.items() if v})
    assert not missing, f"{name} lacks {missing}"
    assert env["DATABASE_URL"].startswith(("postgres://", "postgresql://"))
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
    assert env.get("DJANGO_DEBUG", "0") in {"0", "false", "False", ""}
    assert "VAULT_ADDR" in env
    assert "VAULT_TOKEN" in env or {"VAULT_ROLE_ID", "VAULT_SECRET_ID"} <= set(env)


def test_every_setting_is_given_or_its_default_is_fine(compose):
    read = settings_env_names()
    given = set.intersection(*(set(environment(service(compose, n))) for n in APP_SERVICES))
    undecided = sorted(read - given - set(DEFAULT_IS_FINE))
    assert not undecided, (
        f"settings.py reads {undecided}: set them for {', '.join(APP_SERVICES)} in "
        "docker-compose.yml, or add them to DEFAULT_IS_FINE in this test with the reason"
    )
    stale = sorted(set(DEFAULT_IS_FINE) - read)
    assert not stale, f"DEFAULT_IS_FINE lists names settings.py no longer reads: {stale}"


def test_dockerfile_builds_a_non_root_image():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "pip install ." in text
    assert "collectstatic" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "the image must switch to a non-root USER"
    assert users[-1] not in {"root", "0"}
    assert "ACCESSHIVE_VAR_DIR=/app/var" in text
