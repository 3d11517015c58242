"""Content types of tracked models: created ahead of any write, cached per database."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save

from revy import Context
from revy.contrib.django import registry
from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)
from tests.factories import make_book, object_deltas
from tests.testapp.models import Book, Tag

pytestmark = pytest.mark.django_db(transaction=True)

BookTags = Book.tags.through


def test_migrate_creates_the_content_types_of_automatic_through_models():
    ContentType.objects.filter(app_label="testapp", model=BookTags._meta.model_name).delete()
    call_command("migrate", verbosity=0)
    assert ContentType.objects.filter(app_label="testapp", model=BookTags._meta.model_name).exists()


def test_no_content_type_is_saved_inside_a_users_transaction_when_they_exist():
    book = make_book()
    tag = Tag.objects.create(name="t")
    saved = []

    def receiver(sender, **kwargs):
        saved.append(sender)

    pre_save.connect(receiver, sender=ContentType)
    post_save.connect(receiver, sender=ContentType)
    try:
        with Context(), transaction.atomic():
            book.tags.add(tag)
    finally:
        pre_save.disconnect(receiver, sender=ContentType)
        post_save.disconnect(receiver, sender=ContentType)
    assert saved == []


def test_a_content_type_created_in_a_rolled_back_transaction_is_not_kept_in_the_cache():
    """The row disappears with the rollback; later writes must not use its id."""
    label = dict(app_label="testapp", model=BookTags._meta.model_name)
    ContentType.objects.filter(**label).delete()
    ContentType.objects.clear_cache()
    registry.clear()
    book = make_book()
    tag = Tag.objects.create(name="t")

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), Context(), transaction.atomic():
        book.tags.add(tag)
        raise Rollback
    assert not ContentType.objects.filter(**label).exists()
    with Context():
        book.tags.add(tag)  # would record the id of a content type that is gone
    content_type = ContentType.objects.get(**label)
    assert [delta.content_type_id for delta in object_deltas(BookTags)] == [content_type.pk]


def _foreign_key_constraints(model) -> dict[str, str]:
    """The model's foreign key constraints in the database: column -> referenced table."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {
        columns[0]: info["foreign_key"][0]
        for info in constraints.values()
        if info["foreign_key"] and (columns := info["columns"])
    }


def test_only_the_keys_between_history_rows_are_constraints_checked_at_commit():
    """Content types are Django's own and an attribute delta's revision is its parent's: a
    check at every commit would repeat that, and lock the model's content type row."""
    object_delta_table = get_object_delta_model()._meta.db_table
    assert _foreign_key_constraints(get_object_delta_model()) == {
        "revision_id": get_revision_model()._meta.db_table
    }
    assert _foreign_key_constraints(get_attribute_delta_model()) == {
        "parent_id": object_delta_table
    }
    assert _foreign_key_constraints(ObjectDeltaAggregate) == {"delta_id": object_delta_table}
