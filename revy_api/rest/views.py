"""The global history endpoints: revisions (and reverting them), object deltas, the feed.

Revisions and deltas list newest first with cursor pagination; `changes/` serves every delta
in commit order from a resumable cursor (`revy.contrib.django.feed`). All take the filters of
`revy_api.rest.filters`. A user sees only the deltas of models the visibility policy lets
them view, and a revision only with its visible deltas (a revision with none is not found).
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from revy.contrib.django import feed
from revy.contrib.django.recovery import deleted
from revy.contrib.django.utils import get_object_delta_model, get_revision_model
from revy_api import inputs, operations
from revy_api.references import content_type_for_label
from revy_api.rest import openapi
from revy_api.rest.filters import DeltaFilterBackend, DeltaFilterSet, RevisionFilterBackend
from revy_api.rest.mixins import ProblemDetailsMixin, RevisionContextMixin
from revy_api.rest.pagination import HistoryCursorPagination
from revy_api.rest.renderers import CSVRenderer, ExportRenderer, NDJSONRenderer, streaming_export
from revy_api.rest.serializers import (
    ChangesPageSerializer,
    ChangesQuerySerializer,
    DeletedObjectSerializer,
    ObjectDeltaSerializer,
    RevertOptionsSerializer,
    RevertResultSerializer,
    RevisionDetailSerializer,
    RevisionSerializer,
)
from revy_api.visibility import VisibilityPolicy, get_policy

__all__ = ["ChangesViewSet", "DeletedViewSet", "DeltaViewSet", "RevisionViewSet"]


class _ReadOnlyHistoryViewSet(ProblemDetailsMixin, viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsAuthenticated]
    pagination_class = HistoryCursorPagination
    filterset_class = DeltaFilterSet

    def renders_problem_details(self) -> bool:
        return True

    def get_visibility_policy(self) -> VisibilityPolicy:
        """Return the policy deciding which deltas the user sees."""
        return get_policy()

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "policy": self.get_visibility_policy()}


@extend_schema_view(
    list=extend_schema(summary="Revisions having visible deltas, newest first"),
    retrieve=extend_schema(
        summary="A revision with its metadata and visible deltas",
        parameters=[openapi.DELTAS_AFTER],
        filters=False,
    ),
)
class RevisionViewSet(RevisionContextMixin, _ReadOnlyHistoryViewSet):
    """Revisions, filtered by their deltas; `POST revert/` undoes one as a new revision."""

    filter_backends = [RevisionFilterBackend]
    problem_responses = {"revert": (400, 403, 404, 409)}

    def get_queryset(self) -> Any:
        revisions = get_revision_model()._base_manager.order_by("-id")
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, maybe without a DB
            return revisions.none()
        return self.get_visibility_policy().filter_revisions(self.request.user, revisions)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        after = self.request.query_params.get("deltas_after") if self.request else None
        if self.action == "retrieve" and after not in (None, ""):
            context["deltas_after"] = inputs.integer(after, "deltas_after")
        return context

    def get_serializer_class(self) -> type:
        if self.action == "retrieve":
            return RevisionDetailSerializer
        if self.action == "revert":
            return RevertOptionsSerializer
        return RevisionSerializer

    @extend_schema(
        summary="Undo every change of a revision, as a new revision",
        request=RevertOptionsSerializer,
        responses=RevertResultSerializer,
        examples=openapi.REVERT_EXAMPLES,
        filters=False,
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def revert(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """409 lists the later changes that conflict, unless `force` is true."""
        revision = self.get_object()
        body = RevertOptionsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        undo = operations.revert(
            revision,
            user=request.user,
            force=body.validated_data["force"],
            policy=self.get_visibility_policy(),
        )
        return Response({"reverted": revision.pk, "revision": undo.pk if undo else None})


_EXPORT_RESPONSES = {
    (200, NDJSONRenderer.media_type): OpenApiResponse(
        OpenApiTypes.STR,
        description="Every matching delta, one JSON object per line, newest first, streamed "
        "(the format of `manage.py revy_export --format jsonl`).",
    ),
    (200, CSVRenderer.media_type): OpenApiResponse(
        OpenApiTypes.STR,
        description="Every matching delta, one row per field change after a header, newest "
        "first, streamed (the format of `manage.py revy_export --format csv`).",
    ),
}


@extend_schema_view(
    list=extend_schema(
        summary="Object deltas of models you may view, newest first",
        description="Object deltas with their attribute deltas (`changes`). With `Accept: "
        "application/x-ndjson` or `text/csv` (or `?format=ndjson`, `?format=csv`): every delta "
        "the filters select, streamed as an export instead of a page.",
        responses={
            (200, "application/json"): ObjectDeltaSerializer(many=True),
            **_EXPORT_RESPONSES,
        },
    ),
    retrieve=extend_schema(
        summary="An object delta with its attribute deltas",
        description="An object delta with its attribute deltas (`changes`).",
    ),
)
class DeltaViewSet(_ReadOnlyHistoryViewSet):
    """Object deltas with their attribute deltas (`changes`).

    The list is also an export: `Accept: application/x-ndjson` or `text/csv` (or
    `?format=ndjson`, `?format=csv`) streams every delta the filters select.
    """

    serializer_class = ObjectDeltaSerializer
    filter_backends = [DeltaFilterBackend]

    def get_renderers(self) -> list[Any]:
        renderers = super().get_renderers()
        if getattr(self, "action", None) == "list":
            renderers += [NDJSONRenderer(), CSVRenderer()]
        return renderers

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # A method the view does not handle answers 405 whatever `?format=` asks for (DRF
        # negotiates first, and the export formats exist for `list` only: 404 otherwise).
        if getattr(self, "action", None) is None:
            force = True
        elif not force and request.query_params.get("format") == "":
            # DRF would ignore it; the document lists the formats there are (found by the
            # API fuzzer: `?format=` was accepted against the documented enum).
            raise exceptions.ValidationError({"format": ["Name a format: json, ndjson or csv."]})
        return super().perform_content_negotiation(request, force)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        renderer = getattr(request, "accepted_renderer", None)
        if isinstance(renderer, ExportRenderer):
            # An export has no pages, but a bad page size is a 400 as for a page.
            if self.paginator is not None:
                paginator = cast(HistoryCursorPagination, self.paginator)  # pagination_class
                paginator.get_page_size(request)
            return streaming_export(self.filter_queryset(self.get_queryset()), renderer)
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        deltas = get_object_delta_model()._base_manager.order_by("-id")
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, maybe without a DB
            return deltas.none()
        visible = self.get_visibility_policy().filter_deltas(self.request.user, deltas)
        return visible


@extend_schema_view(
    list=extend_schema(
        operation_id="listDeletedObjects",
        summary="Rows of a model deleted now, with their last state, newest first",
        parameters=[
            OpenApiParameter(
                "content_type",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=True,
                description="`app_label.model` of the rows.",
            )
        ],
        filters=False,
    )
)
class DeletedViewSet(ProblemDetailsMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """`GET deleted/?content_type=app_label.model`: the rows of a model that are deleted now
    (their latest recorded change is a deletion), newest deletion first.

    Each with its last state and the deletion's time, actor, description and revision
    (`revy.contrib.django.history.deleted`). Only deletions the visibility policy lets the
    user see (`filter_deltas`); restore one with the model's `rollback/`.
    """

    permission_classes = [IsAuthenticated]
    pagination_class = HistoryCursorPagination
    serializer_class = DeletedObjectSerializer

    def renders_problem_details(self) -> bool:
        return True

    def get_visibility_policy(self) -> VisibilityPolicy:
        """Return the policy deciding which deletions the user sees."""
        return get_policy()

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, maybe without a DB
            return get_object_delta_model()._base_manager.none()
        label = self.request.query_params.get("content_type", "")
        content_type = content_type_for_label(label) if label else None
        model = content_type.model_class() if content_type is not None else None
        if model is None:
            raise operations.BadRequest(
                "content_type must name a model as app_label.model"
                + (f", not {label!r}." if label else "."),
                field="content_type",
            )
        return self.get_visibility_policy().filter_deltas(self.request.user, deleted(model))


class ChangesViewSet(ProblemDetailsMixin, viewsets.GenericViewSet):
    """Every object delta you may see, once, in commit order: a feed to follow history.

    Poll `GET changes/?after=<cursor>` with the `cursor` of the previous answer. A delta whose
    transaction commits after a later one is never skipped (see `revy.contrib.django.feed`).
    """

    permission_classes = [IsAuthenticated]
    pagination_class = None
    filterset_class = DeltaFilterSet
    filter_backends = [DeltaFilterBackend]
    serializer_class = ObjectDeltaSerializer
    max_page_size = 500
    default_page_size = 50

    def renders_problem_details(self) -> bool:
        return True

    def get_visibility_policy(self) -> VisibilityPolicy:
        """Return the policy deciding which deltas the user sees."""
        return get_policy()

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "policy": self.get_visibility_policy()}

    def get_queryset(self) -> Any:
        deltas = get_object_delta_model()._base_manager.all()
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, maybe without a DB
            return deltas.none()
        visible = self.get_visibility_policy().filter_deltas(self.request.user, deltas)
        return visible

    @extend_schema(
        operation_id="listChanges",
        summary="Every object delta you may see, in commit order, from a cursor",
        parameters=[ChangesQuerySerializer],
        responses=ChangesPageSerializer,
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Deltas after `after`, oldest first; resume with the answer's `cursor`."""
        query = ChangesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data.get("page_size", self.default_page_size)
        size = min(wanted, self.max_page_size)
        deltas = self.filter_queryset(self.get_queryset())
        try:
            page = feed.changes(deltas, after=query.validated_data.get("after") or None, limit=size)
        except feed.InvalidCursor as error:
            raise exceptions.ValidationError({"after": [str(error)]}) from None
        results = self.get_serializer(page.deltas, many=True).data
        return Response({"results": results, "cursor": page.cursor, "has_more": page.has_more})
