"""The JSON of history: object deltas, revisions, rollback and diff results, problems.

The shapes are the contract's (`CONTRACT.md`, section 3). Fields are declared so that
drf-spectacular documents them, but the history serializers build their JSON directly in
`to_representation`: lists resolve the actors and objects of a whole page through
`revy_api.references.References` (one query per model), never one query per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from revy.contrib.django.models import Actions
from revy_api import inputs
from revy_api.errors import BadRequest
from revy_api.field_changes import field_changes, load_field_changes
from revy_api.inputs import MAX_ID
from revy_api.references import References
from revy_api.rest.openapi import metadata_schema
from revy_api.summaries import revision_summaries, sorted_actors
from revy_api.visibility import VisibilityPolicy, get_policy

if TYPE_CHECKING:
    from revy.contrib.django.models import (
        AbstractAttributeDelta,
        AbstractObjectDelta,
        AbstractRevision,
    )
    from revy.contrib.django.recovery import DeletionDelta

__all__ = [
    "ChangeSerializer",
    "ChangesPageSerializer",
    "ChangesQuerySerializer",
    "ConflictProblemSerializer",
    "ConflictSerializer",
    "DeletedObjectSerializer",
    "DiffSerializer",
    "MomentField",
    "ObjectDeltaPageSerializer",
    "ObjectDeltaSerializer",
    "ProblemSerializer",
    "ReferenceSerializer",
    "RevertOptionsSerializer",
    "RevertResultSerializer",
    "RevisionDetailSerializer",
    "RevisionSerializer",
    "RollbackPointSerializer",
    "RollbackResultSerializer",
    "conflicts_json",
]


#: Renders a datetime as the declared `DateTimeField`s do. Asking `self.fields` for theirs
#: makes DRF deep-copy every declared field of the serializer, nested serializers included,
#: once per serializer instance, that is once per request.
_render_datetime = serializers.DateTimeField().to_representation


# References and changes -------------------------------------------------------------------


class ReferenceSerializer(serializers.Serializer):
    """An actor or an object: `{type: "app_label.model", id: "<pk>", display: str(obj)}`."""

    type = serializers.CharField(help_text="`app_label.model` of the row.")
    id = serializers.CharField(help_text="The row's primary key, as text.")
    display = serializers.CharField(help_text="`str()` of the row, or a note that it is gone.")


class ChangeSerializer(serializers.Serializer):
    """One field's change in an object delta, by one actor."""

    field = serializers.CharField(help_text="The field's attname (`author_id` for a foreign key).")
    action = serializers.ChoiceField(choices=["Set", "Unset"])
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)
    actor = ReferenceSerializer(allow_null=True, help_text="null is the system.")
    description = serializers.CharField(allow_blank=True)


class _ValueChangeSerializer(serializers.Serializer):
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


def _references(context: Mapping[str, Any], deltas: Sequence[AbstractObjectDelta]) -> References:
    """The actors and contents of `deltas` and their field changes (read here, one query,
    unless loaded already), from the context's `references` if it has them."""
    load_field_changes(deltas)
    references = context.get("references")
    if references is None:
        references = References().want_deltas(deltas).load()
    return references


# Object deltas ------------------------------------------------------------------------------


class _ObjectDeltaListSerializer(serializers.ListSerializer):
    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        deltas = list(data.all() if isinstance(data, models.Manager) else data)
        references = _references(self.context, deltas)
        child = cast(ObjectDeltaSerializer, self.child)  # see ObjectDeltaSerializer.Meta
        return [child.render(delta, references) for delta in deltas]


class ObjectDeltaSerializer(serializers.Serializer):
    """One change to one row, with its attribute deltas."""

    # Lists read the field changes of all their deltas in one query
    # (`revy_api.field_changes`), then actors and contents in one batch per model. (The
    # docstring is the API document's.)

    id = serializers.IntegerField()
    revision = serializers.IntegerField(help_text="The id of the revision it belongs to.")
    action = serializers.ChoiceField(choices=Actions.choices)
    event_type = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    actor = ReferenceSerializer(allow_null=True, help_text="null is the system.")
    content = ReferenceSerializer()
    changes = ChangeSerializer(many=True)

    class Meta:
        list_serializer_class = _ObjectDeltaListSerializer

    def to_representation(self, delta: AbstractObjectDelta) -> dict[str, Any]:
        return self.render(delta, _references(self.context, [delta]))

    def render(self, delta: AbstractObjectDelta, references: References) -> dict[str, Any]:
        """Return the JSON of `delta`, its actors and content taken from `references`."""
        ref = references.ref
        return {
            "id": delta.pk,
            "revision": delta.revision_id,
            "action": delta.action,
            "event_type": delta.event_type,
            "description": delta.description,
            "created_at": _render_datetime(delta.created_at),
            "actor": ref(delta.actor_type_id, delta.actor_id),
            "content": ref(delta.content_type_id, delta.content_id),
            "changes": [
                {
                    "field": child.field_name,
                    "action": child.action,
                    "old": child.old_value,
                    "new": child.new_value,
                    "actor": ref(child.actor_type_id, child.actor_id),
                    "description": child.description,
                }
                for child in field_changes(delta)
            ],
        }


