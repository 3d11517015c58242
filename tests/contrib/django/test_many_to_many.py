"""Many-to-many links: every kind of through model, recorded once per through row, visible
from both linked rows' history."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from revy import Context
from revy.contrib.django.history import history_of, revert, snapshot
from tests.conftest import count_queries
from tests.factories import make_author, make_book, object_deltas
from tests.testapp.models import Author, Book, Club, Membership, Person, Tag

pytestmark = pytest.mark.django_db

BookTags = Book.tags.through
Friendship = Person.friends.through


def links(model) -> list[tuple]:
    """(action, from, to) of the through model's deltas, oldest first."""
    names = [field.attname for field in model._meta.concrete_fields if field.is_relation]
    return [(delta.action, *(delta.data[name] for name in names)) for delta in object_deltas(model)]


def test_an_add_through_a_custom_through_model_records_the_link_once():
    club = Club.objects.create(name="chess")
    author = make_author()
    with Context():
        club.members.add(author, through_defaults={"role": "chair"})
    membership = Membership.objects.get()
    assert [delta.action for delta in object_deltas(Membership)] == ["Create"]
    assert snapshot(Membership, membership.pk).role == "chair"


def test_an_add_on_a_symmetrical_self_relation_records_both_through_rows():
    alice, bob = Person.objects.create(name="alice"), Person.objects.create(name="bob")
    with Context():
        alice.friends.add(bob)
    assert sorted(links(Friendship)) == [
        ("Create", alice.pk, bob.pk),
        ("Create", bob.pk, alice.pk),
    ]
    with Context():
        bob.friends.remove(alice)
    assert sorted(links(Friendship))[:2] == [
        ("Create", alice.pk, bob.pk),
        ("Create", bob.pk, alice.pk),
    ]
    assert sorted(entry for entry in links(Friendship) if entry[0] == "Delete") == [
        ("Delete", alice.pk, bob.pk),
        ("Delete", bob.pk, alice.pk),
    ]


def test_every_through_row_snapshot_equals_the_database_after_add_set_remove_clear():
    book = make_book()
    tags = [Tag.objects.create(name=f"t{n}") for n in range(4)]
    with Context():
        book.tags.add(*tags[:2])
        book.tags.add(tags[0])  # already linked: nothing written, nothing recorded
        book.tags.set(tags[1:3])
        tags[3].books.add(book)
        book.tags.remove(tags[1])
    for row in BookTags.objects.all():
        assert snapshot(BookTags, row.pk) is not None
    recorded_links = {
        (delta.data["book_id"], delta.data["tag_id"])
        for delta in object_deltas(BookTags)
        if snapshot(BookTags, delta.content_id) is not None
    }
    assert recorded_links == set(BookTags.objects.values_list("book_id", "tag_id"))
    assert len([delta for delta in object_deltas(BookTags) if delta.action == "Create"]) == 4


def test_link_changes_show_in_the_history_of_both_linked_rows():
    book = make_book()
    tag = Tag.objects.create(name="t")
    club = Club.objects.create(name="c")
    with Context():
        book.tags.add(tag)
        club.members.add(book.author)
    book_tags = ContentType.objects.get_for_model(BookTags).pk
    memberships = ContentType.objects.get_for_model(Membership).pk
    assert [d.content_type_id for d in history_of(book)] == [book_tags]
    assert [d.content_type_id for d in history_of(tag)] == [book_tags]
    assert [d.content_type_id for d in history_of(club)] == [memberships]
    author_history = [d.content_type_id for d in history_of(Author, book.author_id)]
    assert memberships in author_history
    with Context():
        book.tags.clear()
    assert [d.action for d in history_of(book)] == ["Delete", "Create"]


def test_reverting_a_link_addition_removes_the_link_only():
    book = make_book()
    tag = Tag.objects.create(name="t")
    with Context():
        book.tags.add(tag)
    revert(object_deltas(BookTags)[-1].revision)
    assert list(book.tags.all()) == []
    assert Tag.objects.filter(pk=tag.pk).exists() and Book.objects.filter(pk=book.pk).exists()


def test_adding_links_keeps_djangos_single_statement_fast_path_outside_a_context():
    book = make_book()
    tag = Tag.objects.create(name="t")
    with count_queries() as queries:
        book.tags.add(tag)
    expected = 1 if connection.features.supports_ignore_conflicts else 2
    assert len(queries) == expected


# bulk_create with conflicts -------------------------------------------------------------------


def test_an_upsert_records_an_update_of_the_existing_row_and_a_create_of_the_new_one(user):
    existing = Tag.objects.create(name="old")
    with Context(actor=user):
        Tag.objects.bulk_create(
            [Tag(name="old"), Tag(name="new")],
            update_conflicts=True,
            unique_fields=["name"],
            update_fields=["name"],
        )
    assert [delta.action for delta in object_deltas(existing)] == []  # the same values
    new = Tag.objects.get(name="new")
    assert [delta.action for delta in object_deltas(new)] == ["Create"]


def test_an_upsert_changing_values_records_an_update_and_its_revert_keeps_the_row():
    book = make_book(title="same", pages=1)
    Book.objects.filter(pk=book.pk).update(pages=1)
    author = book.author
    with Context():
        Book.objects.bulk_create(
            [Book(id=book.pk, author=author, title="same", pages=5)],
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["pages"],
        )
    (delta,) = object_deltas(book)
    assert delta.action == "Update"
    assert {
        child.field_name: (child.old_value, child.new_value) for child in delta.children.all()
    } == {"pages": (1, 5)}
    assert snapshot(Book, book.pk).pages == 5
    revert(delta.revision)
    assert Book.objects.get(pk=book.pk).pages == 1  # the row existed before: it stays


def test_ignored_conflicts_record_nothing_and_inserted_rows_a_create():
    Tag.objects.create(name="taken")
    with Context():
        Tag.objects.bulk_create([Tag(name="taken"), Tag(name="free")], ignore_conflicts=True)
    assert [d.action for d in object_deltas(Tag.objects.get(name="taken"))] == []
    assert [d.action for d in object_deltas(Tag.objects.get(name="free"))] == ["Create"]
    assert snapshot(Tag, Tag.objects.get(name="free").pk).name == "free"


def test_ignored_conflicts_without_a_unique_value_record_every_inserted_row(user):
    from tests.testapp.models import Author

    make_author(name="twin")  # there before, with the same content
    with Context(actor=user):
        Author.objects.bulk_create(
            [Author(name="twin"), Author(name="twin"), Author(name="solo")],
            ignore_conflicts=True,
        )
    twins = Author.objects.filter(name="twin").order_by("pk")
    assert [len(object_deltas(twin)) for twin in twins] == [0, 1, 1]
    solo = Author.objects.get(name="solo")
    (created,) = object_deltas(solo)
    assert snapshot(Author, solo.pk).name == "solo"
    assert {child.actor_id for child in created.children.filter(field_name="name")} == {
        str(user.pk)
    }
