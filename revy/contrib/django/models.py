"""The history tables: revisions, object deltas, attribute deltas and aggregates.

All three main models are swappable (`REVY_REVISION_MODEL`, `REVY_OBJECT_DELTA_MODEL`,
`REVY_ATTRIBUTE_DELTA_MODEL`); subclass the abstract bases to add fields. The tables are flat
and written in batches by `revy.contrib.django.recorder`; they are meant to be read, never
edited.

Only the keys between history rows are constraints in the database (an object delta's
revision, an attribute delta's parent, an aggregate's delta). The others would only repeat, at
every COMMIT, what the writers guarantee: an attribute delta's revision and content are its
parent's, and content types come from `ContentType.objects.get_for_model`. A constraint on
`django_content_type` would also lock the model's row there (`FOR KEY SHARE`) in every
transaction writing history, making concurrent writers of one model share a multixact.
Deleting a content type through the ORM is still refused while history refers to it
(`KEEP_HISTORY`).

This module also exports the deletion handlers (`CASCADE`, `SET`, `SET_NULL`, `SET_DEFAULT`)
and the `ObjectSnapshot` expression, so that the source README's imports work.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from revy.contrib.django import settings as revy_settings
from revy.contrib.django.deletion import CASCADE, SET, SET_DEFAULT, SET_NULL
from revy.contrib.django.encoding import JSONEncoder
from revy.contrib.django.registry import content_id
from revy.contrib.django.snapshots import ObjectSnapshot

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.deletion import Collector
    from django.db.models.fields.related_descriptors import RelatedManager
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType

__all__ = [
    "CASCADE",
    "KEEP_HISTORY",
    "SET",
    "SET_DEFAULT",
    "SET_NULL",
    "AbstractAttributeDelta",
    "AbstractObjectDelta",
    "AbstractRevision",
    "Actions",
    "AttributeDelta",
    "CurrentTransactionId",
    "HistoryProtectedError",
    "ObjectDelta",
    "ObjectDeltaAggregate",
    "ObjectDeltaQuerySet",
    "ObjectSnapshot",
    "Revision",
]


def _actors_of(rows: Iterable[tuple[int | None, Any]], using: str) -> list[Any]:
    """Resolve (actor_type_id, actor_id) pairs to instances, one query per actor model."""
    by_type: dict[int, list[str]] = {}
    system = False
    for type_id, object_id in rows:
        if type_id is None:
            system = True
        else:
            by_type.setdefault(type_id, []).append(object_id)
    actors: list[Any] = [None] if system else []
    for type_id, ids in by_type.items():
        model = ContentType.objects.db_manager(using).get_for_id(type_id).model_class()
        if model is None:
            continue
        actors.extend(model._base_manager.using(using).filter(pk__in=ids))
    return actors


class HistoryProtectedError(IntegrityError):
    """A content type cannot be deleted while revy's history refers to it.

    History outlives the models it records: a model dropped from the code keeps its history
    (its snapshots and deletions stay readable). `manage.py revy_prune --model app.model`
    deletes that history first, when it really is to go.
    """


def KEEP_HISTORY(
    collector: Collector,
    field: models.ForeignKey[Any, Any],
    sub_objs: models.QuerySet[Any],
    using: str,
) -> None:
    """`on_delete` of the history tables' content type keys: refuse, saying why and what to do.

    An IntegrityError rather than Django's ProtectedError, whose collector would replace this
    message by a generic one (and load every referring delta to list them).
    """
    count = sub_objs.count() if hasattr(sub_objs, "count") else len(sub_objs)
    if not count:
        return
    # The collector keeps the instances it deletes by their model: these are content types.
    deleted = cast("Iterable[ContentType]", collector.data.get(ContentType, ()))
    content_types = {obj.pk: obj for obj in deleted}
    names = ", ".join(f"{ct.app_label}.{ct.model}" for ct in content_types.values()) or "it"
    role = "as their actor" if field.name == "actor_type" else "as what they changed"
    raise HistoryProtectedError(
        f"Cannot delete the content type {names}: {count} {field.model._meta.verbose_name_plural} "
        f"of revy's history refer to it {role}. revy keeps the history of deleted models. "
        f"To delete that history first, run `manage.py revy_prune --model {names}`; then "
        "delete the content type (or run `manage.py remove_stale_contenttypes`) again."
    )


# Django loads the referring rows before calling an on_delete handler unless it is lazy: a
# query set is enough to count them.
KEEP_HISTORY.lazy_sub_objs = True  # type: ignore[attr-defined]  # as Django's SET_NULL's


class CurrentTransactionId(models.Func):
    """The id of the transaction writing a row: the database default of a delta's
    `transaction_id`, which orders the changes feed (`revy.contrib.django.feed`).

    PostgreSQL: `pg_current_xact_id()` (64 bits, never wraps around), computed by the server
    inside the INSERT itself, so recording it costs no round trip. Other databases have one
    writer at a time, so ids already follow commit order: 0 there.
    """

    output_field = models.BigIntegerField()
    arity = 0

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> _AsSqlType:
        return "0", ()

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> _AsSqlType:
        # xid8 has no cast to bigint; its text form is the decimal number.
        return "(pg_current_xact_id()::text::bigint)", ()


class AbstractRevision(models.Model):
    """A set of changes made together, by one or more actors, for one reason."""

    id = models.BigAutoField(primary_key=True)
    description = models.TextField(_("description"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True, encoder=JSONEncoder)

    if TYPE_CHECKING:
        # The reverse relations of the swappable delta models' `revision` keys.
        object_deltas: RelatedManager[AbstractObjectDelta]
        attribute_deltas: RelatedManager[AbstractAttributeDelta]

    class Meta:
        abstract = True
        ordering = ("-id",)
        verbose_name = _("revision")
        verbose_name_plural = _("revisions")

    def __str__(self) -> str:
        return (
            f"Revision {self.pk}: {self.description}" if self.description else f"Revision {self.pk}"
        )

    def get_object_deltas(self) -> models.QuerySet:
        """Return this revision's object deltas, oldest first."""
        return self.object_deltas.order_by("id")

    def get_attribute_deltas(self) -> models.QuerySet:
        """Return this revision's attribute deltas, oldest first."""
        return self.attribute_deltas.order_by("id")

    def get_actors(self) -> list[Any]:
        """Return every actor of this revision; None stands for the system.

        Values Django assigned by itself (auto primary keys, `auto_now`) do not make the
        system an actor: nobody assigned them.
        """
        pairs = set(self.object_deltas.values_list("actor_type_id", "actor_id"))
        pairs.update(
            self.attribute_deltas.filter(automatic=False).values_list("actor_type_id", "actor_id")
        )
        return _actors_of(
            sorted(pairs, key=lambda pair: (pair[0] or 0, pair[1] or "")),
            self._state.db or "default",
        )


