"""Rebuild model instances from history: the `ObjectSnapshot` expression.

Every state-bearing object delta (create, update, baseline, delete) stores the row's full
state, so the state at any delta is a single indexed lookup. `ObjectSnapshot(Model)` annotates
an ObjectDelta queryset with the instance as it was at each delta (for a deletion, just before
it); a custom event delta gets the state of the latest state-bearing delta before it (None when
that was the row's deletion, or when there is none).
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

import django
from django.db import models
from django.db.models import Expression

from revy.contrib.django.encoding import decode

__all__ = ["STATE_ACTIONS", "ObjectSnapshot", "SnapshotField", "build_instance"]

STATE_ACTIONS = ("Create", "Update", "Delete", "Baseline")

M = TypeVar("M", bound=models.Model)


@overload
def build_instance(model: type[M], state: dict[str, Any]) -> M: ...
@overload
def build_instance(model: type[M], state: None) -> None: ...
@overload
def build_instance(model: type[M], state: dict[str, Any] | None) -> M | None: ...
def build_instance(model: type[M], state: dict[str, Any] | None) -> M | None:
    """Return an unsaved instance of `model` holding `state` (a delta's `data`).

    Fields the model no longer has are skipped; fields added since, and the masked and
    excluded fields whose values revy never stores, get their default. Saving the instance
    re-creates the row with its primary key.
    """
    if state is None:
        return None
    values = []
    for field in model._meta.concrete_fields:
        if field.attname in state:
            values.append(decode(field, state[field.attname]))
        else:
            values.append(field.get_default())
    return model(*values)


class SnapshotField(models.JSONField):
    """Output field of `ObjectSnapshot`: turns the stored state into a model instance."""

    def __init__(self, model: type[models.Model], *args: Any, **kwargs: Any) -> None:
        self.snapshot_model = model
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        state = super().from_db_value(value, expression, connection)
        return build_instance(self.snapshot_model, state)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        return name, path, [self.snapshot_model, *args], kwargs


class ObjectSnapshot(Expression):
    """Annotate object deltas with the instance of `model` as it was at each delta.

    One SQL query whatever the history length::

        ObjectDelta.objects.filter(...).annotate(snapshot=ObjectSnapshot(User))

    The instance is unsaved; `.save()` re-creates the row with its primary key. Deltas of
    other models (in a history with aggregates, say) are annotated with None.
    """

    # Written as SQL rather than Case/When/Subquery: the state is one index seek, and
    # compiling the ORM version cost several times more than running it.
    contains_aggregate = False

    def __init__(self, model: type[models.Model]) -> None:
        self.snapshot_model = model
        self.alias: str | None = None
        super().__init__(output_field=SnapshotField(model))

    def resolve_expression(
        self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False
    ):
        resolved = self.copy()
        resolved.alias = query.get_initial_alias() if query is not None else None
        return resolved

    def as_sql(self, compiler, connection):
        from django.contrib.contenttypes.models import ContentType

        from revy.contrib.django.utils import get_object_delta_model

        opts = get_object_delta_model()._meta
        quote = connection.ops.quote_name
        # Django 6.1 quotes table aliases too and deprecates quote_name_unless_alias().
        quote_alias = (
            compiler.quote_name if django.VERSION >= (6, 1) else compiler.quote_name_unless_alias
        )
        outer = quote_alias(self.alias or opts.db_table)
        column = {field.attname: quote(field.column) for field in opts.concrete_fields}
        pk = quote(opts.pk.column)
        table = quote(opts.db_table)
        # Deltas are recorded under the concrete model's content type (proxies included).
        content_type_id = (
            ContentType.objects.db_manager(compiler.using).get_for_model(self.snapshot_model).pk
        )
        states = ", ".join(["%s"] * len(STATE_ACTIONS))
        sql = (
            f"CASE WHEN {outer}.{column['content_type_id']} = %s THEN ("
            # The latest state-bearing delta at or before this one; a deletion stands for the
            # state just before it only at the deletion itself (after it, the row is gone).
            f"SELECT CASE WHEN u.{column['action']} = %s AND u.{pk} <> {outer}.{pk} "
            f"THEN NULL ELSE u.{column['data']} END FROM {table} u "
            f"WHERE u.{column['content_type_id']} = {outer}.{column['content_type_id']} "
            f"AND u.{column['content_id']} = {outer}.{column['content_id']} "
            f"AND u.{column['action']} IN ({states}) AND u.{pk} <= {outer}.{pk} "
            f"ORDER BY u.{pk} DESC LIMIT 1) END"
        )
        return sql, [content_type_id, "Delete", *STATE_ACTIONS]

    def get_group_by_cols(self):
        return [self]