class ObjectDeltaPageSerializer(serializers.Serializer):
    """A page of object deltas (cursor pagination)."""

    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ObjectDeltaSerializer(many=True)


class ChangesQuerySerializer(serializers.Serializer):
    """The parameters of the changes feed."""

    after = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="The `cursor` of the previous answer; omitted: from the beginning of history.",
    )
    page_size = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Deltas per answer, from 1 to 500 (default 50; larger values are capped).",
    )


# One page object, although the feed is the view set's `list`: not an array of pages.
@extend_schema_serializer(many=False)
class ChangesPageSerializer(serializers.Serializer):
    """Object deltas in commit order, and where to resume."""

    results = ObjectDeltaSerializer(many=True)
    cursor = serializers.CharField(
        help_text="Send it as `after` to get what follows: the position after the last "
        "result, or the one you sent when there is nothing new yet. Opaque."
    )
    has_more = serializers.BooleanField(
        help_text="More deltas are ready now: ask again at once rather than waiting."
    )


# Revisions ----------------------------------------------------------------------------------


def _actor_list(pairs: Iterable[tuple[Any, Any]], references: References) -> list[Any]:
    return [references.ref(type_id, actor_id) for type_id, actor_id in sorted_actors(pairs)]


def _policy(context: Mapping[str, Any]) -> VisibilityPolicy:
    return context.get("policy") or get_policy()


def _user(context: Mapping[str, Any]) -> Any:
    request = context.get("request")
    return getattr(request, "user", None)


@extend_schema_field(
    {
        "type": "array",
        "items": {"allOf": [{"$ref": "#/components/schemas/Reference"}], "nullable": True},
    }
)
class _ActorListField(serializers.ListField):
    """Actors as references, null standing for the system (documented as such)."""

    child = ReferenceSerializer(allow_null=True)


class _RevisionListSerializer(serializers.ListSerializer):
    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        revisions = list(data.all() if isinstance(data, models.Manager) else data)
        summaries = _summaries(revisions, _policy(self.context), _user(self.context))
        child = cast(RevisionSerializer, self.child)  # see RevisionSerializer.Meta
        return [child.summary(revision, *summaries[revision.pk]) for revision in revisions]


def _summaries(
    revisions: Sequence[AbstractRevision], policy: VisibilityPolicy, user: Any
) -> dict[Any, tuple[list[Any], int]]:
    """Map each revision's pk to (actors, visible delta count) in two queries plus actors."""
    ids = [revision.pk for revision in revisions]
    actors, counts = revision_summaries(ids, policy, user)
    references = References()
    for pairs in actors.values():
        for type_id, actor_id in pairs:
            references.want(type_id, actor_id)
    references.load()
    return {pk: (_actor_list(actors[pk], references), counts[pk]) for pk in ids}


class RevisionSerializer(serializers.Serializer):
    """A revision in a list: who acted and how many (visible) deltas it holds."""

    id = serializers.IntegerField()
    description = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    actors = _ActorListField(help_text="Everyone who acted; null is the system.")
    delta_count = serializers.IntegerField(help_text="Object deltas you may see.")

    class Meta:
        list_serializer_class = _RevisionListSerializer

    def summary(self, revision: AbstractRevision, actors: list[Any], count: int) -> dict[str, Any]:
        return {
            "id": revision.pk,
            "description": revision.description,
            "created_at": _render_datetime(revision.created_at),
            "actors": actors,
            "delta_count": count,
        }

    def to_representation(self, revision: AbstractRevision) -> dict[str, Any]:
        summary = _summaries([revision], _policy(self.context), _user(self.context))
        return self.summary(revision, *summary[revision.pk])


@extend_schema_field(metadata_schema())
class _MetadataField(serializers.JSONField):
    """`Revision.metadata`, documented with the members the API records."""


