"""`HistoryMixin`: an object's history, past states, diffs and rollback on a ModelViewSet.

Adds to a ModelViewSet `GET {prefix}/?as_of=<datetime>`: the list as it was at that moment
(read-only; same queryset, filters, ordering and pagination, on the past values), and, for
each object (`{prefix}/{pk}/...`):

- `GET history/` its object deltas, newest first (`?aggregates=true`: with the changes of
  the rows that name it as an aggregate, as far as you may see their models);
- `GET snapshot/?revision=|delta=|at=` the object as it was, rendered with the viewset's
  serializer (no point: its latest recorded state);
- `GET diff/?since=&until=` the fields that differ between two points (each a revision id or
  an ISO datetime);
- `POST rollback/` with `{"revision": id}`, `{"delta": id}` or `{"at": iso}`: restore that
  state as a new revision, re-creating a deleted row (with `"cascade": true`, also the rows
  its deletion took along, listed in `cascaded`). `If-Match` is compared with the
  object's ETag (412 when stale), `?dry_run=true` answers what would change and writes
  nothing, and rolling back to the state the row already has records nothing.

`retrieve`, `update` and `partial_update` answer the object's `ETag`. `PUT`, `PATCH` and
`DELETE` honour `If-Match` as rollback does: compared with the row locked for the write, 412
when stale (a weak ETag never matches), 428 without it when `REVY_API["REQUIRE_IF_MATCH"]`.

Access needs both the viewset and the visibility policy (`revy_api.visibility`):

- the viewset: reading history needs what `retrieve` needs (its queryset and permission
  classes), rolling back what a `PATCH` needs. A row outside `get_queryset()` is not found
  (404), deleted or not: a deleted row belongs to the queryset when its last recorded state
  passes the queryset's filter (`deleted_object_in_queryset()`, see
  `revy.contrib.django.access.in_queryset`), and the object permissions are checked on that
  state;
- the policy: `can_view_object` for every action (403 otherwise), and for a rollback
  `change` on the row, or `add` to re-create it (403).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections, models, router, transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request, clone_request
from rest_framework.response import Response

from revy.context import Context
from revy.contrib.django import history as revy_history
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.headers import REVISION_ID, authenticated_user
from revy.contrib.django.recovery import CascadedRow
from revy_api import inputs, operations
from revy_api.rest import openapi
from revy_api.rest.mixins import ProblemDetailsMixin
from revy_api.rest.pagination import HistoryCursorPagination
from revy_api.rest.schema import IF_MATCH_PARAMETER
from revy_api.rest.serializers import (
    DiffSerializer,
    ObjectDeltaPageSerializer,
    ObjectDeltaSerializer,
    RollbackPointSerializer,
)
from revy_api.visibility import VisibilityPolicy, get_policy, in_queryset, last_recorded_state

if TYPE_CHECKING:
    # A mixin of model viewsets, checked against what it is mixed into.
    from rest_framework.viewsets import GenericViewSet as _ViewSet
else:
    _ViewSet = object

__all__ = ["HistoryMixin", "HistoryTarget"]

HISTORY_ACTIONS = frozenset({"history", "snapshot", "diff", "rollback"})
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class HistoryTarget:
    """The row a history action is about; `instance` is None when it was deleted, and
    `state` is then its last recorded state (unsaved)."""

    model: type[models.Model]
    pk: Any
    instance: models.Model | None
    state: models.Model | None = None

    @property
    def label(self) -> str:
        return f"{self.model._meta.label} {self.pk}"


def _flag(request: Request, name: str) -> bool:
    if name not in request.query_params:
        return False
    value = request.query_params[name].strip().lower()
    if value in _TRUE:
        return True
    if value not in _FALSE:
        raise operations.BadRequest(f"{name} must be true or false, not {value!r}.", field=name)
    return False


def _query_parameter(name: str, kind: Any, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, description=description)


def _cascaded_reference(row: CascadedRow) -> dict[str, Any]:
    """`{type, id, display}` of a row re-created by a cascading rollback."""
    return {
        "type": row.model._meta.label_lower,
        "id": row.delta.content_id,
        "display": str(row.instance()),
    }


class HistoryMixin(ProblemDetailsMixin, _ViewSet):
    """Per-object history endpoints for a ModelViewSet (see the module documentation)."""

    #: Read by `RevyAutoSchema`: this view serves history actions, ETags and If-Match.
    serves_history = True
    history_pagination_class = HistoryCursorPagination
    etag_actions = ("retrieve", "update", "partial_update", "rollback")
    problem_responses = {
        "history": (400, 403, 404),
        "snapshot": (400, 403, 404),
        "diff": (400, 403, 404),
        "rollback": (400, 403, 404, 409, 412),
        "update": (412,),
        "partial_update": (412,),
        "destroy": (412,),
    }

    def renders_problem_details(self) -> bool:
        return self.action in HISTORY_ACTIONS or super().renders_problem_details()

    def get_visibility_policy(self) -> VisibilityPolicy:
        """Return the policy that decides who sees and restores which history."""
        return get_policy()

    # Access ----------------------------------------------------------------------------

    @contextmanager
    def _as_update(self, request: Request) -> Iterator[Request]:
        """Let permission classes judge a rollback as the PATCH it amounts to."""
        saved = self.action
        self.action = "partial_update"
        try:
            yield clone_request(request, "PATCH")
        finally:
            self.action = saved

    def check_permissions(self, request: Request) -> None:
        if self.action == "rollback":
            with self._as_update(request) as update:
                return super().check_permissions(update)
        return super().check_permissions(request)

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        if self.action == "rollback":
            with self._as_update(request) as update:
                return super().check_object_permissions(update, obj)
        return super().check_object_permissions(request, obj)

    def get_object(self) -> Any:
        instance = super().get_object()
        self._etag_object = instance
        if getattr(self, "_locked_write", False):
            # Compared with the row as locked for this write: no change can slip in between.
            operations.check_if_match(instance, self.request.headers.get("If-Match"))
        return instance

    # Conditional writes (If-Match) ----------------------------------------------------------

    def filter_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        if self.as_of_at is not None and self.action == "list":
            # The past values, filtered, ordered and paginated as the present ones are.
            queryset = revy_history.as_of(queryset, self.as_of_at)
        queryset = super().filter_queryset(queryset)
        if getattr(self, "_locked_write", False):
            of = ("self",) if connections[queryset.db].features.has_select_for_update_of else ()
            queryset = queryset.select_for_update(of=of)
        return queryset

    @contextmanager
    def conditional_write(self) -> Iterator[None]:
        """Run an update or a delete in a transaction, its row locked and `If-Match` checked.

        `get_object()` reads the row `FOR UPDATE` and compares its ETag with `If-Match` (412
        when stale; 428 when missing and `REVY_API["REQUIRE_IF_MATCH"]` is on); the write
        then happens before anyone else may change the row.
        """
        model = self.get_queryset().model
        with transaction.atomic(using=router.db_for_write(model)):
            self._locked_write = True
            try:
                yield
            finally:
                self._locked_write = False

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with self.conditional_write():  # PATCH too: partial_update() calls update()
            return super().update(request, *args, **kwargs)  # type: ignore[misc]

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with self.conditional_write():
            return super().destroy(request, *args, **kwargs)  # type: ignore[misc]

    def get_history_target(self) -> HistoryTarget:
        """Return the row of the current request, if the user may reach and see it.

        An existing row is found with `get_object()` (queryset, object permissions); a
        deleted one by its primary key, when its last recorded state belongs to the queryset
        and passes the object permissions. Either way 404 otherwise, then 403 unless the
        visibility policy lets the user see the row's history.
        """
        model = concrete_model(self.get_queryset().model)
        try:
            instance = self.get_object()
        except Http404:
            target = self._deleted_target(model)
            if target is None:
                raise
        else:
            target = HistoryTarget(model, instance.pk, instance)
        operations.require_view(
            model,
            target.pk,
            user=self.request.user,
            policy=self.get_visibility_policy(),
            obj=target.instance or target.state,
        )
        return target

    def deleted_object_in_queryset(self, state: models.Model) -> bool:
        """Return True if a deleted row, as last recorded (`state`), belongs to the queryset.

        By default the filter of `get_queryset()` is evaluated on the recorded values
        (`revy_api.visibility.in_queryset`): per-owner or per-tenant querysets filtering on
        the row's own columns work as they do for existing rows. A filter that joins other
        tables cannot be evaluated so, and hides every deleted row: override this method to
        decide for those.
        """
        return in_queryset(self.get_queryset(), state)

    def _deleted_target(self, model: type[models.Model]) -> HistoryTarget | None:
        """The row the URL names if it was deleted and, as last recorded, is reachable."""
        pk_field = model._meta.pk
        if self.lookup_field not in ("pk", pk_field.name, pk_field.attname):
            return None  # a deleted row cannot be found by other fields
        try:
            pk = inputs.primary_key(model, self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        except (KeyError, operations.BadRequest):
            return None  # no row can have it (NUL characters, integers beyond 64 bits)
        state = last_recorded_state(model, pk)
        if state is None or not state._state.adding:
            return None  # no history; or the row exists, but not for this user
        if not self.deleted_object_in_queryset(state):
            return None
        self.check_object_permissions(self.request, state)
        return HistoryTarget(model, pk, None, state)

    # The table at a past moment ---------------------------------------------------------

    @extend_schema(
        parameters=[
            _query_parameter(
                "as_of",
                OpenApiTypes.DATETIME,
                "List the objects as they were at this moment (ISO 8601; naive is UTC): "
                "rows deleted since included, rows created since not; read-only.",
            )
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """List the objects; with `?as_of=`, as they were at that moment.

        The past list goes through the same queryset, filters, ordering and pagination,
        evaluated on the past values (relations read the present: see
        `revy.contrib.django.history.as_of`). It needs the policy's view of the model's
        history (`can_view_model`, 403 otherwise).
        """
        value = request.query_params.get("as_of")
        if value is not None:
            self.as_of_at = operations.parse_datetime_value(value, "as_of")
            model = self.get_queryset().model
            if not self.get_visibility_policy().can_view_model(request.user, model):
                raise operations.Forbidden(
                    f"You may not see the history of {model._meta.verbose_name_plural}."
                )
        return super().list(request, *args, **kwargs)  # type: ignore[misc]

    #: The moment `?as_of=` asks for, while a list is read.
    as_of_at: datetime.datetime | None = None

    # Actions ---------------------------------------------------------------------------

    @extend_schema(
        summary="The object's history, newest first",
        parameters=[
            _query_parameter("aggregates", bool, "Include the changes of its aggregated rows."),
            *openapi.page_parameters(),
        ],
        responses=ObjectDeltaPageSerializer,
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="history")
    def history(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """List the object's deltas, newest first, with their attribute deltas.

        With `aggregates=true`, also the changes of the rows that name this one as their
        aggregate (`get_event_aggregates()`, `REVY_AGGREGATES`) whose models you may view.
        """
        target = self.get_history_target()
        deltas = self.get_history_queryset(target, aggregates=_flag(request, "aggregates"))
        paginator = self.history_pagination_class()
        # No view: the viewset's ordering filters are about its model, not about deltas.
        page = paginator.paginate_queryset(deltas, request)
        data = ObjectDeltaSerializer(page, many=True, context=self.get_serializer_context()).data
        return paginator.get_paginated_response(data)

    def get_history_queryset(self, target: HistoryTarget, *, aggregates: bool) -> models.QuerySet:
        """Return the deltas `history/` lists: the row's own, and visible aggregated ones."""
        return self.get_visibility_policy().filter_history(
            self.request.user, target.model, target.pk, aggregates=aggregates
        )

    @extend_schema(
        summary="The object as it was at a point in its history",
        parameters=openapi.POINT_PARAMETERS,
        filters=False,
    )
    @action(detail=True, methods=["get"])
    def snapshot(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Show the object as it was at one point: `revision`, `delta` or `at`.

        Without a point: its latest recorded state. 404 when it did not exist then.
        """
        target = self.get_history_target()
        params = request.query_params
        for name in ("revision", "delta", "at"):
            if params.get(name) == "":  # as documented: a point, or no parameter at all
                raise operations.BadRequest(f"{name} is empty.", field=name)
        point = operations.parse_point(
            revision=params.get("revision"),
            delta=params.get("delta"),
            at=params.get("at"),
            required=False,
        )
        instance = operations.snapshot(target.model, target.pk, point)
        if instance is None:
            raise operations.NotFound(f"{target.label} did not exist at that point.")
        return Response(self.get_serializer(instance).data)

    @extend_schema(
        summary="The fields that differ between two points",
        parameters=openapi.DIFF_PARAMETERS,
        responses=DiffSerializer,
        filters=False,
    )
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """List the fields whose values differ between `since` and `until`."""
        target = self.get_history_target()
        since = request.query_params.get("since") or None
        until = request.query_params.get("until") or None
        changes = operations.diff(
            target.model,
            target.pk,
            operations.parse_diff_point(since, "since"),
            operations.parse_diff_point(until, "until"),
        )
        return Response({"since": since, "until": until, "changes": changes})

    @extend_schema(
        summary="Restore the object's state at a point (re-creating it if deleted)",
        request=RollbackPointSerializer,
        parameters=[
            IF_MATCH_PARAMETER,
            _query_parameter("dry_run", bool, "Answer what would change; write nothing."),
        ],
        filters=False,
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def rollback(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Restore the object's state at one point, as a new revision.

        Give one of `revision`, `delta` and `at`. A deleted object is re-created with its
        primary key. Send `If-Match` with the ETag you read to fail (412) instead of
        overwriting a change made meanwhile; `dry_run=true` shows the changes and writes
        nothing. Rolling back to the state the object already has records nothing.
        """
        target = self.get_history_target()
        body = RollbackPointSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        options = dict(body.validated_data)
        cascade = options.pop("cascade", False)
        point = operations.parse_point(**options)
        # Without RevisionContextMixin no context is open yet: record as the user anyway.
        recording = nullcontext() if Context.is_active() else Context(actor=self._user())
        with recording:
            result = self.perform_rollback(
                target,
                point,
                dry_run=_flag(request, "dry_run"),
                if_match=request.headers.get("If-Match"),
                cascade=cascade,
            )
        shown = result.target if result.dry_run else result.instance
        response = Response(
            {
                "object": self.get_serializer(shown).data,
                "changes": result.changes,
                "created": result.created,
                "dry_run": result.dry_run,
                "revision": result.revision.pk if result.revision is not None else None,
                "cascaded": [_cascaded_reference(row) for row in result.cascaded],
            }
        )
        if not (result.dry_run and result.created):  # a row to be re-created has no ETag yet
            self._etag_object = result.instance
        if result.revision is not None:
            response[REVISION_ID] = str(result.revision.pk)
        return response

    def _user(self) -> Any:
        return authenticated_user(self.request)

    def perform_rollback(
        self,
        target: HistoryTarget,
        point: revy_history.Point,
        *,
        dry_run: bool,
        if_match: str | None,
        cascade: bool = False,
    ) -> operations.RollbackResult:
        """Roll the row back (or describe it, for a dry run); override to add side effects."""
        return operations.rollback(
            target.model,
            target.pk,
            point,
            user=self.request.user,
            dry_run=dry_run,
            if_match=if_match,
            policy=self.get_visibility_policy(),
            cascade=cascade,
        )

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        instance = getattr(self, "_etag_object", None)
        if (
            instance is not None
            and self.action in self.etag_actions
            and 200 <= response.status_code < 300
            and "ETag" not in response
        ):
            response["ETag"] = operations.etag(instance)
        return response
