# The changes feed's order: the transaction that wrote each object delta.

import revy.contrib.django.models
from django.db import migrations, models

FIELD = "transaction_id"


def _field():
    field = models.BigIntegerField(
        db_default=revy.contrib.django.models.CurrentTransactionId(),
        editable=False,
        verbose_name="transaction id",
    )
    field.set_attributes_from_name(FIELD)
    return field


def _model(apps, schema_editor):
    """revy's ObjectDelta, unless swapped out (REVY_OBJECT_DELTA_MODEL) or routed elsewhere."""
    model = apps.get_model("revy", "ObjectDelta")
    operation = migrations.operations.base.Operation()
    if not operation.allow_migrate_model(schema_editor.connection.alias, model):
        return None
    return model


def add_column(apps, schema_editor):
    model = _model(apps, schema_editor)
    if model is None:
        return
    if schema_editor.connection.vendor == "postgresql":
        # Existing history gets 0 (it comes first in the feed): a constant default is stored
        # in the catalogue, so the column is added without rewriting a large table. New rows
        # then get their transaction's id from the database default.
        table = schema_editor.quote_name(model._meta.db_table)
        column = schema_editor.quote_name(FIELD)
        schema_editor.execute(f"ALTER TABLE {table} ADD COLUMN {column} bigint DEFAULT 0 NOT NULL")
        schema_editor.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} "
            "SET DEFAULT (pg_current_xact_id()::text::bigint)"
        )
    else:
        schema_editor.add_field(model, _field())


def remove_column(apps, schema_editor):
    model = _model(apps, schema_editor)
    if model is not None:
        schema_editor.remove_field(model, _field())


class Migration(migrations.Migration):
    dependencies = [
        ("revy", "0003_keep_history"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(model_name="objectdelta", name=FIELD, field=_field()),
            ],
            database_operations=[migrations.RunPython(add_column, remove_column)],
        ),
        migrations.AddIndex(
            model_name="objectdelta",
            index=models.Index(fields=["transaction_id", "id"], name="revy_delta_feed_idx"),
        ),
    ]
