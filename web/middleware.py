"""The last line of the input boundary: a value no view caught is a 400 naming it, never a 500."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from web.inputs import InvalidInputError
from web.pages import bad_request


class InvalidInputMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, InvalidInputError):
            return None
        if request.path.startswith("/api/"):
            body = {"error": exception.message, "parameter": exception.parameter}
            return JsonResponse(body, status=400)
        return bad_request(request, exception)
