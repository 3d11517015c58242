"""What tracking costs in SQL statements: a fixed number per write, whatever the fields.

Every measurement compares the same operation done outside any context (Django alone) with
the same operation inside one. On PostgreSQL a tracked single-row write adds no statement:
Django's own statement carries its history (`REVY_ONE_STATEMENT`, on by default). Elsewhere it
adds at most two statements (the object delta and its attribute deltas) plus one for the
revision, once per context.
"""

from __future__ import annotations

import datetime

import pytest
from django.db import connection

from revy import Context
from tests.conftest import added, count_queries
from tests.factories import history_counts, make_author, make_book, make_review, object_deltas
from tests.testapp.models import Author, Book, Review, Stamped

pytestmark = pytest.mark.django_db

REVISION = 1  # the lazily created revision, once per context
OBJECT_AND_ATTRIBUTE_DELTAS = 2


# Two models of very different widths: Review has 3 concrete fields, Stamped 7.


def new_review(book: Book) -> Review:
    return Review(book=book, text="A review")


def new_stamped(book: Book) -> Stamped:
    return Stamped(
        label="stamped",
        payload={"a": 1},
        blob=b"bytes",
        duration=datetime.timedelta(seconds=3),
    )


def change(instance) -> None:
    if isinstance(instance, Review):
        instance.text = f"{instance.text}!"
    else:
        instance.label = f"{instance.label}!"
        instance.payload = {"a": 2}
        instance.duration = datetime.timedelta(seconds=4)


BUILDERS = pytest.mark.parametrize("build", [new_review, new_stamped], ids=["3-fields", "7-fields"])


def statements(operation) -> int:
    with count_queries() as queries:
        operation()
    return len(queries)


def test_the_two_models_differ_in_width():
    assert len(Review._meta.concrete_fields) == 3
    assert len(Stamped._meta.concrete_fields) == 7


# Create --------------------------------------------------------------------------------------


@BUILDERS
def test_tracked_create_costs_two_statements_plus_the_revision(user, build):
    book = make_book()
    untracked = statements(build(book).save)
    with Context.via_actor(user):
        first = statements(build(book).save)
        second = statements(build(book).save)
    assert untracked == 1
    assert first == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS, REVISION)
    assert second == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS)
    assert len(object_deltas(type(build(book)))) == 2


@BUILDERS
def test_tracked_objects_create_costs_the_same(user, build):
    book = make_book()
    model = type(build(book))
    fields = {
        field.attname: getattr(build(book), field.attname)
        for field in model._meta.concrete_fields
        if not field.primary_key and field.attname not in ("created", "updated")
    }
    untracked = statements(lambda: model.objects.create(**fields))
    with Context.via_actor(user):
        first = statements(lambda: model.objects.create(**fields))
    assert first == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS, REVISION)


# Update --------------------------------------------------------------------------------------


@BUILDERS
def test_tracked_update_costs_two_statements_plus_the_revision(user, build):
    book = make_book()
    instance = build(book)
    instance.save()
    model = type(instance)

    outside = model.objects.get(pk=instance.pk)
    change(outside)
    untracked = statements(outside.save)

    with Context.via_actor(user):
        loaded = model.objects.get(pk=instance.pk)
        change(loaded)
        first = statements(loaded.save)
        change(loaded)
        second = statements(loaded.save)
        again = model.objects.get(pk=instance.pk)  # loaded after the writes: knows the row
        change(again)
        third = statements(again.save)
    assert untracked == 1
    assert first == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS, REVISION)
    assert second == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS)
    assert third == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS)
    assert len(object_deltas(instance)) == 3


@BUILDERS
def test_tracked_update_fields_save_costs_the_same(user, build):
    book = make_book()
    instance = build(book)
    instance.save()
    model = type(instance)
    name = "text" if model is Review else "label"

    outside = model.objects.get(pk=instance.pk)
    change(outside)
    untracked = statements(lambda: outside.save(update_fields=[name]))
    with Context.via_actor(user):
        loaded = model.objects.get(pk=instance.pk)
        change(loaded)
        tracked = statements(lambda: loaded.save(update_fields=[name]))
    assert tracked == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS, REVISION)


def test_a_save_that_changes_nothing_costs_what_django_costs(user):
    instance = new_review(make_book())
    instance.save()
    model = type(instance)
    untracked = statements(model.objects.get(pk=instance.pk).save)
    with Context.via_actor(user):
        loaded = model.objects.get(pk=instance.pk)
        tracked = statements(loaded.save)
    assert tracked == untracked
    assert history_counts() == (0, 0, 0)