class RevisionDetailSerializer(RevisionSerializer):
    """A revision with its metadata and the object deltas you may see, oldest first.

    `deltas` holds at most 500 of them; `deltas_next` is the URL of the next ones
    (`?deltas_after=<the last delta's id>`), null after the last. `actors` and
    `delta_count` describe the whole revision on every page, as in the list.
    """

    #: Object deltas per page of a revision (a bulk write's revision may hold millions).
    deltas_page_size = 500

    metadata = _MetadataField(
        help_text='Request facts: `{"user": {"type", "id"}, "request_id": "..."}`.'
    )
    deltas = ObjectDeltaSerializer(many=True)
    deltas_next = serializers.URLField(
        allow_null=True,
        help_text="The next deltas of the revision (`?deltas_after=`); null after the last.",
    )

    class Meta:
        list_serializer_class = serializers.ListSerializer

    def to_representation(self, revision: AbstractRevision) -> dict[str, Any]:
        policy, user = _policy(self.context), _user(self.context)
        visible = policy.filter_deltas(user, revision.object_deltas.all()).order_by("id")
        after = self.context.get("deltas_after")
        if after is not None:
            visible = visible.filter(pk__gt=after)
        size = self.deltas_page_size
        deltas = list(visible[: size + 1])
        next_url = None
        if len(deltas) > size:
            del deltas[size:]
            request = self.context["request"]
            query = request.query_params.copy()
            query["deltas_after"] = str(deltas[-1].pk)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        # The whole revision's actors and count (the list's rule and queries), and the page's
        # actors and contents, read in one batch of references.
        actors, counts = revision_summaries([revision.pk], policy, user)
        load_field_changes(deltas)
        references = References().want_deltas(deltas)
        for type_id, actor_id in actors[revision.pk]:
            references.want(type_id, actor_id)
        references.load()
        render = ObjectDeltaSerializer(context=self.context).render
        return {
            **self.summary(
                revision, _actor_list(actors[revision.pk], references), counts[revision.pk]
            ),
            "metadata": revision.metadata,
            "deltas": [render(delta, references) for delta in deltas],
            "deltas_next": next_url,
        }


# Requests and results -----------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.DATETIME)
class MomentField(serializers.Field):
    """An ISO 8601 datetime read as every API input is (`revy_api.inputs.moment`): naive
    values are UTC, values beyond what UTC holds are its first or last moment."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            return inputs.moment(data, self.field_name or "at")
        except BadRequest as error:
            raise serializers.ValidationError(error.detail) from None

    def to_representation(self, value: Any) -> Any:
        return value.isoformat()


class RollbackPointSerializer(serializers.Serializer):
    """The point to roll back to: exactly one of `revision`, `delta` and `at`."""

    revision = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="A revision id."
    )
    delta = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="An object delta id; a deletion means the state just before it.",
    )
    at = MomentField(required=False, help_text="A moment (ISO 8601).")
    cascade = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Re-creating a deleted row, re-create too the rows its deletion took along.",
    )


class RollbackResultSerializer(serializers.Serializer):
    """What a rollback did, or would do (`dry_run`)."""

    object = serializers.DictField(help_text="The row as it is (or would be) afterwards.")
    changes = serializers.DictField(
        child=_ValueChangeSerializer(), help_text="The fields that change: `{old, new}`."
    )
    created = serializers.BooleanField(help_text="The row was deleted and is re-created.")
    dry_run = serializers.BooleanField()
    revision = serializers.IntegerField(
        allow_null=True, help_text="The revision that recorded it; null when nothing was."
    )
    cascaded = ReferenceSerializer(
        many=True,
        help_text="The rows re-created with it (`cascade`), in the order they are created.",
    )


class RevertOptionsSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False, help_text="Revert even when later changes touched the same data."
    )


class RevertResultSerializer(serializers.Serializer):
    reverted = serializers.IntegerField(help_text="The revision that was undone.")
    revision = serializers.IntegerField(
        allow_null=True,
        help_text="The revision recording the undo; null when there was nothing to undo.",
    )


class DiffSerializer(serializers.Serializer):
    """The fields of one row that differ between two points in its history."""

    since = serializers.CharField(allow_null=True, help_text="As given; null: before history.")
    until = serializers.CharField(allow_null=True, help_text="As given; null: latest state.")
    changes = serializers.DictField(child=_ValueChangeSerializer())


# Problems -----------------------------------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.URLField(help_text="A stable URI naming the kind of error.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField(required=False, help_text="The request's path.")
    header = serializers.CharField(required=False, help_text="The request header at fault.")
    field = serializers.CharField(required=False, help_text="The parameter at fault.")
    # DRF's metaclass takes declared fields out of the class body, so this does not replace
    # Serializer.errors (nor `fields` below Serializer.fields); django-stubs cannot know.
    errors = serializers.JSONField(  # type: ignore[assignment]
        required=False, help_text="What is wrong with each input."
    )


class ConflictSerializer(serializers.Serializer):
    """A later change that touched what a revert would undo."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["object_delta", "attribute_delta"])
    revision = serializers.IntegerField()
    action = serializers.CharField()
    field = serializers.CharField(allow_null=True)
    content = ReferenceSerializer()
    actor = ReferenceSerializer(allow_null=True)
    created_at = serializers.DateTimeField()


