"""Django settings, read from the environment with defaults that run with no servers at all."""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

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


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def pairs(name: str, entries: list[str]) -> dict[str, str]:
    """``["a=b", "c=d"]`` (from env_list) as a dict; anything else is a configuration error."""
    result = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name} entries look like name=value, got {entry!r}")
        result[key.strip()] = value.strip()
    return result


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
    "csp",
    "axes",
    "accounts",
    "jobs",
    "ops",
    "vault",
    "identities",
    "pam",
    "imports",
    "directory",
    "audit",
    "assets",
    "policies",
    "trail",
    "sso",
    "django.forms",  # its widget templates, for FORM_RENDERER below
    "web",
    # django-ninja: the typed API (web/api); listed for its Swagger UI static files.
    "ninja",
]

MIDDLEWARE = [
    # First: load balancers probe /healthz by IP over plain HTTP, which the host check and
    # the HTTPS redirect below would refuse.
    "ops.middleware.HealthzMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Every error answer under /api/ as an RFC 9457 problem (JSON), whoever produced it.
    "web.api.problems.ProblemDetailsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.ApiTokenMiddleware",
    "trail.origin.RequestOriginMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.SessionLimitsMiddleware",
    "web.middleware.InvalidInputMiddleware",
    # Last: turns a lockout found while signing in into the lockout page.
    "axes.middleware.AxesMiddleware",
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
                "accounts.context_processors.user_role",
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
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username and address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Grants each user the permissions of their role (accounts.roles).
    "accounts.backends.RoleBackend",
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

# --- HTTPS and browser hardening ------------------------------------------------------------
# Off by default so `make run` works over plain HTTP; production sets them (README, "HTTPS").
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# The header the TLS-terminating proxy sets to "https" (and removes from what clients send),
# e.g. X-Forwarded-Proto. Empty: the connection itself says whether it is HTTPS.
_PROXY_SSL_HEADER = os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip()
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp; Django 5.2 has none of its own): scripts and styles from
# this site only, no inline script, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
}

