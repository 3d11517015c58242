"""`GraphQLView`: strawberry's Django view for API clients, authenticated like the REST API.

::

    from revy_api.graphql import GraphQLView

    path("graphql/", GraphQLView.as_view(schema=schema))

What it adds to `strawberry.django.views.GraphQLView` (`AsyncGraphQLView` likewise):

- Authentication with Django REST framework's authentication classes (the view's
  `authentication_classes`, by default `REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`):
  a client holding a token (or JWT, or Basic credentials) queries and mutates as it does over
  REST. CSRF is checked as DRF checks it: for session-authenticated requests only, so token
  clients need no CSRF cookie. Refused credentials and CSRF failures are GraphQL JSON errors
  (`UNAUTHENTICATED`, 401 with `WWW-Authenticate` when the first authentication class names
  a scheme, else 403; `FORBIDDEN`, 403), never Django's HTML pages.
- Errors of the HTTP layer are GraphQL JSON errors too: a body that is not JSON, not an
  object, or nested deeper than `revy_api.inputs.MAX_JSON_DEPTH` is a 400 `BAD_REQUEST`; a
  mutation sent with GET is a 405 with `Allow: POST`; methods other than GET and POST are a
  405 with `Allow: GET, POST`.
- Every error carries `extensions.code` (`revy_api.graphql.errors.with_code`).
- `Accept: application/graphql-response+json` (GraphQL over HTTP) is honoured: the response
  has that media type, and a request that cannot be executed (a document that does not
  parse or validate) is a 400 without `data`. With `application/json` (the default) such
  errors are answered with 200, as before.
- `GraphQLView` runs the operation on a stack of its own (`_on_fresh_stack`), which makes a
  page of a few hundred fields about a third cheaper to execute on CPython.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, cast

from asgiref.sync import sync_to_async
from cross_web import HTTPException
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.decorators import classonlymethod
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.settings import api_settings
from strawberry.django.views import AsyncGraphQLView as StrawberryAsyncGraphQLView
from strawberry.django.views import GraphQLView as StrawberryGraphQLView
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from revy_api import inputs
from revy_api.errors import BadRequest
from revy_api.graphql import errors

__all__ = ["GRAPHQL_RESPONSE_MEDIA_TYPE", "AsyncGraphQLView", "GraphQLView"]

#: The media type of GraphQL over HTTP responses.
GRAPHQL_RESPONSE_MEDIA_TYPE = "application/graphql-response+json"
_JSON = "application/json"
_STATUS_CODES = {
    400: errors.BAD_REQUEST,
    401: errors.UNAUTHENTICATED,
    403: errors.FORBIDDEN,
    404: errors.NOT_FOUND,
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def _on_fresh_stack(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Return `function(*args, **kwargs)`, called where CPython's frame stack has room.

    CPython (3.11 and later) keeps Python frames in chunks of 16 KB that it maps when a call
    does not fit in the current one and unmaps as soon as the frame at the chunk's start
    returns. graphql-core executes a query recursively (about five frames per level, plus
    strawberry's resolver wrappers), deeper than what is left of the request's chunk, so a
    page of 400 fields crossed the chunk's end back and forth: 120 to 960 minor page faults
    and 12 to 18 ms of CPU for one `objectHistory` page at a million deltas, depending on how
    deep the view itself was called. This function's frame claims 64 KB
    (`_FRESH_STACK_SLOTS`, as stack space its code never uses), so CPython gives it a chunk
    of 128 KB of its own, and the execution fits in the rest: 6 faults, about 10 ms.
    Elsewhere (another interpreter, another version) it is a plain call.
    """
    return function(*args, **kwargs)


# Pointers: 64 KB. The chunk is the next power of two above the frame (128 KB), mapped once
# per operation; only the pages the execution touches cost a fault.
_FRESH_STACK_SLOTS = 8192
_on_fresh_stack.__code__ = _on_fresh_stack.__code__.replace(
    co_stacksize=max(_on_fresh_stack.__code__.co_stacksize, _FRESH_STACK_SLOTS)
)


