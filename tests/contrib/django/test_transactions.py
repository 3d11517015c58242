"""Installing revy changes nothing about Django's transactions and errors.

A tracked write keeps its deltas in its own transaction, but an exception Django raises before
any SQL leaves the caller's `atomic()` block usable, a raising `post_save` receiver does not
undo a row Django would have kept, and wrong usage raises Django's own exceptions.
"""

from __future__ import annotations

import contextlib

import pytest
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save

from revy import Context
from revy.contrib.django.history import snapshot
from tests.factories import make_author, make_book, object_deltas
from tests.testapp.models import Author, Book, Restaurant

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


@contextlib.contextmanager
def receiver_raising(signal, sender):
    def explode(**kwargs):
        raise Boom

    signal.connect(explode, sender=sender, weak=False)
    try:
        yield
    finally:
        signal.disconnect(explode, sender=sender)


def assert_block_usable() -> None:
    """The enclosing atomic block can still run queries and commit."""
    assert not connection.needs_rollback
    Author.objects.count()


def test_a_sliced_update_raises_djangos_error_and_leaves_the_atomic_block_usable():
    make_author(name="a")
    with Context(), transaction.atomic():
        with pytest.raises(TypeError, match="slice"):
            Author.objects.all()[:1].update(name="b")
        assert_block_usable()
        make_author(name="kept")
    assert Author.objects.filter(name="kept").exists()


def test_a_joined_field_update_raises_field_error_and_leaves_the_block_usable():
    make_book()
    with Context(), transaction.atomic():
        with pytest.raises((FieldError, FieldDoesNotExist)):  # as Django alone raises
            Book.objects.update(author__name="x")
        assert_block_usable()


def test_an_update_of_an_unknown_field_raises_djangos_error_not_key_error():
    make_author()
    with Context(), pytest.raises(FieldDoesNotExist):
        Author.objects.update(nonexistent="x")


def test_bulk_update_of_an_unknown_field_raises_djangos_error():
    author = make_author()
    with Context(), pytest.raises(FieldDoesNotExist):
        Author.objects.bulk_update([author], ["nonexistent"])


def test_bulk_update_of_the_primary_key_raises_djangos_value_error():
    author = make_author()
    with Context(), pytest.raises(ValueError, match="primary key"):
        Author.objects.bulk_update([author], ["id"])


def test_bulk_create_of_an_inherited_model_raises_and_leaves_the_block_usable():
    with Context(), transaction.atomic():
        with pytest.raises(ValueError, match="multi-table inherited"):
            Restaurant.objects.bulk_create([Restaurant(name="r")])
        assert_block_usable()


def test_a_raising_pre_save_receiver_leaves_the_atomic_block_usable():
    author = make_author(name="before")
    with Context(), transaction.atomic():
        author.name = "after"
        with receiver_raising(pre_save, Author), pytest.raises(Boom):
            author.save()
        assert_block_usable()
    assert Author.objects.get(pk=author.pk).name == "before"
    assert len(object_deltas(author)) == 0


def test_a_raising_post_save_receiver_keeps_the_row_and_its_history_in_autocommit_mode():
    with Context(), receiver_raising(post_save, Author), pytest.raises(Boom):
        Author.objects.create(name="kept")
    author = Author.objects.get(name="kept")
    assert [delta.action for delta in object_deltas(author)] == ["Create"]
    assert snapshot(Author, author.pk).name == "kept"


def test_a_raising_post_save_receiver_on_update_keeps_the_change_and_its_history():
    author = make_author(name="before")
    with Context():
        author = Author.objects.get(pk=author.pk)
        author.name = "after"
        with receiver_raising(post_save, Author), pytest.raises(Boom):
            author.save()
    assert Author.objects.get(pk=author.pk).name == "after"
    assert [delta.action for delta in object_deltas(author)] == ["Update"]
    assert snapshot(Author, author.pk).name == "after"


def test_a_raising_pre_save_receiver_in_autocommit_mode_writes_nothing():
    author = make_author(name="before")
    with Context():
        author.name = "after"
        with receiver_raising(pre_save, Author), pytest.raises(Boom):
            author.save()
    assert Author.objects.get(pk=author.pk).name == "before"
    assert object_deltas(author) == []


def test_a_raising_post_save_receiver_caught_inside_atomic_keeps_row_and_history():
    with Context(), transaction.atomic():
        with receiver_raising(post_save, Author), pytest.raises(Boom):
            Author.objects.create(name="kept")
        assert_block_usable()
    author = Author.objects.get(name="kept")
    assert snapshot(Author, author.pk).name == "kept"


def test_refresh_from_db_accepts_reverse_relations_and_prefetched_names():
    book = make_book()
    with Context():
        author = Author.objects.prefetch_related("books").get(pk=book.author_id)
        author.refresh_from_db(fields=["books"])  # a prefetched name: only clears the cache
        author.refresh_from_db(fields=["name", "books"])
        author.name = "renamed"
        author.save()
    assert snapshot(Author, author.pk).name == "renamed"


def test_the_pending_revision_is_none_once_its_savepoint_rolled_back():
    from revy.contrib.django.revisions import pending_revision

    with Context(), transaction.atomic():
        with contextlib.suppress(Boom), transaction.atomic():
            make_author()
            assert pending_revision() is not None
            raise Boom
        assert pending_revision() is None
        make_author()
        assert pending_revision() is not None


def test_the_pending_revision_never_names_another_revision_that_reused_its_id():
    from revy.contrib.django.revisions import pending_revision
    from tests.history_models import Revision

    with Context():
        with contextlib.suppress(Boom), transaction.atomic():
            make_author()
            rolled_back = pending_revision().pk
            raise Boom
        # Another request's revision takes the id SQLite gives back after a rollback.
        Revision.objects.create(pk=rolled_back, description="someone else's")
        assert pending_revision() is None
