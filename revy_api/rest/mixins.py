"""View mixins: a revision per request, and problem details for revy's errors.

Add `RevisionContextMixin` to any APIView or ViewSet::

    class CarViewSet(RevisionContextMixin, HistoryMixin, viewsets.ModelViewSet):
        queryset = Car.objects.all()
        serializer_class = CarSerializer

Each request then runs in its own revy context: everything it writes is one revision, the
actor is the authenticated user (read after Django REST framework authenticated the request,
so token and JWT users count), and on writes the revision headers apply (`X-Commit-Message`,
`X-Perform-As-Organization`, `X-Request-ID`; see `revy.contrib.django.headers`). A response
to a request that recorded changes names the revision in `X-Revision-Id`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import router
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.schemas.inspectors import ViewInspector

from revy.context import Context
from revy.contrib.django.headers import (
    REVISION_ID,
    RevisionHeaders,
    apply_headers,
    authenticated_user,
    read_headers,
)
from revy.contrib.django.revisions import pending_revision
from revy.contrib.django.utils import get_revision_model
from revy_api import inputs
from revy_api.errors import BadRequest
from revy_api.rest.exceptions import is_problem, problem_exception_handler
from revy_api.rest.schema import RevyAutoSchema

__all__ = ["ProblemDetailsMixin", "RevisionContextMixin"]


class _GuardedParser:
    """A parser whose too deeply nested JSON is a 400 (`ParseError`), not a crash."""

    def __init__(self, parser: BaseParser) -> None:
        self._parser = parser
        self.media_type = parser.media_type

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = self._parser.parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("The body nests arrays and objects too deeply.") from None
        try:
            return inputs.check_json_depth(data)
        except BadRequest as error:
            raise ParseError(error.detail) from None


class ProblemDetailsMixin:
    """Answer revy's own errors (bad headers, failed history operations) as problem details.

    Other errors keep the project's exception handler, unless `renders_problem_details()`
    says the current action is revy's (then every error of it is problem details).
    """

    # Documents the revision headers, problem details and response headers. Typed as DRF types
    # APIView.schema, so that a view mixing this class in type-checks.
    schema: ViewInspector | None = RevyAutoSchema()
    # Problem statuses an action can answer beyond the usual ones, for the schema.
    problem_responses: dict[str, tuple[int, ...]] = {}

    def renders_problem_details(self) -> bool:
        """Return True if every error of the current action is answered as problem details."""
        return False

    def get_parsers(self) -> list[Any]:
        """The view's parsers, refusing bodies nested too deeply (`MAX_JSON_DEPTH`)."""
        return [_GuardedParser(parser) for parser in super().get_parsers()]  # type: ignore[misc]

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        default = super().get_exception_handler()  # type: ignore[misc]
        if default is problem_exception_handler:
            return default

        def handler(exc: Exception, context: dict[str, Any]) -> Any:
            if is_problem(exc) or self.renders_problem_details():
                return problem_exception_handler(exc, context)
            return default(exc, context)

        return handler


class RevisionContextMixin(ProblemDetailsMixin):
    """Open a revy context for the whole request: one request, one revision.

    Override `get_revision_actor(request)` or `get_revision_description(request)` to choose
    the actor or the description differently. Bad revision headers answer 400 or 403 problem
    details before the handler runs, so nothing is written.
    """

    #: Read by `RevyAutoSchema`: writes of this view take the revision headers.
    opens_revision_context = True

    #: The validated revision headers of the current request.
    revision_headers: RevisionHeaders | None = None

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with Context():
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Authentication, permissions and throttling first: the actor is the user DRF found.
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        # Reads record nothing: the headers that shape a revision are read on writes only.
        safe = request.method in SAFE_METHODS
        self.revision_headers = RevisionHeaders() if safe else read_headers(request)
        actor = apply_headers(request, self.revision_headers, self.get_revision_actor(request))
        Context.set_actor(actor)
        description = self.get_revision_description(request)
        if description != Context.get_revision_description():
            Context.set_revision_description(description)

    def get_revision_actor(self, request: Request) -> Any:
        """Return the actor of the request's changes: the authenticated user, or None.

        `X-Perform-As-Organization`, when sent and allowed, replaces it with the organization
        (the user is then kept in the revision's metadata).
        """
        return authenticated_user(request)

    def get_revision_description(self, request: Request) -> str:
        """Return the revision's description: the `X-Commit-Message` header by default."""
        return self.revision_headers.description if self.revision_headers else ""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        # An error response may come from a transaction that was rolled back: name no revision.
        if response.status_code < 400 and REVISION_ID not in response:
            revision = pending_revision(router.db_for_write(get_revision_model()))
            if revision is not None:
                response[REVISION_ID] = str(revision.pk)
        return response
