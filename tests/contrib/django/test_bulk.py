"""Bulk paths record what per-row saves would, with a constant number of extra statements."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import F

from revy import Context
from revy.contrib.django.utils import get_object_delta_model
from tests.conftest import count_queries
from tests.factories import (
    actor_ref,
    changes,
    history_counts,
    make_author,
    object_deltas,
)
from tests.testapp.models import Book, Tag

pytestmark = pytest.mark.django_db


def make_books(count: int, **fields) -> list[Book]:
    author = make_author()
    return Book.objects.bulk_create(
        [Book(author=author, title=f"Book {n}", pages=n, **fields) for n in range(count)]
    )


def recorded(model=Book, since: int = 0) -> list[tuple]:
    """(action, content_id, data, changes) of the deltas of `model` after id `since`."""
    return [
        (delta.action, delta.content_id, delta.data, changes(delta))
        for delta in object_deltas(model)
        if delta.pk > since
    ]


def last_delta_id() -> int:
    last = get_object_delta_model().objects.order_by("-id").first()
    return last.pk if last else 0


def extra_statements(operation, rows: int) -> int:
    """Statements `operation(books)` adds inside a context over outside one."""
    untracked_books = make_books(rows)
    with count_queries() as untracked:
        operation(untracked_books)
    tracked_books = make_books(rows)
    with Context(), count_queries() as tracked:
        operation(tracked_books)
    return len(tracked) - len(untracked)


# QuerySet.update ----------------------------------------------------------------------------


def test_queryset_update_records_one_update_per_changed_row(user):
    books = make_books(3)
    with Context.via_actor(user):
        Book.objects.filter(pages__gte=1).update(title="Renamed")

    deltas = [delta for delta in object_deltas(Book) if delta.action == "Update"]
    assert sorted(int(delta.content_id) for delta in deltas) == [books[1].pk, books[2].pk]
    for delta in deltas:
        (entry,) = changes(delta)["title"]
        assert entry[0] == "Set" and entry[2] == "Renamed"
        assert entry[3] == actor_ref(user)
        assert delta.data["title"] == "Renamed"


def test_queryset_update_with_expressions_records_the_values_the_database_computed():
    books = make_books(2)
    with Context():
        Book.objects.update(pages=F("pages") + 10)

    updates = {int(d.content_id): d for d in object_deltas(Book) if d.action == "Update"}
    assert changes(updates[books[1].pk])["pages"][0][1:3] == (1, 11)
    assert updates[books[0].pk].data["pages"] == 10


def test_queryset_update_records_the_same_deltas_as_per_row_saves():
    bulk_books = make_books(3, price=Decimal("1.00"))
    saved_books = make_books(3, price=Decimal("1.00"))
    since = last_delta_id()
    with Context():
        Book.objects.filter(pk__in=[b.pk for b in bulk_books]).update(price=Decimal("2.50"))
    bulk = recorded(since=since)
    since = last_delta_id()
    with Context():
        for book in Book.objects.filter(pk__in=[b.pk for b in saved_books]).order_by("pk"):
            book.price = Decimal("2.50")
            book.save()
    per_row = recorded(since=since)

    def comparable(entries, books):
        # The two sets of books differ only in their keys and authors.
        ids = {str(book.pk): index for index, book in enumerate(books)}
        own = ("id", "author_id")
        return sorted(
            (action, ids[pk], {k: v for k, v in data.items() if k not in own}, fields)
            for action, pk, data, fields in entries
        )

    assert comparable(bulk, bulk_books) == comparable(per_row, saved_books)


def test_queryset_update_that_changes_nothing_records_nothing():
    make_books(2)
    before = history_counts()
    with Context():
        Book.objects.update(author=F("author"))
    assert history_counts() == before


def test_queryset_update_outside_a_context_records_nothing():
    make_books(2)
    before = history_counts()
    Book.objects.update(title="x")
    assert history_counts() == before


def test_queryset_update_extra_statements_do_not_grow_with_rows():
    def operation(books):
        Book.objects.filter(pk__in=[book.pk for book in books]).update(title="Bulk")

    assert extra_statements(operation, 10) == extra_statements(operation, 1000)


def test_instance_saved_after_a_bulk_update_records_against_the_new_database_values():
    (book,) = make_books(1)
    with Context():
        loaded = Book.objects.get(pk=book.pk)
        Book.objects.filter(pk=book.pk).update(pages=99)
        loaded.title = "Saved"
        loaded.save(update_fields=["title"])

    last = object_deltas(book)[-1]
    assert last.data["pages"] == 99
    assert last.data["title"] == "Saved"


# bulk_create --------------------------------------------------------------------------------


def test_bulk_create_records_a_create_per_row_with_the_full_state(user):
    author = make_author()
    with Context.via_actor(user):
        books = Book.objects.bulk_create([Book(author=author, title=f"B{n}") for n in range(3)])

    creates = object_deltas(Book)
    assert [int(delta.content_id) for delta in creates] == [book.pk for book in books]
    for book, delta in zip(books, creates, strict=True):
        assert delta.action == "Create"
        assert delta.data["title"] == book.title
        fields = changes(delta)
        assert set(fields) == {"id", "author_id", "title", "pages", "price", "published"}
        assert fields["title"][0][3] == actor_ref(user)
        assert fields["id"][0][3] == (None, None)  # the database chose the key


def test_bulk_create_extra_statements_do_not_grow_with_rows():
    author = make_author()

    def operation(books):
        Book.objects.bulk_create([Book(author=author, title=book.title) for book in books])

    assert extra_statements(operation, 10) == extra_statements(operation, 1000)


# bulk_update --------------------------------------------------------------------------------


def test_bulk_update_records_only_the_listed_fields_that_changed():
    books = make_books(3)
    with Context():
        loaded = list(Book.objects.order_by("pk"))
        for book in loaded:
            book.title = book.title + "!"
            book.pages = 1000  # not listed: not written, not recorded
        Book.objects.bulk_update(loaded, ["title"])

    updates = [delta for delta in object_deltas(Book) if delta.action == "Update"]
    assert len(updates) == 3
    for book, delta in zip(books, updates, strict=True):
        assert set(changes(delta)) == {"title"}
        assert delta.data["title"] == book.title + "!"
        assert delta.data["pages"] == book.pages


def test_bulk_update_of_instances_loaded_outside_the_context_reads_their_old_values():
    books = make_books(2)
    for book in books:
        book.title = "New"
    with Context():
        Book.objects.bulk_update(books, ["title"])
    updates = [delta for delta in object_deltas(Book) if delta.action == "Update"]
    for number, delta in enumerate(updates):
        assert changes(delta)["title"][0][1:3] == (f"Book {number}", "New")
    assert len(updates) == len(books)


def test_bulk_update_extra_statements_do_not_grow_with_rows():
    def operation(books):
        for book in books:
            book.title = "Changed"
        Book.objects.bulk_update(books, ["title"], batch_size=1000)

    assert extra_statements(operation, 10) == extra_statements(operation, 1000)


# QuerySet.delete ----------------------------------------------------------------------------


def test_queryset_delete_records_each_row_with_its_state():
    books = make_books(3)
    with Context():
        Book.objects.filter(pages__lte=1).delete()
    deletes = [delta for delta in object_deltas(Book) if delta.action == "Delete"]
    assert sorted(int(delta.content_id) for delta in deletes) == [books[0].pk, books[1].pk]
    assert {delta.data["title"] for delta in deletes} == {"Book 0", "Book 1"}


def test_queryset_delete_extra_statements_do_not_grow_with_rows():
    def operation(books):
        Book.objects.filter(pk__in=[book.pk for book in books]).delete()

    assert extra_statements(operation, 10) == extra_statements(operation, 1000)


# Many-to-many -------------------------------------------------------------------------------


def m2m_deltas(since: int) -> list[tuple[str, int, int]]:
    return [
        (delta.action, delta.data["book_id"], delta.data["tag_id"])
        for delta in object_deltas(Book.tags.through)
        if delta.pk > since
    ]


def test_m2m_add_remove_set_and_clear_record_the_through_rows(user):
    (book,) = make_books(1)
    red, green, blue = (Tag.objects.create(name=name) for name in ("red", "green", "blue"))
    with Context.via_actor(user):
        since = last_delta_id()
        book.tags.add(red, green)
        assert m2m_deltas(since) == [("Create", book.pk, red.pk), ("Create", book.pk, green.pk)]

        since = last_delta_id()
        book.tags.remove(red)
        assert m2m_deltas(since) == [("Delete", book.pk, red.pk)]

        since = last_delta_id()
        book.tags.set([blue])
        assert sorted(m2m_deltas(since)) == [
            ("Create", book.pk, blue.pk),
            ("Delete", book.pk, green.pk),
        ]

        since = last_delta_id()
        blue.books.clear()
        assert m2m_deltas(since) == [("Delete", book.pk, blue.pk)]

    for delta in object_deltas(Book.tags.through):
        assert delta.event_type.startswith("testapp.book_tags.")
        assert (delta.actor_type_id, delta.actor_id) == actor_ref(user)


def test_m2m_add_from_the_reverse_side_is_recorded():
    (book,) = make_books(1)
    tag = Tag.objects.create(name="reverse")
    with Context():
        tag.books.add(book)
    assert m2m_deltas(0) == [("Create", book.pk, tag.pk)]


def test_m2m_add_extra_statements_do_not_grow_with_rows():
    def operation(books):
        tags = Tag.objects.bulk_create([Tag(name=f"t{id(books)}-{n}") for n in range(len(books))])
        books[0].tags.add(*tags)

    assert extra_statements(operation, 10) == extra_statements(operation, 1000)


# Bulk paths record what per-row operations would -------------------------------------------


def comparable_deltas(since: int, model=Book) -> list[tuple]:
    """The deltas after id `since`, without what differs between two sets of rows (keys)."""
    own = {"id", "author_id", "book_id"}
    result = []
    for delta in object_deltas(model):
        if delta.pk <= since:
            continue
        fields = {
            field: [(action, old, new, actor) for action, old, new, actor, _ in entries]
            for field, entries in changes(delta).items()
            if field not in own
        }
        state = {key: value for key, value in (delta.data or {}).items() if key not in own}
        result.append((delta.action, delta.event_type, state, fields))
    return sorted(result, key=repr)


def test_bulk_create_records_what_per_row_saves_record(user):
    author = make_author()
    since = last_delta_id()
    with Context.via_actor(user):
        Book.objects.bulk_create([Book(author=author, title=f"T{n}", pages=n) for n in range(3)])
    bulk = comparable_deltas(since)
    since = last_delta_id()
    with Context.via_actor(user):
        for n in range(3):
            Book(author=author, title=f"T{n}", pages=n).save()
    assert bulk == comparable_deltas(since)


def test_bulk_update_records_what_per_row_saves_record(user):
    first, second = make_books(3), make_books(3)
    since = last_delta_id()
    with Context.via_actor(user):
        loaded = list(Book.objects.filter(pk__in=[b.pk for b in first]).order_by("pk"))
        for book in loaded:
            book.pages += 5
        Book.objects.bulk_update(loaded, ["pages"])
    bulk = comparable_deltas(since)
    since = last_delta_id()
    with Context.via_actor(user):
        for book in Book.objects.filter(pk__in=[b.pk for b in second]).order_by("pk"):
            book.pages += 5
            book.save(update_fields=["pages"])
    assert bulk == comparable_deltas(since)


def test_queryset_delete_records_what_per_row_deletes_record(user):
    first, second = make_books(3), make_books(3)
    since = last_delta_id()
    with Context.via_actor(user):
        Book.objects.filter(pk__in=[b.pk for b in first]).delete()
    bulk = comparable_deltas(since)
    since = last_delta_id()
    with Context.via_actor(user):
        for book in Book.objects.filter(pk__in=[b.pk for b in second]):
            book.delete()
    assert bulk == comparable_deltas(since)


def test_m2m_add_records_what_saving_the_through_rows_records(user):
    (first,), (second,) = make_books(1), make_books(1)
    tags = [Tag.objects.create(name=f"tag{n}") for n in range(3)]
    through = Book.tags.through
    since = last_delta_id()
    with Context.via_actor(user):
        first.tags.add(*tags)
    bulk = comparable_deltas(since, through)
    since = last_delta_id()
    with Context.via_actor(user):
        for tag in tags:
            through(book=second, tag=tag).save()
    assert bulk == comparable_deltas(since, through)
