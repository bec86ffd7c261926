"""``Idempotency-Key`` on creating POSTs: the first answer is stored with what it created, in
one transaction; a repeat with the same key (same user) replays it, a different body with the
same key is a 409 conflict, and a repeat while the first is still running waits for it."""

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.http.request import RawPostDataException

from web.api.problems import ApiError
from web.inputs import InvalidInputError, check_text
from web.models import IdempotencyRecord

HEADER = "Idempotency-Key"
HEADER_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "description": (
                "Any unique string (a UUID): a repeat of this request with the same key "
                "returns the first answer instead of acting again; reusing the key with a "
                "different body is refused (409)."
            ),
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]
}

Outcome = tuple[int, dict[str, Any]]


class _Refused(Exception):
    """Carries an error answer out of the transaction, so nothing of it is kept."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


def _fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    try:
        digest.update(request.body)
    except RawPostDataException:
        # A multipart upload was streamed into request.POST / FILES: hash what it held.
        for name, values in sorted(request.POST.lists()):
            digest.update(json.dumps([name, values]).encode())
        for name in sorted(request.FILES):
            for upload in request.FILES.getlist(name):
                digest.update(json.dumps([name, upload.name, upload.size]).encode())
                for chunk in upload.chunks():
                    digest.update(chunk)
                upload.seek(0)
    return digest.hexdigest()


def _respond(status: int, body: Any, location: str = "") -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, cls=DjangoJSONEncoder), status=status, content_type="application/json"
    )
    if location:
        response["Location"] = location
    return response


def _replay(record: IdempotencyRecord, fingerprint: str) -> HttpResponse:
    if record.fingerprint != fingerprint:
        raise ApiError(
            409,
            f"this {HEADER} was used for a different request; use a new key",
            {HEADER: ["used before with a different method, path or body"]},
        )
    response = _respond(record.status, record.body, record.location)
    response["Idempotent-Replayed"] = "true"
    return response


def create_once(
    request: HttpRequest,
    run: Callable[[], Outcome],
    *,
    location: Callable[[Any], str] | None = None,
) -> HttpResponse:
    """Run ``run`` (status, JSON body) once per Idempotency-Key; without the header, simply
    run it. Only a success is remembered: a refused request may be sent again with its key."""
    raw_key = request.headers.get(HEADER)
    if raw_key is None:
        status, body = run()
        return _respond(status, body, location(body) if location and status < 300 else "")
    try:
        key = check_text(raw_key.strip(), HEADER, max_length=255)
    except InvalidInputError as exc:
        raise ApiError(400, exc.message, {HEADER: [exc.message]}) from None
    if not key:
        raise ApiError(400, f"{HEADER} must not be empty", {HEADER: ["must not be empty"]})
    fingerprint = _fingerprint(request)
    user = request.user
    assert isinstance(user, User)  # the operation's auth let only signed-in users through
    earlier = IdempotencyRecord.objects.filter(user=user, key=key).first()
    if earlier is not None:
        return _replay(earlier, fingerprint)
    try:
        with transaction.atomic():
            # The row first: a concurrent request with the same key waits here on the unique
            # index until this transaction ends, then replays its answer.
            record = IdempotencyRecord.objects.create(
                user=user, key=key, fingerprint=fingerprint, status=0, body={}
            )
            status, body = run()
            if status >= 300:
                raise _Refused((status, body))
            record.status = status
            record.body = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
            record.location = location(body) if location else ""
            record.save(update_fields=["status", "body", "location"])
    except _Refused as refused:
        return _respond(*refused.outcome)
    except IntegrityError:
        earlier = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if earlier is None:
            raise
        return _replay(earlier, fingerprint)
    return _respond(record.status, record.body, record.location)
