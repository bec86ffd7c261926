"""Structured log lines: one line per event as key=value or JSON, the running job's id, type
and attempt added to every line, and the value of every secret-looking key redacted.

Configured in settings.LOGGING; imports nothing that needs Django's apps to be ready.
"""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from jobs.context import current_attempt

REDACTED = "[redacted]"
# What every LogRecord has; anything else on a record was passed in `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}
# Keys whose values are never logged. "…_ref" names a vault reference, which is not secret.
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|cookie|session[_-]?id|"
    r"api[_-]?key|private[_-]?key|(^|[_-])key$|credential",
    re.IGNORECASE,
)
# The same inside free text: "password=hunter2", "token: abc", '"secret": "x"'.
_SECRET_IN_TEXT = re.compile(
    r"(?P<key>\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key)[\w-]*"
    r"[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"',;}&]+)",
    re.IGNORECASE,
)
_BARE = re.compile(r'^[^\s"=]+$')


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key)) and not key.endswith("_ref")


def redact_value(value: Any) -> Any:
    """A copy with the values of secret-looking keys replaced, in dicts and lists at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_key(str(key)) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    return _SECRET_IN_TEXT.sub(lambda m: m.group("key") + REDACTED, text)


def extra_keys(record: logging.LogRecord) -> list[str]:
    return [key for key in record.__dict__ if key not in _STANDARD and not key.startswith("_")]


class JobContextFilter(logging.Filter):
    """Adds job_id, job_type and attempt while a job attempt runs in this process."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current_attempt.get()
        if fields:
            for key, value in fields.items():
                record.__dict__.setdefault(key, value)
        return True


class RefusalWithoutTracebackFilter(logging.Filter):
    """A refused request (403) is one line: who was refused where is the news, not the stack
    of the permission check that said no. On the django.request logger, so every handler (and
    pytest's caplog) sees the same line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True


class RedactSecretsFilter(logging.Filter):
    """Blanks secret values in `extra` and secret-looking assignments in the message itself.

    The record is changed in place, so every handler after this one sees it redacted too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key in extra_keys(record):
            value = record.__dict__[key]
            record.__dict__[key] = REDACTED if is_secret_key(key) else redact_value(value)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when the line is emitted
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def record_fields(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, Any]:
    """What one line says: time, level, logger, message, then the context and `extra`."""
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key in extra_keys(record):
        fields[key] = record.__dict__[key]
    if record.exc_info:
        fields["exc"] = redact_text(formatter.formatException(record.exc_info))
    elif record.exc_text:
        fields["exc"] = redact_text(record.exc_text)
    if record.stack_info:
        fields["stack"] = record.stack_info
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line (ACCESSHIVE_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(self, record), default=str, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """key=value pairs on one line; values with spaces, quotes or newlines are JSON-quoted."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(self, record)
        if record.name.startswith("celery"):
            # Celery repeats its message's parts as a `data` dict: JSON keeps it, a line to
            # read is better without it.
            fields.pop("data", None)
        return " ".join(f"{key}={self.quote(value)}" for key, value in fields.items())

    @staticmethod
    def quote(value: Any) -> str:
        if value is None or isinstance(value, bool | int | float):
            return json.dumps(value)
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return text if _BARE.match(text) else json.dumps(text, ensure_ascii=False)