# Brute-force protection (django-axes) on /login/, /admin/login/ and API bearer tokens: after
# this many failures from one address for one username, that pair is refused until the
# cooling-off time has passed or an admin unlocks it in Settings > Users.
AXES_FAILURE_LIMIT = env_int("ACCESSHIVE_LOCKOUT_FAILURES", 5)
AXES_COOLOFF_TIME = env_int("ACCESSHIVE_LOCKOUT_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "trail.origin.client_ip"
AXES_USERNAME_CALLABLE = "accounts.backends.lockout_username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Successful sign-ins are on the audit trail already; axes keeps only the failures.
AXES_DISABLE_ACCESS_LOG = True

# Refusals of people not signed in (failed sign-ins, refused SAML responses): at most this
# many trail rows per address per window; further ones are counted in the cache only.
TRAIL_ANONYMOUS_REFUSALS = env_int("ACCESSHIVE_TRAIL_ANONYMOUS_REFUSALS", 10)
TRAIL_REFUSAL_WINDOW = env_int("ACCESSHIVE_TRAIL_REFUSAL_WINDOW", 600)

# Sessions end after this long without a request a person made (pages polling themselves do
# not count), and this long after sign-in whatever happens.
SESSION_IDLE_TIMEOUT = env_int("ACCESSHIVE_SESSION_IDLE_MINUTES", 30) * 60
SESSION_COOKIE_AGE = env_int("ACCESSHIVE_SESSION_MAX_HOURS", 12) * 3600

# One line per event: key=value by default, JSON objects with ACCESSHIVE_LOG_FORMAT=json. The
# filters sit on the handler, so they see every record, whichever logger it came from: the job
# filter adds job_id, job_type and attempt while an attempt runs; the redaction filter blanks
# the value of any secret-looking key. Celery workers use this too (accesshive/celery.py).
LOG_FORMAT = os.environ.get("ACCESSHIVE_LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"ACCESSHIVE_LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "job_context": {"()": "ops.logs.JobContextFilter"},
        "redact": {"()": "ops.logs.RedactSecretsFilter"},
        "refusals": {"()": "ops.logs.RefusalWithoutTracebackFilter"},
    },
    "formatters": {
        "plain": {"()": "ops.logs.KeyValueFormatter"},
        "json": {"()": "ops.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["job_context", "redact"],
        }
    },
    # Django's own console handler (DEBUG only) would write its lines a second time, unformatted.
    "loggers": {
        "django": {"handlers": [], "level": "NOTSET", "propagate": True},
        # django-axes logs every sign-in at INFO; lockouts (WARNING) and the trail say enough.
        "axes": {"handlers": [], "level": "WARNING", "propagate": True},
        "django.request": {"filters": ["refusals"], "level": "NOTSET", "propagate": True},
    },
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
JOB_HARD_TIMEOUT_GRACE = env_int("ACCESSHIVE_JOB_HARD_TIMEOUT_GRACE", 10)
JOB_HARD_TIMEOUT = JOB_TIMEOUT + JOB_HARD_TIMEOUT_GRACE
# A pending job whose message has not been picked up this long after it was due is re-sent,
# if its message is gone from the broker (jobs.delivery's markers tell; a message merely
# waiting in a long queue is left alone). Without markers (no Redis) every such job is.
JOB_SWEEP_GRACE = env_int("ACCESSHIVE_JOB_SWEEP_GRACE", 60)
JOB_SWEEP_INTERVAL = env_int("ACCESSHIVE_JOB_SWEEP_INTERVAL", 30)
# A delivery that cannot claim its job because the database is unreachable is sent again
# after about this many seconds (never acknowledged as done, no retry counted).
JOB_INFRA_RETRY_DELAY = env_float("ACCESSHIVE_JOB_INFRA_RETRY_DELAY", 5.0)
# Every worker refreshes a key in Redis every 2 s; one silent this long is dead, and the jobs
# its attempts were running are recovered at once (beat checks every JOB_RECOVER_INTERVAL s).
WORKER_LOST_AFTER = env_int("ACCESSHIVE_WORKER_LOST_AFTER", 15)
JOB_RECOVER_INTERVAL = env_int("ACCESSHIVE_JOB_RECOVER_INTERVAL", 5)
JOB_PAGE_SIZE = env_int("ACCESSHIVE_JOB_PAGE_SIZE", 50)
IDENTITY_PAGE_SIZE = env_int("ACCESSHIVE_IDENTITY_PAGE_SIZE", 50)
# Retention (manage.py prune_jobs, and beat daily): finished jobs older than this many days
# go, with their attempts and events. Failed ones are kept longer: someone may still look.
JOB_RETENTION_DAYS = env_int("ACCESSHIVE_JOB_RETENTION_DAYS", 30)
FAILED_JOB_RETENTION_DAYS = env_int("ACCESSHIVE_FAILED_JOB_RETENTION_DAYS", 90)
JOB_PRUNE_BATCH = env_int("ACCESSHIVE_JOB_PRUNE_BATCH", 1000)

# --- Queues ---------------------------------------------------------------------------------
# Every job runs through the one task jobs.run_job; enqueue() sends each message to its type's
# queue, so ops can give each workload its own workers (`celery worker -Q provisioning`).
# ACCESSHIVE_JOB_QUEUES overrides single types: "directory_sync=bulk,remediation=celery".
# Types not named here (tests', plugins') and housekeeping (jobs.sweep, jobs.prune, Celery's
# backend_cleanup) use the default queue, "celery".
JOB_DEFAULT_QUEUE = "celery"
JOB_QUEUES = {
    "create_domain_user": "provisioning",
    "provision_sso_user": "provisioning",
    "credential_rotation": "provisioning",
    "remediation": "provisioning",
    "jml_automation": "provisioning",
    "directory_sync": "sync",
    "audit_ingestion": "sync",
    "asset_discovery": "sync",
    "bulk_import": "bulk",
    **pairs("ACCESSHIVE_JOB_QUEUES", env_list("ACCESSHIVE_JOB_QUEUES", [])),
}
JOB_QUEUE_NAMES = sorted({JOB_DEFAULT_QUEUE, *JOB_QUEUES.values()})
# Soft time limits (seconds) for types whose one attempt may legitimately outlast
# ACCESSHIVE_JOB_TIMEOUT: a full directory or asset read of a large customer.
# ACCESSHIVE_JOB_TIMEOUTS overrides single types: "directory_sync=1800".
JOB_TIMEOUTS = {
    job_type: int(seconds)
    for job_type, seconds in {
        "directory_sync": "900",
        "asset_discovery": "900",
        **pairs("ACCESSHIVE_JOB_TIMEOUTS", env_list("ACCESSHIVE_JOB_TIMEOUTS", [])),
    }.items()
}
LONGEST_HARD_TIMEOUT = max(JOB_TIMEOUT, *JOB_TIMEOUTS.values()) + JOB_HARD_TIMEOUT_GRACE


# --- Rate limits ----------------------------------------------------------------------------
def rate_limits(name: str, defaults: dict[str, str]) -> dict[str, tuple[float, int]]:
    limits = {}
    for key, spec in {**defaults, **pairs(name, env_list(name, []))}.items():
        rate, _, burst = spec.partition("/")
        try:
            limits[key] = (float(rate), int(burst or max(1, round(float(rate)))))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {key}={spec!r} is not rate/burst") from exc
    return limits


# Token buckets shared by every worker (in Redis), one per platform, so a burst of jobs is
# paced under the outside system's quota instead of failing on it. "kind=rate/burst", where
# kind is a platform kind ("google_workspace") or "kind:<platform id>" for one platform; rate
# in requests per second (0: no limit), burst in requests. Google's Directory API allows about
# 2,400 queries a minute (40/s) per user: 10/s leaves three quarters of it to the admins'
# console, other tools and the other calls a customer makes under the same quota.
RATE_LIMITS = rate_limits("ACCESSHIVE_RATE_LIMITS", {"google_workspace": "10/5"})
# A job waits for its turn inside the attempt up to this long; a longer wait sends the job
# back to its queue until its turn (no retry counted), so it does not hold a pool slot while
# other platforms' jobs wait. Kept well inside the attempt's time limit.
RATE_LIMIT_MAX_WAIT = min(env_float("ACCESSHIVE_RATE_LIMIT_MAX_WAIT", 0.5), JOB_TIMEOUT / 4)

# --- Imports ---------------------------------------------------------------------------------
# The largest CSV an admin may upload, and the most rows it may hold.
IMPORT_MAX_BYTES = env_int("ACCESSHIVE_IMPORT_MAX_BYTES", 20 * 1024 * 1024)
IMPORT_MAX_ROWS = env_int("ACCESSHIVE_IMPORT_MAX_ROWS", 100_000)
# Rows per transaction, and so per progress update, while an import runs.
IMPORT_CHUNK_ROWS = env_int("ACCESSHIVE_IMPORT_CHUNK_ROWS", 1000)
# How long one bulk_import job works before a continuation job takes over; well under
# JOB_TIMEOUT so a long import never reaches the time limit.
IMPORT_SLICE_SECONDS = env_int("ACCESSHIVE_IMPORT_SLICE_SECONDS", JOB_TIMEOUT // 2)

# --- Privileged access (pam) ----------------------------------------------------------------
# The longest a check-out lasts, in minutes; a user may ask for less.
PAM_MAX_SESSION_MINUTES = env_int("ACCESSHIVE_PAM_MAX_SESSION_MINUTES", 60)
# Length of the passwords credential_rotation sets: 12 to 100 (Google's limit); always letters,
# digits and symbols, at least one of each (identities.passwords.generate_password).
PAM_PASSWORD_LENGTH = env_int("ACCESSHIVE_PAM_PASSWORD_LENGTH", 24)
PAM_SESSION_PAGE_SIZE = env_int("ACCESSHIVE_PAM_SESSION_PAGE_SIZE", 50)
# How often the beat checks in sessions past their expiry, in seconds.
PAM_EXPIRY_INTERVAL = env_int("ACCESSHIVE_PAM_EXPIRY_INTERVAL", 60)

# --- Audit ingestion and asset discovery ----------------------------------------------------
# The Reports applications a platform's audit log is read from until its settings say else.
AUDIT_DEFAULT_APPLICATIONS = env_list("ACCESSHIVE_AUDIT_APPLICATIONS", ["admin", "login", "token"])
# How often each platform's reports are read, in minutes; each platform can change it.
AUDIT_DEFAULT_INTERVAL_MINUTES = env_int("ACCESSHIVE_AUDIT_INTERVAL_MINUTES", 15)
# Every run re-reads this many minutes before its checkpoint: Google publishes some
# activities late, with their original time. Must exceed that lag, or late ones are missed.
AUDIT_OVERLAP_MINUTES = env_int("ACCESSHIVE_AUDIT_OVERLAP_MINUTES", 10)
# How far back the first run of a platform reads, in hours.
AUDIT_INITIAL_LOOKBACK_HOURS = env_int("ACCESSHIVE_AUDIT_INITIAL_LOOKBACK_HOURS", 24)
# A run reads in windows of this many minutes, oldest first, moving the checkpoint after each
# one (Google answers newest first, so only a whole window is known to be complete).
AUDIT_WINDOW_MINUTES = env_int("ACCESSHIVE_AUDIT_WINDOW_MINUTES", 60)
# A run starts no new window after this many seconds, well inside the attempt's time limit;
# the beat sends the next run at its next check when one stopped early.
AUDIT_RUN_BUDGET_SECONDS = env_int(
    "ACCESSHIVE_AUDIT_RUN_BUDGET_SECONDS", JOB_TIMEOUTS.get("audit_ingestion", JOB_TIMEOUT) // 2
)
# How often the beat looks for platforms due an ingestion, in seconds.
AUDIT_SCHEDULE_INTERVAL = env_int("ACCESSHIVE_AUDIT_SCHEDULE_INTERVAL", 60)
AUDIT_PAGE_SIZE = env_int("ACCESSHIVE_AUDIT_PAGE_SIZE", 50)
ASSET_PAGE_SIZE = env_int("ACCESSHIVE_ASSET_PAGE_SIZE", 50)

# --- Directory sync -------------------------------------------------------------------------
# A sync that would make more than this share of the active users leavers (or that finds no
# users at all) stops and changes nothing, unless a person forces it from the source's page.
DIRECTORY_MAX_LEAVER_SHARE = env_float("ACCESSHIVE_DIRECTORY_MAX_LEAVER_SHARE", 0.10)
# A running sync reports progress after every page; one silent this long is taken as dead
# (its worker was killed) and the next sync of the source may take over.
DIRECTORY_SYNC_STALE_SECONDS = env_int("ACCESSHIVE_DIRECTORY_SYNC_STALE_SECONDS", 900)
# How often the beat looks for sources whose schedule is due, in seconds.
DIRECTORY_SCHEDULE_INTERVAL = env_int("ACCESSHIVE_DIRECTORY_SCHEDULE_INTERVAL", 60)
DIRECTORY_EVENT_PAGE_SIZE = env_int("ACCESSHIVE_DIRECTORY_EVENT_PAGE_SIZE", 50)

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
# Redis hands an unacknowledged message to another worker after this many seconds; it must
# outlast the longest wait a retry can be held for plus one attempt, or a held retry would
# be delivered twice.
CELERY_VISIBILITY_TIMEOUT = env_int(
    "CELERY_VISIBILITY_TIMEOUT", max(3600, 2 * (JOB_BACKOFF_MAX + LONGEST_HARD_TIMEOUT))
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
# The Redis the rate limits and the attempt metrics live in: the broker's when it is Redis.
# Empty (the filesystem broker of `make run`): a limiter per process, no attempt metrics.
REDIS_URL = os.environ.get(
    "ACCESSHIVE_REDIS_URL",
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "",
)
CELERY_TASK_DEFAULT_QUEUE = JOB_DEFAULT_QUEUE
# Declared, so a worker started without -Q consumes all of them (make run, a single worker).
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in JOB_QUEUE_NAMES]
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
# Beat also runs Celery's own celery.backend_cleanup daily at 04:00 (result rows older than
# CELERY_RESULT_EXPIRES), because the django-db result backend cannot expire rows by itself.
CELERY_BEAT_SCHEDULE = {
    "jobs-sweep": {"task": "jobs.sweep", "schedule": float(JOB_SWEEP_INTERVAL)},
    "jobs-recover-lost": {
        "task": "jobs.recover_lost",
        "schedule": float(JOB_RECOVER_INTERVAL),
        # A check missed is replaced by the next one: never let them pile up in a queue.
        "options": {"expires": float(JOB_RECOVER_INTERVAL)},
    },
    "jobs-prune": {"task": "jobs.prune", "schedule": crontab(minute="30", hour="3")},
    "pam-expire-sessions": {"task": "pam.expire_sessions", "schedule": float(PAM_EXPIRY_INTERVAL)},
    "directory-schedule": {
        "task": "directory.enqueue_due_syncs",
        "schedule": float(DIRECTORY_SCHEDULE_INTERVAL),
    },
    "audit-schedule-ingestion": {
        "task": "audit.schedule_ingestion",
        "schedule": float(AUDIT_SCHEDULE_INTERVAL),
    },
}
# Beat records a heartbeat on every tick (ops.beat); ticks come at least this often (seconds).
CELERY_BEAT_SCHEDULER = "ops.beat:HeartbeatScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 5
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

# --- Health and metrics ---------------------------------------------------------------------
# /metrics answers only requests with "Authorization: Bearer <this>"; empty turns it off.
METRICS_TOKEN = os.environ.get("ACCESSHIVE_METRICS_TOKEN", "")

# How many reverse proxies in front of AccessHive append to X-Forwarded-For; the audit trail
# records the address the outermost trusted one saw. 0: the connection's own address.
TRUSTED_PROXIES = int(os.environ.get("ACCESSHIVE_TRUSTED_PROXIES", "0"))
# Seconds each /healthz check (database, broker) may take.
HEALTH_CHECK_TIMEOUT = env_float("ACCESSHIVE_HEALTH_CHECK_TIMEOUT", 2.0)
# The worker touches this file on every event-loop heartbeat (2 s); `manage.py check_worker`
# fails when it is older than the max age.
WORKER_HEARTBEAT_FILE = Path(
    os.environ.get("ACCESSHIVE_WORKER_HEARTBEAT_FILE", VAR_DIR / "worker-heartbeat")
)
WORKER_HEARTBEAT_MAX_AGE = env_int("ACCESSHIVE_WORKER_HEARTBEAT_MAX_AGE", 60)

# Every form is drawn by templates/forms/ (label, input, help and errors aligned).
FORM_RENDERER = "web.forms.FormRenderer"
# /healthz and /metrics call the system degraded when a job has been due longer than this
# (seconds) without a worker taking it, or when beat's heartbeat is older than its max age.
HEALTH_MAX_JOB_DELAY = env_int("ACCESSHIVE_HEALTH_MAX_JOB_DELAY", 300)
BEAT_HEARTBEAT_FILE = Path(
    os.environ.get("ACCESSHIVE_BEAT_HEARTBEAT_FILE", VAR_DIR / "beat-heartbeat")
)
BEAT_HEARTBEAT_MAX_AGE = env_int("ACCESSHIVE_BEAT_HEARTBEAT_MAX_AGE", 60)
# --- Audit retention and late arrivals (issue 20) -------------------------------------------
# Audit events older than this (by when they happened) are deleted by the beat, in batches.
AUDIT_RETENTION_DAYS = env_int("ACCESSHIVE_AUDIT_RETENTION_DAYS", 400)
AUDIT_PRUNE_BATCH = env_int("ACCESSHIVE_AUDIT_PRUNE_BATCH", 5000)
CELERY_BEAT_SCHEDULE["audit-prune"] = {
    "task": "audit.prune",
    "schedule": crontab(minute="45", hour="3"),
}
# Once a day, each platform's previous day is read again, counting what the overlap missed.
CELERY_BEAT_SCHEDULE["audit-late-check"] = {
    "task": "audit.schedule_late_checks",
    "schedule": crontab(minute="15", hour="2"),
}
# Asset discovery lists OAuth tokens (one call per user) this many users at a time, recording
# each page's progress so a run cut short by its time limit goes on from there.
ASSETS_TOKEN_USER_PAGE = env_int("ACCESSHIVE_ASSETS_TOKEN_USER_PAGE", 100)