def test_a_save_that_only_moves_auto_now_records_it(user):
    # The row changed (Django set `updated` to now), so history does too: an Update whose
    # one attribute delta is the system's automatic value, not an actor's change.
    instance = new_stamped(make_book())
    instance.save()
    before = history_counts()
    untracked = statements(Stamped.objects.get(pk=instance.pk).save)
    with Context.via_actor(user):
        loaded = Stamped.objects.get(pk=instance.pk)
        tracked = statements(loaded.save)
    assert tracked == untracked + added(OBJECT_AND_ATTRIBUTE_DELTAS, REVISION)
    revisions, objects, attributes = (a - b for a, b in zip(history_counts(), before, strict=True))
    assert (revisions, objects, attributes) == (1, 1, 1)


# Delete --------------------------------------------------------------------------------------


@BUILDERS
def test_tracked_delete_costs_one_statement_plus_the_revision(user, build):
    # A deletion has no attribute deltas: its object delta holds the row's state.
    book = make_book()
    for instance in (build(book), build(book), build(book)):
        instance.save()
    model = type(instance)
    first_pk, second_pk, third_pk = model.objects.order_by("pk").values_list("pk", flat=True)

    untracked = statements(model.objects.get(pk=first_pk).delete)
    with Context.via_actor(user):
        loaded = model.objects.get(pk=second_pk)
        tracked = statements(loaded.delete)
        loaded = model.objects.get(pk=third_pk)
        second = statements(loaded.delete)
    assert untracked == 1
    assert tracked == untracked + added(1, REVISION)
    assert second == untracked + added(1)
    assert len(object_deltas(model)) == 2


def test_tracked_queryset_delete_costs_the_same_for_2_or_20_rows(user):
    def delete_reviews(count: int, tracked: bool) -> int:
        book = make_book()
        for _ in range(count):
            make_review(book=book)
        if not tracked:
            return statements(Review.objects.filter(book=book).delete)
        with Context.via_actor(user):
            return statements(Review.objects.filter(book=book).delete)

    untracked = delete_reviews(2, tracked=False)
    few = delete_reviews(2, tracked=True)
    many = delete_reviews(20, tracked=True)
    assert few == many
    if connection.vendor == "postgresql":
        # Django's one DELETE returns the rows and inserts their deltas (sqlwrites).
        assert few == untracked
    else:
        # The rows Django deletes without reading them must be read first, once.
        assert few == untracked + 1 + 1 + REVISION
    assert len(object_deltas(Review)) == 22


# Loading -------------------------------------------------------------------------------------


def test_loading_rows_inside_a_context_costs_no_statement(user):
    books = [make_book() for _ in range(5)]
    for book in books:
        make_review(book=book)

    def load():
        list(Book.objects.all())
        Book.objects.get(pk=books[0].pk)
        list(Review.objects.select_related("book__author"))
        list(Book.objects.prefetch_related("reviews"))
        list(Book.objects.only("title"))

    outside = statements(load)
    with Context.via_actor(user):
        inside = statements(load)
    with Context.via_actor(user), Context.as_disabled():
        disabled = statements(load)
    assert inside == outside == disabled == 6
    assert history_counts() == (0, 0, 0)


def test_an_actor_change_costs_no_statement(user, other_user):
    book = make_book()
    with Context.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        with count_queries() as queries:
            loaded.title = "Alice"
            with Context.via_actor(other_user):
                loaded.pages = 3
            loaded.title = "Alice again"
        assert len(queries) == 0


def test_a_cascading_delete_costs_the_same_for_1_or_5_books(user):
    def delete_author(books: int, tracked: bool) -> int:
        author = make_author()
        for _ in range(books):
            book = make_book(author=author)
            make_review(book=book)
            make_review(book=book)
        if not tracked:
            return statements(Author.objects.get(pk=author.pk).delete)
        with Context.via_actor(user):
            loaded = Author.objects.get(pk=author.pk)
            return statements(loaded.delete)

    untracked_few, untracked_many = delete_author(1, False), delete_author(5, False)
    tracked_few, tracked_many = delete_author(1, True), delete_author(5, True)
    assert untracked_few == untracked_many
    assert tracked_few == tracked_many
    # One INSERT for every Delete delta of the cascade, the revision, and one SELECT per
    # table whose rows Django changes or deletes without reading them (notes set to NULL,
    # reviews, the books' tag links and the author's club memberships fast-deleted).
    assert tracked_few - untracked_few == 1 + REVISION + 4
    assert len(object_deltas(Review)) == 12