class ConflictProblemSerializer(ProblemSerializer):
    """A 409: a revert over later changes (`conflicts`), or a restore the database refuses."""

    conflicts = ConflictSerializer(
        many=True,
        required=False,
        help_text="`revision-conflict`: the conflicting changes you may see.",
    )
    hidden_conflicts = serializers.IntegerField(
        required=False,
        help_text="`revision-conflict`: how many other conflicting changes there are, of rows "
        "you may not see.",
    )
    reason = serializers.ChoiceField(
        choices=["unique", "missing-related", "concurrent", "constraint"],
        required=False,
        help_text="`restore-conflict`: why the database refuses the restored state.",
    )
    fields = serializers.ListField(  # type: ignore[assignment]  # see `errors` above
        child=serializers.CharField(),
        required=False,
        help_text="`restore-conflict`: the columns at fault, when known.",
    )


def conflicts_json(
    conflicts: Sequence[AbstractObjectDelta | AbstractAttributeDelta],
) -> list[dict[str, Any]]:
    """Render the deltas of a `RevisionConflict` for problem details."""
    references = References()
    for delta in conflicts:
        references.want(delta.content_type_id, delta.content_id)
        references.want(delta.actor_type_id, delta.actor_id)
    references.load()
    created_at = serializers.DateTimeField()
    return [
        {
            "id": delta.pk,
            "kind": "attribute_delta" if hasattr(delta, "field_name") else "object_delta",
            "revision": delta.revision_id,
            "action": delta.action,
            "field": getattr(delta, "field_name", None),
            "content": references.ref(delta.content_type_id, delta.content_id),
            "actor": references.ref(delta.actor_type_id, delta.actor_id),
            "created_at": created_at.to_representation(delta.created_at),
        }
        for delta in conflicts
    ]


# Deleted objects ----------------------------------------------------------------------------


class _DeletedObjectListSerializer(serializers.ListSerializer):
    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        deletions = list(data.all() if isinstance(data, models.Manager) else data)
        references = References()
        for deletion in deletions:
            references.want(deletion.actor_type_id, deletion.actor_id)
        references.load()
        child = cast(DeletedObjectSerializer, self.child)  # see DeletedObjectSerializer.Meta
        return [child.render(deletion, references) for deletion in deletions]


class DeletedObjectSerializer(serializers.Serializer):
    """A row deleted now: its last state, when, by whom and why (its `Delete` delta).

    Serializes the deltas of `revy.contrib.django.history.deleted()` (annotated with
    `snapshot`); lists load the actors in one batch.
    """

    delta = serializers.IntegerField(help_text="The id of the Delete object delta.")
    revision = serializers.IntegerField(help_text="The id of the deleting revision.")
    deleted_at = serializers.DateTimeField()
    actor = ReferenceSerializer(allow_null=True, help_text="null is the system (a cascade).")
    description = serializers.CharField(allow_blank=True)
    content = ReferenceSerializer(help_text="The deleted row; `display` is its last state's.")
    state = serializers.DictField(help_text="Its last recorded state, by attname.")

    class Meta:
        list_serializer_class = _DeletedObjectListSerializer

    def to_representation(self, deletion: DeletionDelta) -> dict[str, Any]:
        references = References()
        references.want(deletion.actor_type_id, deletion.actor_id)
        return self.render(deletion, references.load())

    def render(self, deletion: DeletionDelta, references: References) -> dict[str, Any]:
        """Return the JSON of one deletion, its actor taken from `references`."""
        content = references.ref(deletion.content_type_id, deletion.content_id) or {}
        return {
            "delta": deletion.pk,
            "revision": deletion.revision_id,
            "deleted_at": _render_datetime(deletion.created_at),
            "actor": references.ref(deletion.actor_type_id, deletion.actor_id),
            "description": deletion.description,
            "content": {**content, "display": str(deletion.snapshot)},
            "state": deletion.data,
        }
