"""The one NinjaAPI at /api/v1/: every app's router, the problem handlers, the document."""

from typing import Any

from django.http import HttpRequest
from django.urls import URLPattern, path
from ninja import NinjaAPI, Swagger
from ninja.openapi.schema import OpenAPISchema
from ninja.parser import Parser
from ninja.types import DictStrAny

from web.api.problems import HANDLERS, MEDIA_TYPE
from web.inputs import load_json

PREFIX = "api/v1/"


class BoundedJsonParser(Parser):
    """JSON bodies through web.inputs.load_json: malformed or deeply nested JSON is a 400."""

    def parse_body(self, request: HttpRequest) -> DictStrAny:
        value = load_json(request.body or b"{}")
        return value if isinstance(value, dict) else {"": value}


class AccessHiveAPI(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: DictStrAny | None = None
    ) -> OpenAPISchema:
        """The generated document, with every error response as application/problem+json."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                # ninja keys responses by int, openapi_extra by str: one key per status.
                merged: dict[str, Any] = {}
                for status, response in operation.get("responses", {}).items():
                    merged[str(status)] = {**merged.get(str(status), {}), **response}
                operation["responses"] = merged
                if "401" in merged:
                    # Any authenticated operation: too many invalid tokens from one address
                    # lock it out for a while (accounts.middleware, django-axes).
                    merged.setdefault(
                        "429",
                        {
                            "description": "Too many invalid API tokens from this address",
                            "content": merged["401"].get("content", {}),
                        },
                    )
                for status, response in merged.items():
                    content = response.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        content[MEDIA_TYPE] = content.pop("application/json")
        return schema


api = AccessHiveAPI(
    title="AccessHive API",
    version="1",
    description=(
        "Identities, jobs, imports, directory sync, audit, assets, policies, privileged "
        "access and the admin trail. Every refusal is an RFC 9457 problem "
        "(application/problem+json). Lists page by keyset: follow `next`, or pass `before`."
    ),
    urls_namespace="api",
    docs=Swagger(settings={"persistAuthorization": False}),
    parser=BoundedJsonParser(),
)
for exc_class, handler in HANDLERS.items():
    api.add_exception_handler(exc_class, handler)


def _register() -> None:
    # Imported here: each app's api module imports web.api.* for its types and auth.
    from accounts.api import router as accounts
    from assets.api import router as assets
    from audit.api import router as audit
    from directory.api import router as directory
    from identities.api import router as identities
    from imports.api import router as imports
    from jobs.api import router as jobs
    from pam.api import router as pam
    from policies.api import router as policies
    from trail.api import router as trail

    routers = (jobs, identities, pam, imports, audit, assets, directory, policies, trail, accounts)
    for router in routers:
        api.add_router("", router)


_register()
_PATTERNS: dict[str, URLPattern] = {}
_ROOT: list[Any] = []
for pattern in api.urls[0]:
    if isinstance(pattern, URLPattern):
        if pattern.name in ("openapi-json", "openapi-view", "api-root"):
            _ROOT.append(pattern)
        else:
            _PATTERNS.setdefault(str(pattern.pattern), pattern)


def api_path(route: str, name: str) -> URLPattern:
    """The app's URL ``api/v1/<route>`` served by the operations declared at ``route``, so
    each app keeps its URL names (``jobs:api-list``) and the document lists them all."""
    return path(PREFIX + route, _PATTERNS[route].callback, name=name)


def root_patterns() -> tuple[list[Any], str]:
    """The document, the docs page and the API root, for the ``api`` namespace."""
    return _ROOT, "api"
