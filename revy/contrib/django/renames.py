"""History survives field renames.

History stores values under the field's attname: in attribute deltas' `field_name` and as keys
of the states in object deltas' `data`. After a `RenameField` migration those would name a
field the model no longer has, and snapshots, diffs, rollbacks and reverts would give the
renamed field its default. So revy rewrites the recorded history of a renamed field when the
migration runs: after `migrate` (the `post_migrate` signal), every `RenameField` operation of
the plan that was applied (or unapplied, for a backwards migration) renames the field in the
history tables of that database too.

`rename_field_in_history()` does the same by hand, for renames migrate cannot see (a field
renamed in `SeparateDatabaseAndState`, or history copied from elsewhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.contrib.contenttypes.models import ContentType
from django.db import connections, models, router, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RenameField

from revy.contrib.django._meta import concrete_field, concrete_model
from revy.contrib.django.snapshots import STATE_ACTIONS
from revy.contrib.django.utils import get_attribute_delta_model, get_object_delta_model

if TYPE_CHECKING:
    from django.db.migrations import Migration

    from revy.contrib.django.models import AbstractObjectDelta

__all__ = [
    "on_post_migrate",
    "rename_field_in_history",
    "renamed_fields",
]

_BATCH = 1000


def rename_field_in_history(
    model: type[models.Model] | str, old_name: str, new_name: str, using: str | None = None
) -> int:
    """Make the history recorded under field `old_name` of `model` read under `new_name`.

    `model` is a model class or an `"app_label.ModelName"` label whose current field is
    `new_name` (for a foreign key, its `_id` attname follows). Returns the number of history
    rows rewritten. Idempotent: history already under the new name is left as it is.
    """
    if isinstance(model, str):
        model = global_apps.get_model(model)
    field = concrete_field(model, new_name)
    suffix = field.attname[len(field.name) :] if field.attname.startswith(field.name) else ""
    opts = concrete_model(model)._meta
    using = using or router.db_for_write(get_object_delta_model())
    return _rename(using, opts.app_label, str(opts.model_name), old_name + suffix, field.attname)


def _rename(using: str, app_label: str, model_name: str, old: str, new: str) -> int:
    """Rename the attname `old` to `new` in the history of one model, in one database."""
    if old == new:
        return 0
    content_type = (
        ContentType.objects.db_manager(using)
        .filter(app_label=app_label, model=model_name)
        .values_list("pk", flat=True)
        .first()
    )
    if content_type is None:
        return 0  # never recorded: nothing to rename
    deltas = get_object_delta_model()._base_manager.using(using)
    attributes = get_attribute_delta_model()._base_manager.using(using)
    with transaction.atomic(using=using):
        renamed = attributes.filter(content_type_id=content_type, field_name=old).update(
            field_name=new
        )
        states = deltas.filter(
            content_type_id=content_type, action__in=STATE_ACTIONS, data__has_key=old
        ).only("pk", "data")
        batch: list[AbstractObjectDelta] = []
        for delta in states.iterator(chunk_size=_BATCH):
            # Same key order, the value under its new name (a JSON object: it has the key).
            state = cast("dict[str, Any]", delta.data)
            delta.data = {(new if key == old else key): value for key, value in state.items()}
            batch.append(delta)
            if len(batch) == _BATCH:
                renamed += _save_states(deltas, batch)
                batch = []
        renamed += _save_states(deltas, batch)
    return renamed


def _save_states(
    deltas: models.QuerySet[AbstractObjectDelta], batch: list[AbstractObjectDelta]
) -> int:
    if batch:
        deltas.bulk_update(batch, ["data"])
    return len(batch)


def renamed_fields(
    plan: list[tuple[Migration, bool]] | None, using: str
) -> list[tuple[str, str, str, str]]:
    """Return (app label, model name, old attname, new attname) for every field a migration
    plan renames, in the order the plan applies them (reversed for backwards migrations)."""
    if not plan or not any(
        isinstance(operation, RenameField)
        for migration, _ in plan
        for operation in migration.operations
    ):
        return []
    loader = MigrationLoader(connections[using], ignore_no_migrations=True)
    renames = []
    for migration, backwards in plan:
        if not any(isinstance(operation, RenameField) for operation in migration.operations):
            continue
        state = loader.project_state((migration.app_label, migration.name), at_end=False)
        found = []
        for operation in migration.operations:
            if isinstance(operation, RenameField):
                model = state.apps.get_model(migration.app_label, operation.model_name)
                field = model._meta.get_field(operation.old_name)
                suffix = field.attname[len(field.name) :]
                found.append(
                    (
                        migration.app_label,
                        model._meta.model_name,
                        operation.old_name + suffix,
                        operation.new_name + suffix,
                    )
                )
            operation.state_forwards(migration.app_label, state)
        if backwards:
            found = [(app, name, new, old) for app, name, old, new in reversed(found)]
        renames.extend(found)
    return renames


def on_post_migrate(
    app_config: AppConfig,
    using: str = "default",
    plan: list[tuple[Migration, bool]] | None = None,
    **kwargs: Any,
) -> None:
    """Rename the fields a migrate run renamed in the history tables (once per run)."""
    if app_config.label != "revy" or not plan:
        return
    if not router.allow_migrate_model(using, get_object_delta_model()):
        return
    for app_label, model_name, old, new in renamed_fields(plan, using):
        _rename(using, app_label, model_name, old, new)
