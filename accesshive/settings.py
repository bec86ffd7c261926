"""Django settings, read from the environment with defaults that run with no servers at all."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ACCESSHIVE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set (make run sets one for you)")
    SECRET_KEY = "insecure-development-key"  # noqa: S105 - DEBUG only, never served in production
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_results",
    "template_partials",
    "accounts",
    "jobs",
    "vault",
    "identities",
    "pam",
    "imports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.ApiTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "accesshive.urls"
WSGI_APPLICATION = "accesshive.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

SQLITE_DEFAULT = f"sqlite:///{VAR_DIR / 'accesshive.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", SQLITE_DEFAULT),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default is shared by web, worker and beat processes: wait for locks
    # instead of failing, and take the write lock up front so transactions never deadlock.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ACCESSHIVE_LOG_LEVEL", "INFO")},
}

# --- Jobs -----------------------------------------------------------------------------------
# Maximum retries after the first attempt (so at most JOB_MAX_RETRIES + 1 attempts).
JOB_MAX_RETRIES = env_int("ACCESSHIVE_JOB_MAX_RETRIES", 5)
# Exponential backoff: the wait before retry n is BASE * 2**(n-1) seconds, capped at MAX.
# Celery's retry_backoff takes whole seconds, at least 1.
JOB_BACKOFF_BASE = max(1, env_int("ACCESSHIVE_JOB_BACKOFF_BASE", 10))
JOB_BACKOFF_MAX = env_int("ACCESSHIVE_JOB_BACKOFF_MAX", 600)
JOB_BACKOFF_JITTER = env_bool("ACCESSHIVE_JOB_BACKOFF_JITTER", False)
# Soft limit per attempt; the hard limit (the pool kills the process) follows a little later.
JOB_TIMEOUT = env_int("ACCESSHIVE_JOB_TIMEOUT", 120)
JOB_HARD_TIMEOUT = JOB_TIMEOUT + env_int("ACCESSHIVE_JOB_HARD_TIMEOUT_GRACE", 10)
# A pending job whose message has not been picked up this long after it was due is re-sent.
JOB_SWEEP_GRACE = env_int("ACCESSHIVE_JOB_SWEEP_GRACE", 300)
JOB_SWEEP_INTERVAL = env_int("ACCESSHIVE_JOB_SWEEP_INTERVAL", 60)
JOB_PAGE_SIZE = env_int("ACCESSHIVE_JOB_PAGE_SIZE", 50)
IDENTITY_PAGE_SIZE = env_int("ACCESSHIVE_IDENTITY_PAGE_SIZE", 50)

# --- Privileged access (pam) ----------------------------------------------------------------
# The longest a check-out lasts, in minutes; a user may ask for less.
PAM_MAX_SESSION_MINUTES = env_int("ACCESSHIVE_PAM_MAX_SESSION_MINUTES", 60)
# Length of the passwords credential_rotation sets: 12 to 100 (Google's limit); always letters,
# digits and symbols, at least one of each (identities.passwords.generate_password).
PAM_PASSWORD_LENGTH = env_int("ACCESSHIVE_PAM_PASSWORD_LENGTH", 24)
PAM_SESSION_PAGE_SIZE = env_int("ACCESSHIVE_PAM_SESSION_PAGE_SIZE", 50)
# How often the beat checks in sessions past their expiry, in seconds.
PAM_EXPIRY_INTERVAL = env_int("ACCESSHIVE_PAM_EXPIRY_INTERVAL", 60)

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
# Redis hands an unacknowledged message to another worker after this many seconds; it must
# outlast the longest wait a retry can be held for plus one attempt, or a held retry would
# be delivered twice.
CELERY_VISIBILITY_TIMEOUT = env_int(
    "CELERY_VISIBILITY_TIMEOUT", max(3600, 2 * (JOB_BACKOFF_MAX + JOB_HARD_TIMEOUT))
)
if BROKER_IS_FILESYSTEM:
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        # The filesystem transport polls its folder; kombu's default of 1 s adds a second
        # to every job of `make run`.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "django-db")
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 7 * 24 * 3600)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_POOL = "prefork"
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "jobs-sweep": {"task": "jobs.sweep", "schedule": float(JOB_SWEEP_INTERVAL)},
    "pam-expire-sessions": {"task": "pam.expire_sessions", "schedule": float(PAM_EXPIRY_INTERVAL)},
}
# Keep the worker's database connection between tasks instead of reconnecting per task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)

# --- Vault ----------------------------------------------------------------------------------
# Empty: credentials are kept AES-256-GCM encrypted in our database (the embedded vault) with
# VAULT_EMBEDDED_KEYS. A URL: they live in HashiCorp Vault's KV v2 engine at VAULT_MOUNT.
VAULT_ADDR = os.environ.get("VAULT_ADDR", "")
# Either a token, or AppRole (role id + secret id); setting both is a configuration error.
VAULT_TOKEN = os.environ.get("VAULT_TOKEN", "")
VAULT_ROLE_ID = os.environ.get("VAULT_ROLE_ID", "")
VAULT_SECRET_ID = os.environ.get("VAULT_SECRET_ID", "")
VAULT_APPROLE_MOUNT = os.environ.get("VAULT_APPROLE_MOUNT", "approle")
VAULT_MOUNT = os.environ.get("VAULT_MOUNT", "secret")
VAULT_PATH_PREFIX = os.environ.get("VAULT_PATH_PREFIX", "accesshive")
VAULT_TIMEOUT = env_int("VAULT_TIMEOUT", 10)
# "key_id:base64key" entries, comma-separated, newest first (manage.py vault_generate_key).
VAULT_EMBEDDED_KEYS = env_list("ACCESSHIVE_VAULT_KEYS", [])
