# Trigram indexes for the APIs' `search` filter (revy.contrib.django.export.search_condition),
# on PostgreSQL only, and only where the pg_trgm extension is there or can be created.
#
# The indexes are on UPPER(description), the expression Django's `icontains` compares, of the
# revisions and the object deltas (not of the attribute deltas, the largest table, which
# search does not read): about 7 MB at a million object deltas. Where pg_trgm cannot be
# created (not installed, or a role that may not create it), the migration creates nothing
# and logs why: search then reads the descriptions in full, as before. Running `CREATE
# EXTENSION pg_trgm` later and migrating revy back to 0005 and forward again adds them.

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger("revy")

EXTENSION = "pg_trgm"
INDEXES = (("Revision", "revy_revision_search_idx"), ("ObjectDelta", "revy_delta_search_idx"))


def _attempt(schema_editor, sql, what):
    """Run `sql` in a savepoint; on refusal log why and return False (the migration goes on)."""
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute(sql)
    except DatabaseError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        logger.warning(
            "revy: %s could not be created (%s). Search still works, reading the descriptions "
            "in full.",
            what,
            reason,
        )
        return False
    return True


def enable_extension(schema_editor, name=EXTENSION):
    """Return True once the extension is installed; False (and a log line) when it cannot be."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = %s", [name])
        if cursor.fetchone() is not None:
            return True
    sql = f"CREATE EXTENSION IF NOT EXISTS {schema_editor.quote_name(name)}"
    return _attempt(schema_editor, sql, f"no trigram index for search: the {name} extension")


def _models(apps, schema_editor):
    """revy's models that live in this database (not swapped out, not routed elsewhere)."""
    operation = migrations.operations.base.Operation()
    for model_name, index in INDEXES:
        model = apps.get_model("revy", model_name)
        if operation.allow_migrate_model(schema_editor.connection.alias, model):
            yield model, index


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    found = list(_models(apps, schema_editor))
    if not found or not enable_extension(schema_editor):
        return
    quote = schema_editor.quote_name
    for model, index in found:
        column = quote(model._meta.get_field("description").column)
        # Refused too where the extension lives in a schema outside the search path (its
        # operator class is not found).
        _attempt(
            schema_editor,
            f"CREATE INDEX IF NOT EXISTS {quote(index)} ON {quote(model._meta.db_table)} "
            f"USING gin (UPPER({column}) gin_trgm_ops)",
            f"the search index {index}",
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, index in _models(apps, schema_editor):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index)}")


class Migration(migrations.Migration):
    dependencies = [
        ("revy", "0005_api_indexes"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
