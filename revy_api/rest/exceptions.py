"""RFC 9457 problem details: how revy_api's REST views answer errors.

Every error a revy_api view or mixin produces is an `application/problem+json` body with a
stable `type` URI per kind of error::

    {"type": "https://revy.dev/problems/precondition-failed", "title": "Precondition failed",
     "status": 412, "detail": "If-Match does not match ...", "instance": "/api/cars/1/rollback/"}

plus members that depend on the error: `header` (the request header at fault), `field`,
`errors` (the fields of invalid input, as Django REST framework reports them) and `conflicts`
(the later changes that block a revert).

`problem_exception_handler` is a Django REST framework exception handler: revy's views use it
for their own errors, and a project may make it its `EXCEPTION_HANDLER` to answer every error
of its API this way.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

from revy.contrib.django.headers import HeaderError
from revy_api.operations import PROBLEM_BASE, OperationError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ProblemJSONRenderer",
    "is_problem",
    "page_not_found",
    "problem_exception_handler",
    "problem_type",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Django REST framework's error codes -> (problem slug, title). Anything else gets its code.
_API_PROBLEMS = {
    "invalid": ("validation-error", "Invalid input"),
    "parse_error": ("malformed-request", "Malformed request"),
    "not_authenticated": ("not-authenticated", "Authentication required"),
    "authentication_failed": ("authentication-failed", "Authentication failed"),
    "permission_denied": ("forbidden", "Forbidden"),
    "not_found": ("not-found", "Not found"),
    "method_not_allowed": ("method-not-allowed", "Method not allowed"),
    "not_acceptable": ("not-acceptable", "Not acceptable"),
    "unsupported_media_type": ("unsupported-media-type", "Unsupported media type"),
    "throttled": ("throttled", "Too many requests"),
}


def problem_type(slug: str) -> str:
    """Return the `type` URI of the problem named `slug` (e.g. "not-found")."""
    return PROBLEM_BASE + slug


class ProblemJSONRenderer(JSONRenderer):
    """Render problem details with their own media type."""

    media_type = PROBLEM_MEDIA_TYPE
    format = "problem+json"


def is_problem(exc: BaseException) -> bool:
    """Return True for the errors revy raises itself (bad headers, failed history operations)."""
    return isinstance(exc, HeaderError | OperationError)


def _problem_body(exc: BaseException) -> tuple[dict[str, Any], dict[str, str]] | None:
    """Return (body without `instance`, extra response headers) for `exc`, or None."""
    if isinstance(exc, HeaderError):
        own = {"type": exc.type, "title": exc.title, "status": exc.status, "detail": exc.detail}
        return {**own, "header": exc.header}, {}
    if isinstance(exc, OperationError):
        own = {"type": exc.type, "title": exc.title, "status": exc.status, "detail": exc.detail}
        return {**own, **_extra_members(exc.extra)}, {}
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    code = exc.default_code
    slug, title = _API_PROBLEMS.get(code, (code.replace("_", "-"), None))
    if title is None:
        try:
            title = HTTPStatus(exc.status_code).phrase
        except ValueError:
            title = "Error"
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": exc.status_code}
    if isinstance(exc, exceptions.ValidationError):
        body["detail"] = "The request is invalid; `errors` says what is wrong with each part."
        body["errors"] = exc.detail
    else:
        body["detail"] = str(exc.detail)
    headers = {}
    # NotAuthenticated's challenge (set by DRF's view) and Throttled's wait.
    challenge = getattr(exc, "auth_header", None)
    if challenge:
        headers["WWW-Authenticate"] = challenge
    wait = getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = str(int(wait))
    return body, headers


def _extra_members(extra: dict[str, Any]) -> dict[str, Any]:
    members = dict(extra)
    if "conflicts" in members:
        # Imported here: serializers import this module for their schema.
        from revy_api.rest.serializers import conflicts_json

        members["conflicts"] = conflicts_json(members["conflicts"])
    return members


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer `exc` as problem details; return None for exceptions that are bugs (500).

    Usable as `REST_FRAMEWORK["EXCEPTION_HANDLER"]`.
    """
    found = _problem_body(exc)
    if found is None:
        return None
    body, headers = found
    request = context.get("request")
    if request is not None:
        body["instance"] = request.get_full_path()
        # Problem details are JSON whatever the client asked for (even the browsable API).
        request.accepted_renderer = ProblemJSONRenderer()
        request.accepted_media_type = PROBLEM_MEDIA_TYPE
    set_rollback()
    return Response(body, status=body["status"], headers=headers)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Answer a URL that no view serves with a 404 problem, for API clients.

    Django answers those itself, with an HTML page. Call this from the project's
    `handler404` for the API's paths::

        def handler404(request, exception):
            if request.path.startswith("/api/"):
                return page_not_found(request, exception)
            return django.views.defaults.page_not_found(request, exception)
    """
    body = {
        "type": problem_type("not-found"),
        "title": "Not found",
        "status": 404,
        "detail": "No endpoint answers this URL.",
        "instance": request.get_full_path(),
    }
    return HttpResponse(JSONRenderer().render(body), status=404, content_type=PROBLEM_MEDIA_TYPE)