class Actions(models.TextChoices):
    CREATE = "Create", _("Create")
    UPDATE = "Update", _("Update")
    DELETE = "Delete", _("Delete")
    EVENT = "Event", _("Event")
    BASELINE = "Baseline", _("Baseline")


class ObjectDeltaQuerySet(models.QuerySet):
    def for_object(self, obj: models.Model) -> ObjectDeltaQuerySet:
        """Deltas whose content is `obj` (in this queryset's database)."""
        content_type = ContentType.objects.db_manager(self.db).get_for_model(obj)
        return self.filter(content_type=content_type, content_id=content_id(type(obj), obj.pk))

    def for_aggregate(self, obj: models.Model) -> ObjectDeltaQuerySet:
        """Deltas that affected `obj` directly or through its aggregates, in one query."""
        content_type = ContentType.objects.db_manager(self.db).get_for_model(obj)
        row = content_id(type(obj), obj.pk)
        return self.filter(
            models.Q(content_type=content_type, content_id=row)
            | models.Q(
                pk__in=ObjectDeltaAggregate.objects.using(self.db)
                .filter(content_type=content_type, content_id=row)
                .values("delta_id")
            )
        )


class AbstractObjectDelta(models.Model):
    """One change to one row: its creation, an update, its deletion or a custom event.

    `data` holds the row's full state after the change (before it, for a deletion), so any
    past state is one indexed lookup away; for a custom event it holds the event's data.
    """

    ACTION_CREATE = Actions.CREATE.value
    ACTION_UPDATE = Actions.UPDATE.value
    ACTION_DELETE = Actions.DELETE.value
    ACTION_EVENT = Actions.EVENT.value
    ACTION_BASELINE = Actions.BASELINE.value
    ACTION_CHOICES = Actions.choices
    # Actions whose `data` is the row's state.
    STATE_ACTIONS = (ACTION_CREATE, ACTION_UPDATE, ACTION_DELETE, ACTION_BASELINE)

    id = models.BigAutoField(primary_key=True)
    revision = models.ForeignKey(
        revy_settings.get("REVY_REVISION_MODEL"),
        on_delete=models.CASCADE,
        related_name="object_deltas",
        verbose_name=_("revision"),
    )
    # Not indexed alone: the (actor_type, actor_id) index serves lookups by type.
    actor_type = models.ForeignKey(
        ContentType,
        on_delete=KEEP_HISTORY,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,  # see the module's docstring
    )
    actor_id = models.CharField(max_length=255, null=True, blank=True)
    actor = GenericForeignKey("actor_type", "actor_id")
    action = models.CharField(_("action"), max_length=16, choices=Actions.choices)
    event_type = models.CharField(_("event type"), max_length=255)
    description = models.TextField(_("description"), blank=True, default="")
    # Not indexed alone: the (content_type, content_id, ...) index serves lookups by type.
    content_type = models.ForeignKey(
        ContentType,
        on_delete=KEEP_HISTORY,
        related_name="+",
        db_index=False,
        db_constraint=False,  # see the module's docstring
    )
    content_id = models.CharField(max_length=255)
    content = GenericForeignKey("content_type", "content_id")
    data = models.JSONField(_("data"), null=True, blank=True, encoder=JSONEncoder)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # The writing transaction (PostgreSQL; 0 elsewhere), filled in by the database: with the
    # id, the order of the changes feed, which never skips a delta that commits late.
    transaction_id = models.BigIntegerField(
        _("transaction id"), db_default=CurrentTransactionId(), editable=False
    )

    objects = ObjectDeltaQuerySet.as_manager()

    if TYPE_CHECKING:
        # The reverse relation of the swappable attribute delta model's `parent` key.
        children: RelatedManager[AbstractAttributeDelta]

    class Meta:
        abstract = True
        ordering = ("-id",)
        verbose_name = _("object delta")
        verbose_name_plural = _("object deltas")

    def __str__(self) -> str:
        return f"{self.action} {self.event_type} #{self.content_id}"


