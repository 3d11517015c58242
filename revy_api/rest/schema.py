"""OpenAPI documentation of revy's REST API (drf-spectacular).

`RevyAutoSchema` is the schema class of every view using revy's mixins. On top of what
drf-spectacular finds by itself it documents:

- the revision request headers (`X-Commit-Message`, `X-Perform-As-Organization`,
  `X-Request-ID`) on the writes of views with `RevisionContextMixin`, and `X-Revision-Id` on
  their responses;
- `ETag` on the responses of `HistoryMixin` viewsets, `If-Match` on their writes;
- error responses: problem details (`application/problem+json`) for revy's errors, and the
  errors any Django REST framework view gives (400 invalid input, 401/403 as the view's
  authentication classes answer them, 404) in whatever format the view answers them;
- what `revy_api.rest.openapi` adds for client generators and fuzzers: readable operation
  ids, precise parameters, the rollback body as a `oneOf`, `Link` headers of paginated
  responses, examples and OpenAPI links.
"""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

from revy.contrib.django.headers import (
    COMMIT_MESSAGE,
    MAX_COMMIT_MESSAGE,
    MAX_REQUEST_ID,
    ORGANIZATION,
    REQUEST_ID,
    REVISION_ID,
)
from revy.contrib.django.utils import get_revision_model
from revy_api import operations
from revy_api.rest import openapi
from revy_api.rest.exceptions import PROBLEM_MEDIA_TYPE, problem_exception_handler

__all__ = [
    "COMMIT_MESSAGE_PARAMETER",
    "ETAG_HEADER",
    "IF_MATCH_PARAMETER",
    "ORGANIZATION_PARAMETER",
    "REQUEST_ID_PARAMETER",
    "REVISION_ID_HEADER",
    "RevyAutoSchema",
]

_UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_CONDITIONAL_ACTIONS = ("update", "partial_update", "destroy", "rollback")

COMMIT_MESSAGE_PARAMETER = OpenApiParameter(
    COMMIT_MESSAGE,
    {
        "type": "string",
        "maxLength": MAX_COMMIT_MESSAGE,
        # No control characters but tab and newline (in header bytes: UTF-8).
        "pattern": "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$",
    },
    OpenApiParameter.HEADER,
    description=(
        f"Why: the description of the revision this request records. UTF-8, at most "
        f"{MAX_COMMIT_MESSAGE:,} characters, no control characters but newline and tab; "
        "otherwise 400 and nothing is written."
    ),
)
ORGANIZATION_PARAMETER = OpenApiParameter(
    ORGANIZATION,
    str,
    OpenApiParameter.HEADER,
    description=(
        "Act as this organization: its changes are recorded with the organization as actor "
        "(and you in the revision's metadata). Refused or unknown: 403, nothing is written."
    ),
)
REQUEST_ID_PARAMETER = OpenApiParameter(
    REQUEST_ID,
    {"type": "string", "pattern": f"^[\\x21-\\x7e]{{1,{MAX_REQUEST_ID}}}$"},
    OpenApiParameter.HEADER,
    description="Kept in the revision's metadata, to find the request behind a change.",
)
IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description=(
        "The object's ETag as you last read it (or `*`): 412, and nothing written, if it "
        "changed since. Compared strongly: a weak ETag (`W/...`) never matches."
    ),
)
# A response header object (drf-spectacular leaves 204 responses without headers).
REVISION_ID_HEADER = {
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
    "description": "The revision that recorded the request's changes (when it recorded any).",
}
ETAG_HEADER = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    description="The object's current state; send it back in If-Match to roll back safely.",
    response=[200],
)

_GENERIC_ERROR = {
    "type": "object",
    "additionalProperties": {},
    "description": "The error as Django REST framework reports it.",
}
_rollback_serializers: dict[str, type[serializers.Serializer]] = {}


class RevyAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus revy's headers and error responses."""

    def _revy_view(self, name: str) -> bool:
        # Told by attributes the mixins set, not isinstance(): the mixins import this module
        # to use it as their schema.
        attribute = {"context": "opens_revision_context", "history": "serves_history"}[name]
        return getattr(self.view, attribute, False) is True

    @property
    def _action(self) -> str | None:
        return getattr(self.view, "action", None)

    def _model(self) -> Any:
        try:
            # A view without get_queryset() raises too, as one without a queryset does.
            return cast("GenericAPIView[Any]", self.view).get_queryset().model
        except Exception:  # a view without a queryset
            return None

    def get_operation_id(self) -> str:
        model = self._model()
        readable = openapi.operation_id(model, self._action) if model is not None else None
        return readable or super().get_operation_id()

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        writes = self.method in _UNSAFE_METHODS
        if self._revy_view("context") and writes:
            # Only writes record a revision: the headers shaping it are for writes.
            parameters += [COMMIT_MESSAGE_PARAMETER, ORGANIZATION_PARAMETER, REQUEST_ID_PARAMETER]
        if self._revy_view("history") and self._action in getattr(self.view, "etag_actions", ()):
            parameters.append(ETAG_HEADER)
        if self._revy_view("history") and self._action in _CONDITIONAL_ACTIONS:
            parameters.append(IF_MATCH_PARAMETER)
        if self._filters_history():
            parameters += openapi.filter_parameters()
        return parameters

    def _filters_history(self) -> bool:
        from revy_api.rest.filters import DeltaFilterBackend

        backends = getattr(self.view, "filter_backends", ())
        return self._action == "list" and any(
            issubclass(backend, DeltaFilterBackend) for backend in backends
        )

    def get_response_serializers(self) -> Any:
        if self._revy_view("history") and self._action == "rollback":
            return self._rollback_result()
        return super().get_response_serializers()

    def _rollback_result(self) -> type[serializers.Serializer]:
        from revy_api.rest.serializers import RollbackResultSerializer

        serializer = self._get_serializer()
        name = self._get_serializer_name(serializer, "response") + "Rollback"
        if name not in _rollback_serializers:
            fields = dict(RollbackResultSerializer().get_fields())
            fields["object"] = type(serializer)(
                read_only=True, help_text="The row as it is (or would be) afterwards."
            )
            _rollback_serializers[name] = inline_serializer(name=name, fields=fields).__class__
        return _rollback_serializers[name]

    # Errors -----------------------------------------------------------------------------

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        if self._revy_view("context") and self.method in _UNSAFE_METHODS:
            for status, response in responses.items():
                if status.startswith("2"):
                    headers = response.setdefault("headers", {})
                    headers[REVISION_ID] = copy.deepcopy(REVISION_ID_HEADER)
        if self._revy_view("history") and self._action == "rollback":
            operation["requestBody"] = self._rollback_body(registry)
        self._document_pages(responses)
        self._document_links(responses)
        for status, media_types in sorted(self._error_responses(operation).items()):
            response = responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
            content = response.setdefault("content", {})
            for media_type, schema in media_types.items():
                content.setdefault(media_type, {"schema": schema})
            if status == 401 and self._challenge():
                response.setdefault("headers", {})["WWW-Authenticate"] = copy.deepcopy(
                    openapi.WWW_AUTHENTICATE_HEADER
                )
        return operation

    def _rollback_body(self, registry: Any) -> dict[str, Any]:
        component = ResolvedComponent(
            name="RollbackPoint",
            type=ResolvedComponent.SCHEMA,
            schema=openapi.ROLLBACK_POINT,
            object="RollbackPoint",
        )
        registry.register_on_missing(component)
        return {
            "content": {
                "application/json": {
                    "schema": component.ref,
                    "examples": copy.deepcopy(openapi.ROLLBACK_EXAMPLES),
                }
            },
            "required": True,
        }

    def _document_pages(self, responses: dict[str, Any]) -> None:
        from revy_api.rest.pagination import LinkHeaderPagination

        paginator = self._get_paginator() if self._is_list_view() else None
        pages = isinstance(paginator, LinkHeaderPagination) or (
            self._revy_view("history") and self._action == "history"
        )
        if pages and "200" in responses:
            responses["200"].setdefault("headers", {})["Link"] = copy.deepcopy(openapi.LINK_HEADER)

    def _document_links(self, responses: dict[str, Any]) -> None:
        model = self._model()
        if model is None or not (self._revy_view("history") or self._revy_view("context")):
            return
        serializer = self._get_serializer() if self._revy_view("history") else None
        fields = getattr(serializer, "fields", {}) if serializer is not None else {}
        found = openapi.links(
            model,
            get_revision_model(),
            self._action,
            history=self._revy_view("history"),
            id_in_body="id" in fields,
        )
        success = next((status for status in sorted(responses) if status.startswith("2")), None)
        if found and success is not None:
            responses[success]["links"] = found

    def _challenge(self) -> str | None:
        """The `WWW-Authenticate` challenge of the view's first authentication class."""
        authenticators = (
            self.view.get_authenticators() if hasattr(self.view, "get_authenticators") else []
        )
        if not authenticators:
            return None
        try:
            # No request to hand while documenting: a challenge that needs one fails (below).
            return authenticators[0].authenticate_header(None)  # type: ignore[arg-type]
        except Exception:  # it needed a real request
            return None

    def _error_responses(self, operation: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """Map each error status of the operation to `{media type: schema}`."""
        revy_statuses: set[int] = set()
        if self._revy_view("context"):
            revy_statuses |= {400, 403}  # bad headers; a refused organization
        revy_statuses |= set(getattr(self.view, "problem_responses", {}).get(self._action, ()))
        if self._revy_view("history") and self._action in _CONDITIONAL_ACTIONS:
            revy_statuses.add(412)
            if operations.if_match_required():
                revy_statuses.add(428)
        usual = self._usual_error_statuses(operation)
        problems_only = self._renders_problems()
        errors: dict[int, dict[str, Any]] = {}
        for status in sorted(revy_statuses | usual):
            media_types = errors.setdefault(status, {})
            if status in revy_statuses or problems_only:
                media_types[PROBLEM_MEDIA_TYPE] = self._problem_schema(status)
            if status in usual and not problems_only:
                media_types["application/json"] = _GENERIC_ERROR
        return errors

    def _usual_error_statuses(self, operation: dict[str, Any]) -> set[int]:
        statuses: set[int] = set()
        permissions = self.view.get_permissions() if hasattr(self.view, "get_permissions") else []
        if any(not isinstance(permission, AllowAny) for permission in permissions):
            # DRF answers 401 (with a challenge) only when the first authentication class
            # names a scheme; otherwise missing or refused credentials are a 403.
            statuses |= {401, 403} if self._challenge() else {403}
        parameters = operation.get("parameters", [])
        if "requestBody" in operation or any(p.get("in") == "query" for p in parameters):
            statuses.add(400)  # invalid input, invalid filters
        if any(p.get("in") == "path" for p in parameters) or (
            self._is_list_view() and self._get_paginator() is not None
        ):
            statuses.add(404)  # no such object; an invalid page or cursor
        return statuses

    def _renders_problems(self) -> bool:
        renders = getattr(self.view, "renders_problem_details", None)
        if renders is not None and renders():
            return True
        return api_settings.EXCEPTION_HANDLER is problem_exception_handler

    def _problem_schema(self, status: int) -> dict[str, Any]:
        from revy_api.rest.serializers import ConflictProblemSerializer, ProblemSerializer

        serializer = ConflictProblemSerializer if status == 409 else ProblemSerializer
        return self.resolve_serializer(serializer, "response").ref
