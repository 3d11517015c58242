"""History lives in the row's database, and is read and restored there."""

from __future__ import annotations

import pytest
from django.test import override_settings

from revy import Context
from revy.contrib.django.history import diff, history_of, revert, rollback, snapshot
from revy.contrib.django.utils import get_object_delta_model, get_revision_model
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(databases=["default", "other"], transaction=True)


def deltas(using: str) -> list:
    return list(get_object_delta_model().objects.using(using).order_by("id"))


class OtherRouter:
    """Writes and reads Authors in the "other" database."""

    def db_for_write(self, model, **hints):
        return "other" if model is Author else None

    db_for_read = db_for_write


def test_a_save_with_using_records_in_that_database_only():
    with Context():
        author = Author(name="a")
        author.save(using="other")
        author.name = "b"
        author.save(using="other")
    assert [d.action for d in deltas("other")] == ["Create", "Update"]
    assert deltas("default") == []
    assert [d.action for d in history_of(author)] == ["Update", "Create"]
    assert snapshot(Author, author.pk, using="other").name == "b"


def test_bulk_paths_record_in_the_querysets_write_database():
    with Context():
        (author,) = Author.objects.using("other").bulk_create([Author(name="a")])
        Author.objects.using("other").filter(pk=author.pk).update(name="b")
        author.name = "c"
        Author.objects.using("other").bulk_update([author], ["name"])
        Author.objects.using("other").filter(pk=author.pk).delete()
    assert [d.action for d in deltas("other")] == ["Create", "Update", "Update", "Delete"]
    assert deltas("default") == []


def test_the_router_decides_where_history_is_written_and_read():
    with override_settings(DATABASE_ROUTERS=[OtherRouter()]), Context():
        author = Author.objects.create(name="routed")
        assert [d.action for d in history_of(Author, author.pk)] == ["Create"]
        assert snapshot(Author, author.pk).name == "routed"
    assert [d.action for d in deltas("other")] == ["Create"]
    assert deltas("default") == []


def test_revert_of_another_databases_revision_touches_only_that_database():
    with Context():
        Author.objects.using("default").create(pk=1000, name="default row")
    with Context():
        other = Author(pk=1000, name="other row")  # the same pk in both databases
        other.save(using="other")
    revision = get_revision_model().objects.using("other").get()
    revert(revision)
    assert not Author.objects.using("other").filter(pk=other.pk).exists()
    assert Author.objects.using("default").filter(name="default row").exists()
    assert [d.action for d in deltas("other")] == ["Create", "Delete"]
    assert [d.action for d in deltas("default")] == ["Create"]


def test_rollback_and_diff_in_another_database():
    with Context():
        author = Author(name="first")
        author.save(using="other")
    created = history_of(author).get()
    with Context():
        author.name = "second"
        author.save(using="other")
    assert diff(Author, author.pk, since=created, until=None, using="other") == {
        "name": {"old": "first", "new": "second"}
    }
    rollback(Author, author.pk, delta=created, using="other")
    assert Author.objects.using("other").get(pk=author.pk).name == "first"
    assert not Author.objects.using("default").filter(pk=author.pk).exists()


def test_a_cascade_in_another_database_records_there():
    with Context():
        author = Author(name="a")
        author.save(using="other")
        Book(author=author, title="t").save(using="other")
        author.delete()
    assert sorted(d.event_type for d in deltas("other") if d.action == "Delete") == [
        "testapp.author.deleted",
        "testapp.book.deleted",
    ]
