"""A service-account session for the Admin SDK APIs beyond Directory users (Reports, the asset
inventory): credentials, timeouts, and the one place their errors become ours."""

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from jobs.errors import JobError, PermanentError, TransientError

DEFAULT_TIMEOUT_SECONDS = 30.0
# Google's own advice is to back off and retry these; "forbidden" is not among them.
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded"})
# A 403 with one of these is a missing grant or privilege, which an admin has to fix.
ACCESS_REASONS = frozenset({"forbidden", "insufficientPermissions", "accessNotConfigured"})
_KEY_FIELDS = ("type", "client_email", "private_key", "private_key_id", "token_uri")


_credentials: "OrderedDict[str, Any]" = OrderedDict()
_CREDENTIALS_CACHED = 32


def delegated_credentials(key: Mapping[str, Any], subject: str, scopes: Sequence[str]) -> Any:
    """Service-account credentials acting as ``subject``, kept per process: parsing the RSA
    key took 86 of a job's 99 ms of CPU, and a kept object also reuses its access token
    until it expires (google-auth refreshes it then)."""
    digest = hashlib.sha256(
        json.dumps([dict(key), subject, sorted(scopes)], sort_keys=True).encode()
    ).hexdigest()
    cached = _credentials.get(digest)
    if cached is not None:
        _credentials.move_to_end(digest)
        return cached
    try:
        from_info = service_account.Credentials.from_service_account_info
        credentials = from_info(dict(key), scopes=list(scopes))  # type: ignore[no-untyped-call]
    except ValueError:
        # Not chained: the library's message may quote the key it could not read.
        raise PermanentError(
            f"Google Workspace service-account key {key.get('client_email')} is unusable"
        ) from None
    _credentials[digest] = credentials.with_subject(subject)
    if len(_credentials) > _CREDENTIALS_CACHED:
        _credentials.popitem(last=False)
    return _credentials[digest]


class GoogleAdminSession:
    """One customer's Admin SDK, acting as one admin through domain-wide delegation with the
    given scopes. Not thread-safe (httplib2 is not): build one per job."""

    def __init__(
        self,
        key: Mapping[str, Any],
        admin_email: str,
        *,
        scopes: Sequence[str],
        api_endpoint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        access_hint: str = "",
        before_call: Callable[[], None] | None = None,
    ) -> None:
        missing = [name for name in _KEY_FIELDS if not key.get(name)]
        if missing or key.get("type") != "service_account":
            raise PermanentError(
                "Google Workspace service-account key is not a service_account key"
                + (f" (missing {', '.join(missing)})" if missing else "")
            )
        self.admin_email = admin_email
        self.client_email = str(key["client_email"])
        self.scopes = tuple(scopes)
        self.access_hint = access_hint
        # Called before every request (a rate limiter's pacer); it may raise to say "later".
        self._before_call = before_call
        self._http = google_auth_httplib2.AuthorizedHttp(
            delegated_credentials(key, admin_email, self.scopes),
            http=httplib2.Http(timeout=timeout),
        )
        self._api_endpoint = api_endpoint

    def __repr__(self) -> str:
        return f"<GoogleAdminSession {self.client_email} as {self.admin_email}>"

    def service(self, api: str, version: str) -> Any:
        """A client for one API, built offline from the discovery document the library ships."""
        return build(
            api,
            version,
            http=self._http,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": self._api_endpoint} if self._api_endpoint else None,
        )

    def execute(self, request: Any, subject: str, *, missing_ok: bool = False) -> Any:
        """Run one call; None for a 404 when ``missing_ok``. No library retries: Celery does
        the retrying."""
        if self._before_call is not None:
            self._before_call()
        try:
            return request.execute()
        except HttpError as exc:
            if missing_ok and exc.status_code == 404:
                return None
            raise self._from_http_error(exc, subject) from exc
        except auth_exceptions.RefreshError as exc:
            detail = exc.args[0] if exc.args else str(exc)
            error_class = TransientError if exc.retryable else PermanentError
            raise error_class(
                f"Google Workspace did not grant a token to {self.client_email} acting as "
                f"{self.admin_email} (for {subject}): {detail}. Domain-wide delegation must "
                f"allow the scopes {', '.join(self.scopes)}"
            ) from exc
        except (auth_exceptions.TransportError, httplib2.HttpLib2Error, OSError) as exc:
            # OSError covers refused connections and timeouts, which httplib2 lets through.
            raise TransientError(
                f"Google Workspace unreachable for {subject}: {type(exc).__name__}: {exc}"
            ) from exc

    def _from_http_error(self, exc: HttpError, subject: str) -> JobError:
        status = exc.status_code
        details = exc.error_details if isinstance(exc.error_details, list) else []
        reasons = {detail.get("reason") for detail in details if isinstance(detail, dict)}
        if status == 429 or status >= 500 or reasons & RATE_LIMIT_REASONS:
            return TransientError(f"Google Workspace failed on {subject}: {status} {exc.reason}")
        message = f"Google Workspace rejected {subject}: {status} {exc.reason}"
        if reasons:
            message += f" ({', '.join(sorted(str(reason) for reason in reasons))})"
        if status in (401, 403) and (status == 401 or reasons & ACCESS_REASONS):
            message += f". {self.access_hint}" if self.access_hint else ""
        return PermanentError(message)
