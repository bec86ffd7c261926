"""Log lines: one line per event in key=value or JSON, the running job's id, type and attempt
on every line an attempt writes (the handler's and the connector's too), and no secret."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from jobs import services
from jobs.context import attempt_context
from ops.logs import (
    JobContextFilter,
    JsonFormatter,
    KeyValueFormatter,
    RedactSecretsFilter,
    redact_text,
)
from tests.inline import deliver
from tests.integration import handlers  # noqa: F401 - registers the test job types
from tests.integration.test_ops_support import PLANTED


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """A handler configured as settings.LOGGING configures the console one."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(JobContextFilter())
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_fields_and_extra(capture) -> None:
    stream, _ = capture
    logging.getLogger("tests.ops").info("thing.done", extra={"count": 3, "who": "ada"})
    (line,) = lines(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.ops"
    assert line["msg"] == "thing.done"
    assert (line["count"], line["who"]) == (3, "ada")
    assert str(line["ts"]).endswith("+00:00")


def test_a_traceback_stays_on_one_line(capture) -> None:
    stream, handler = capture
    handler.setFormatter(KeyValueFormatter())
    try:
        raise ValueError("boom\nsecond line token=abc123")
    except ValueError:
        logging.getLogger("tests.ops").exception("thing.failed")
    text = stream.getvalue()
    assert text.count("\n") == 1  # one line, ended by the handler's own newline
    assert text.startswith("ts=")
    assert "msg=thing.failed" in text
    assert 'exc="Traceback' in text
    assert "abc123" not in text


def test_key_value_quotes_only_what_needs_it() -> None:
    record = logging.LogRecord("x", logging.WARNING, "", 0, "say %s", ("hi there",), None)
    record.__dict__.update({"job_id": 7, "ok": True, "note": 'a "quoted" word', "none": None})
    line = KeyValueFormatter().format(record)
    assert 'msg="say hi there"' in line
    assert "job_id=7 ok=true" in line
    assert r'note="a \"quoted\" word"' in line
    assert "none=null" in line


def test_secrets_in_extra_and_in_the_message_are_redacted(capture) -> None:
    stream, _ = capture
    logging.getLogger("tests.ops").warning(
        "login with password=%s failed",
        PLANTED,
        extra={
            "password": PLANTED,
            "api_key": PLANTED,
            "client_secret": PLANTED,
            "Authorization": f"Bearer {PLANTED}",
            "headers": {"X-Token": PLANTED, "accept": "json"},
            "items": [{"private_key": PLANTED}],
            "key": PLANTED,
            "password_ref": "vault:identities/1/password#1",
        },
    )
    assert PLANTED not in stream.getvalue()
    (line,) = lines(stream)
    for key in ("password", "api_key", "client_secret", "Authorization", "key"):
        assert line[key] == "[redacted]", key
    assert line["headers"] == {"X-Token": "[redacted]", "accept": "json"}
    assert line["items"] == [{"private_key": "[redacted]"}]
    assert line["password_ref"] == "vault:identities/1/password#1"  # a reference, kept
    assert line["msg"] == "login with password=[redacted] failed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token=abc", "token=[redacted]"),
        ('{"password": "x1"}', '{"password": "[redacted]"}'),
        ("api-key: k1, next", "api-key: [redacted], next"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_the_job_context_is_added_only_inside_an_attempt(capture) -> None:
    stream, _ = capture
    log = logging.getLogger("connectors.somewhere")
    with attempt_context(job_id=12, job_type="directory_sync", attempt=3):
        log.info("inside")
    log.info("outside")
    inside, outside = lines(stream)
    assert (inside["job_id"], inside["job_type"], inside["attempt"]) == (12, "directory_sync", 3)
    assert "job_id" not in outside


@pytest.mark.django_db
def test_every_line_of_an_attempt_names_the_job_and_no_secret_leaks(capture) -> None:
    stream, _ = capture
    job = deliver(services.enqueue("test_ops_log"))
    assert job.status == "completed"
    assert PLANTED not in stream.getvalue()
    during = [
        line
        for line in lines(stream)
        if str(line["logger"]).startswith(("jobs.runner", "tests.integration", "connectors."))
    ]
    loggers = {line["logger"] for line in during}
    assert {"jobs.runner", "tests.integration.ops_handler", "connectors.fake_system"} <= loggers
    for line in during:
        assert (line["job_id"], line["job_type"], line["attempt"]) == (job.pk, "test_ops_log", 1)