class AbstractAttributeDelta(models.Model):
    """One field's change within an object delta, by one actor."""

    ACTION_SET = "Set"
    ACTION_UNSET = "Unset"
    ACTION_CHOICES = ((ACTION_SET, _("Set")), (ACTION_UNSET, _("Unset")))

    id = models.BigAutoField(primary_key=True)
    # Always the parent's revision: the parent's constraint covers it.
    revision = models.ForeignKey(
        revy_settings.get("REVY_REVISION_MODEL"),
        on_delete=models.CASCADE,
        related_name="attribute_deltas",
        verbose_name=_("revision"),
        db_constraint=False,
    )
    parent = models.ForeignKey(
        revy_settings.get("REVY_OBJECT_DELTA_MODEL"),
        on_delete=models.CASCADE,
        related_name="children",
        verbose_name=_("object delta"),
    )
    # Not indexed alone: the (actor_type, actor_id) index serves lookups by type.
    actor_type = models.ForeignKey(
        ContentType,
        on_delete=KEEP_HISTORY,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,  # see the module's docstring
    )
    actor_id = models.CharField(max_length=255, null=True, blank=True)
    actor = GenericForeignKey("actor_type", "actor_id")
    action = models.CharField(_("action"), max_length=8, choices=ACTION_CHOICES)
    description = models.TextField(_("description"), blank=True, default="")
    # Not indexed alone: the (content_type, content_id, ...) index serves lookups by type.
    content_type = models.ForeignKey(
        ContentType,
        on_delete=KEEP_HISTORY,
        related_name="+",
        db_index=False,
        db_constraint=False,  # see the module's docstring
    )
    content_id = models.CharField(max_length=255)
    content = GenericForeignKey("content_type", "content_id")
    field_name = models.CharField(_("field name"), max_length=255)
    old_value = models.JSONField(_("old value"), null=True, blank=True, encoder=JSONEncoder)
    new_value = models.JSONField(_("new value"), null=True, blank=True, encoder=JSONEncoder)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # A value Django assigned by itself during the save (an auto primary key, `auto_now`, a
    # database default): the system's, but not an action of anyone's (see `get_actors`).
    automatic = models.BooleanField(_("automatic"), default=False)

    class Meta:
        abstract = True
        ordering = ("id",)
        verbose_name = _("attribute delta")
        verbose_name_plural = _("attribute deltas")

    def __str__(self) -> str:
        return f"{self.action} {self.field_name}"