class _Refused(Exception):
    """An answer given before the operation runs: status, message, code, headers."""

    def __init__(self, status: int, message: str, code: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers


class _RevyViewMixin:
    """What the sync and async views share: authentication, parsing, errors, media types."""

    #: DRF authentication classes; None: `REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`.
    authentication_classes: Sequence[type[BaseAuthentication]] | None = None

    # Authentication ---------------------------------------------------------------------

    def get_authenticators(self) -> list[BaseAuthentication]:
        """Instantiate the authentication classes (read at request time, for tests)."""
        classes = self.authentication_classes
        if classes is None:
            # Imported by DRF's settings (django-stubs types the setting's dotted paths).
            default = api_settings.DEFAULT_AUTHENTICATION_CLASSES
            classes = cast("Sequence[type[BaseAuthentication]]", default)
        return [authentication() for authentication in classes]

    def authenticate(self, request: HttpRequest) -> None:
        """Set `request.user` (and `request.auth`) as DRF would; `_Refused` if refused."""
        # Read the body first: DRF's CSRF check may read the form data, and the body must
        # still be there for the GraphQL request itself.
        _ = request.body
        authenticators = self.get_authenticators()
        drf_request = Request(
            request,
            parsers=[JSONParser(), FormParser(), MultiPartParser()],
            authenticators=authenticators,
        )
        try:
            user = drf_request.user  # runs the authenticators; sets request.user
        except (exceptions.NotAuthenticated, exceptions.AuthenticationFailed) as error:
            header = authenticators[0].authenticate_header(drf_request) if authenticators else None
            status = 401 if header else 403
            raise _Refused(
                status,
                str(error.detail),
                errors.UNAUTHENTICATED,
                {"WWW-Authenticate": header} if header else {},
            ) from None
        except exceptions.APIException as error:  # CSRF failures, unparsable forms
            code = errors.FORBIDDEN if error.status_code == 403 else errors.BAD_REQUEST
            raise _Refused(error.status_code, str(error.detail), code, {}) from None
        request.user = user
        request.auth = drf_request.auth  # type: ignore[attr-defined]

    # Request bodies ---------------------------------------------------------------------

    def parse_json(self, data: str | bytes) -> Any:
        try:
            parsed = json.loads(data)
        except RecursionError:
            raise HTTPException(400, "The JSON nests arrays and objects too deeply.") from None
        except ValueError:  # not JSON
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        try:
            return inputs.check_json_depth(parsed)
        except BadRequest as error:
            raise HTTPException(400, error.detail) from None

    def check_body(self, request: HttpRequest) -> None:
        """Refuse a JSON body that is no GraphQL request: not UTF-8, not JSON, not an object.

        strawberry would fail reading the members of a JSON value that is no object (or a
        list, for batches), and reading a body that is not UTF-8.
        """
        if request.method != "POST" or "application/json" not in (request.content_type or ""):
            return
        try:
            text = request.body.decode()
        except UnicodeDecodeError:
            raise HTTPException(400, "The body is not UTF-8.") from None
        if not isinstance(self.parse_json(text), dict | list):
            raise HTTPException(400, "The body must be a JSON object: a GraphQL request.")

    # Responses --------------------------------------------------------------------------

    def response_media_type(self, request: HttpRequest) -> str:
        """`application/graphql-response+json` when the client accepts it, else JSON."""
        for item in request.headers.get("Accept", "").split(","):
            media_type, *parameters = (part.strip() for part in item.split(";"))
            refused = any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00") for p in parameters)
            if media_type.lower() == GRAPHQL_RESPONSE_MEDIA_TYPE and not refused:
                return GRAPHQL_RESPONSE_MEDIA_TYPE
        return _JSON

    def coded_result(self, result: ExecutionResult) -> GraphQLHTTPResponse:
        """The response body of `result`, every error with an `extensions.code`."""
        if result.errors:
            result.errors = [errors.with_code(error) for error in result.errors]
        return process_result(result)

    def error_response(
        self,
        request: HttpRequest,
        status: int,
        message: str,
        code: str,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        """A GraphQL JSON error answered before (or instead of) executing an operation."""
        body = {"errors": [GraphQLError(message, extensions={"code": code}).formatted]}
        response = HttpResponse(
            json.dumps(body), status=status, content_type=self.response_media_type(request)
        )
        for name, value in (headers or {}).items():
            response[name] = value
        return response

    def http_error(self, request: HttpRequest, error: HTTPException) -> HttpResponse:
        headers = {}
        if error.status_code == 405:
            headers["Allow"] = "POST" if request.method == "GET" else "GET, POST"
        code = _STATUS_CODES.get(error.status_code, errors.BAD_REQUEST)
        return self.error_response(request, error.status_code, error.reason, code, headers)

    def finish(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Give a JSON response the negotiated media type (and status, for request errors)."""
        media_type = self.response_media_type(request)
        if media_type == _JSON or not response.get("Content-Type", "").startswith(_JSON):
            return response
        response["Content-Type"] = media_type
        if response.status_code == 200 and isinstance(response, HttpResponse):
            body = json.loads(response.content)
            failed = isinstance(body, dict) and body.get("data") is None and body.get("errors")
            if failed and all("path" not in error for error in body["errors"]):
                # A request error (GraphQL over HTTP): no data entry, a 4xx status.
                del body["data"]
                response.content = json.dumps(body)
                response.status_code = 400
        return response

    @staticmethod
    def mutation_over_get(error: InvalidOperationTypeError, method: str) -> HTTPException:
        if method == "GET":
            return HTTPException(405, error.as_http_error_reason(method))
        return HTTPException(400, error.as_http_error_reason(method))


class GraphQLView(_RevyViewMixin, StrawberryGraphQLView):
    """strawberry's GraphQL view, authenticated with DRF's classes (module documentation)."""

    @classonlymethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # CSRF is the authentication classes' business (DRF checks it for sessions only).
        return csrf_exempt(super().as_view(**initkwargs))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            if request.method in ("GET", "POST"):
                self.authenticate(request)
                self.check_body(request)
            response = self.run(request=request)
        except _Refused as refused:
            return self.error_response(
                request, refused.status, refused.message, refused.code, refused.headers
            )
        except HTTPException as error:
            return self.http_error(request, error)
        return self.finish(request, response)

    def execute_single(self, request: Any, request_adapter: Any, *args: Any, **kwargs: Any) -> Any:
        execute = super().execute_single
        try:
            return _on_fresh_stack(execute, request, request_adapter, *args, **kwargs)
        except HTTPException as error:
            cause = error.__cause__
            if isinstance(cause, InvalidOperationTypeError):
                raise self.mutation_over_get(cause, request_adapter.method) from None
            raise

    def process_result(self, request: HttpRequest, result: ExecutionResult) -> GraphQLHTTPResponse:
        return self.coded_result(result)


class AsyncGraphQLView(_RevyViewMixin, StrawberryAsyncGraphQLView):
    """The async variant of `GraphQLView`; authentication runs in a worker thread."""

    @classonlymethod
    def as_view(cls, **initkwargs: Any) -> Any:
        return csrf_exempt(super().as_view(**initkwargs))

    async def dispatch(  # type: ignore[override]
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        try:
            if request.method in ("GET", "POST"):
                await sync_to_async(self.authenticate)(request)
                self.check_body(request)
            response = await self.run(request=request)
        except _Refused as refused:
            return self.error_response(
                request, refused.status, refused.message, refused.code, refused.headers
            )
        except HTTPException as error:
            return self.http_error(request, error)
        return self.finish(request, response)

    async def execute_single(
        self, request: Any, request_adapter: Any, *args: Any, **kwargs: Any
    ) -> Any:
        try:
            return await super().execute_single(request, request_adapter, *args, **kwargs)
        except HTTPException as error:
            cause = error.__cause__
            if isinstance(cause, InvalidOperationTypeError):
                raise self.mutation_over_get(cause, request_adapter.method) from None
            raise

    async def process_result(
        self, request: HttpRequest, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        return self.coded_result(result)