revy_settings.HISTORY_BASES.update(
    REVY_REVISION_MODEL=AbstractRevision,
    REVY_OBJECT_DELTA_MODEL=AbstractObjectDelta,
    REVY_ATTRIBUTE_DELTA_MODEL=AbstractAttributeDelta,
)


class Revision(AbstractRevision):
    class Meta(AbstractRevision.Meta):
        swappable = "REVY_REVISION_MODEL"


class ObjectDelta(AbstractObjectDelta):
    class Meta(AbstractObjectDelta.Meta):
        swappable = "REVY_OBJECT_DELTA_MODEL"
        indexes = [
            # history_of, snapshots and rollback: one row's deltas in order.
            models.Index(
                fields=["content_type", "content_id", "id"], name="revy_delta_content_idx"
            ),
            # The actor filter (`export.actor_condition`) and erasure: an actor's deltas, by id.
            models.Index(fields=["actor_type", "actor_id", "id"], name="revy_delta_actor_id_idx"),
            models.Index(fields=["event_type"], name="revy_delta_event_type_idx"),
            # since/until (`export.window_condition`, `revision_window_conditions`: the
            # window's ids, or its revisions, from the index alone), pruning by age.
            models.Index(fields=["created_at", "id", "revision"], name="revy_delta_window_idx"),
            # The changes feed: deltas in (transaction, id) order from a cursor.
            models.Index(fields=["transaction_id", "id"], name="revy_delta_feed_idx"),
        ]


class AttributeDelta(AbstractAttributeDelta):
    class Meta(AbstractAttributeDelta.Meta):
        swappable = "REVY_ATTRIBUTE_DELTA_MODEL"
        # A row's field changes are found through their parents (`revy_delta_content_idx`,
        # then `parent`): an index of their own on the content was an eighth of the history's
        # size and a sixth of the index entries each field change writes.
        indexes = [
            # The actor filter (`export.actor_condition`: the parents of an actor's own field
            # changes, read from the index alone) and erasure.
            models.Index(
                fields=["actor_type", "actor_id", "automatic", "parent"],
                name="revy_attr_actor_parent_idx",
            ),
        ]


class ObjectDeltaAggregate(models.Model):
    """An object indirectly affected by a delta (see `get_event_aggregates`)."""

    id = models.BigAutoField(primary_key=True)
    delta = models.ForeignKey(
        revy_settings.get("REVY_OBJECT_DELTA_MODEL"),
        on_delete=models.CASCADE,
        related_name="aggregates",
    )
    # Not indexed alone: the (content_type, content_id, ...) index serves lookups by type.
    content_type = models.ForeignKey(
        ContentType,
        on_delete=KEEP_HISTORY,
        related_name="+",
        db_index=False,
        db_constraint=False,  # see the module's docstring
    )
    content_id = models.CharField(max_length=255)
    content = GenericForeignKey("content_type", "content_id")

    class Meta:
        verbose_name = _("object delta aggregate")
        verbose_name_plural = _("object delta aggregates")
        indexes = [
            models.Index(fields=["content_type", "content_id"], name="revy_aggregate_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.content_type_id}:{self.content_id}"
