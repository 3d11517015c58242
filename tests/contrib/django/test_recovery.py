"""Deleted rows (`history.deleted`) and restoring a row with what its deletion took along
(`rollback(..., cascade=True)`, `recovery.cascade_of`)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revy import Context
from revy.contrib.django.history import deleted, history_of, rollback
from revy.contrib.django.recovery import cascade_of
from tests.conftest import count_queries
from tests.contrib.django.helpers import deleted as delete_in_revision
from tests.contrib.django.helpers import last_delta_of, last_revision, row_values
from tests.factories import history_counts, make_author
from tests.recoveryapp.models import Comment, Post, Reply
from tests.testapp.models import (
    Author,
    Book,
    Car,
    Cylinder,
    Engine,
    Note,
    Place,
    Restaurant,
    Review,
    Tag,
)

pytestmark = pytest.mark.django_db


def build_car(name: str = "Volvo", cylinders: int = 4) -> Car:
    with Context():
        car = Car.objects.create(manufacturer=name)
        engine = Engine.objects.create(car=car, num_cylinders=cylinders)
        for volume in range(cylinders):
            Cylinder.objects.create(engine=engine, volume=500 + volume)
    return car


def table(*models) -> dict:
    """Every row of the models, as values: what a restore must bring back exactly."""
    return {
        model.__name__: sorted(
            (row_values(row) for row in model.objects.all()), key=lambda values: str(values)
        )
        for model in models
    }


# deleted() ------------------------------------------------------------------------------------


def test_deleted_lists_the_rows_whose_last_delta_is_a_deletion_with_their_last_state(user):
    kept = build_car("Kept")
    gone = build_car("Gone")
    gone_pk = gone.pk
    with Context(actor=user, object_delta_description="Scrapped"):
        gone.manufacturer = "Gone for good"
        gone.save()
        gone.delete()
    with count_queries() as queries:
        rows = list(deleted(Car))
    assert len(queries) == 1
    [row] = rows
    assert row.content_id == str(gone_pk)
    assert isinstance(row.snapshot, Car)
    assert (row.snapshot.pk, row.snapshot.manufacturer) == (gone_pk, "Gone for good")
    assert row.actor == user
    assert row.description == "Scrapped"
    assert row.created_at is not None
    assert kept.pk not in {int(row.content_id) for row in deleted(Car)}


def test_rows_a_deletion_cascaded_to_are_deleted_too_by_the_system():
    car = build_car(cylinders=3)
    delete_in_revision(car)
    engines = list(deleted(Engine))
    assert len(engines) == 1 and engines[0].actor is None
    assert len(deleted(Cylinder)) == 3


def test_a_re_created_row_is_no_longer_deleted():
    car = build_car()
    pk = car.pk
    delete_in_revision(car)
    assert [row.content_id for row in deleted(Car)] == [str(pk)]
    rollback(Car, pk, delta=last_delta_of(Car, pk))
    assert list(deleted(Car)) == []


def test_deleted_is_one_query_whatever_the_number_of_rows():
    for number in range(12):
        delete_in_revision(build_car(f"Car {number}", cylinders=1))
    with count_queries() as queries:
        rows = list(deleted(Cylinder).select_related("revision")[:5])
    assert len(rows) == 5 and len(queries) == 1
    assert [row.pk for row in deleted(Car)] == sorted(
        (row.pk for row in deleted(Car)), reverse=True
    )


# rollback(cascade=True) ------------------------------------------------------------------------


def test_cascade_re_creates_the_engine_and_cylinders_in_one_revision():
    car = build_car(cylinders=4)
    before = table(Car, Engine, Cylinder)
    pk = car.pk
    delete_in_revision(car)
    assert table(Car, Engine, Cylinder) == {"Car": [], "Engine": [], "Cylinder": []}
    deletion = last_delta_of(Car, pk)
    counts = history_counts()
    restored = rollback(Car, pk, delta=deletion, cascade=True)
    assert restored.pk == pk
    assert table(Car, Engine, Cylinder) == before
    revisions, deltas, _ = history_counts()
    assert (revisions, deltas) == (counts[0] + 1, counts[1] + 6)
    creates = list(last_revision().object_deltas.order_by("id"))
    assert [delta.action for delta in creates] == ["Create"] * 6
    # Dependency order: the car, then its engine, then the cylinders.
    assert [delta.content_type.model for delta in creates] == ["car", "engine"] + ["cylinder"] * 4


def test_without_cascade_only_the_row_comes_back():
    car = build_car()
    pk = car.pk
    delete_in_revision(car)
    rollback(Car, pk, delta=last_delta_of(Car, pk))
    assert Car.objects.filter(pk=pk).exists()
    assert not Engine.objects.exists() and not Cylinder.objects.exists()


def test_only_the_rows_that_deletion_took_along_come_back():
    first, second = build_car("First"), build_car("Second")
    first_pk = first.pk
    with Context():  # one revision deleting both cars
        first.delete()
        second.delete()
    earlier = build_car("Earlier")
    lone_engine = earlier.engine
    delete_in_revision(lone_engine)  # an engine deleted on its own, in another revision
    rollback(Car, first_pk, delta=last_delta_of(Car, first_pk), cascade=True)
    assert list(Car.objects.values_list("manufacturer", flat=True).order_by("id")) == [
        "First",
        "Earlier",
    ]
    assert list(Engine.objects.values_list("car_id", flat=True)) == [first_pk]
    assert set(Cylinder.objects.values_list("engine__car_id", flat=True)) == {first_pk}


def test_rows_that_exist_again_or_whose_history_went_on_are_left_alone():
    author = make_author()
    with Context():
        back, deleted_again, taken = (
            Book.objects.create(author=author, title=title) for title in ("back", "again", "taken")
        )
        review = Review.objects.create(book=back, text="of the book that is back")
    pk = author.pk
    delete_in_revision(author)
    # Since then: one book exists again without revy knowing, one was re-created and
    # deleted again on its own (its last deletion is not the author's).
    Book.objects.create(pk=back.pk, author_id=pk, title="back, untracked")
    rollback(Book, deleted_again.pk, delta=last_delta_of(Book, deleted_again.pk))
    delete_in_revision(Book.objects.get(pk=deleted_again.pk))
    rows = cascade_of(Author, pk)
    assert [(row.model, row.pk) for row in rows] == [
        (Book, str(taken.pk)),
        (Review, str(review.pk)),
    ]
    rollback(Author, pk, delta=last_delta_of(Author, pk), cascade=True)
    assert sorted(Book.objects.values_list("title", flat=True)) == ["back, untracked", "taken"]
    assert Review.objects.get().book_id == back.pk


def test_cascade_of_a_row_that_exists_or_was_not_deleted_is_empty():
    car = build_car()
    assert cascade_of(Car, car.pk) == []
    assert cascade_of(Car, 12345) == []
    rolled = rollback(Car, car.pk, delta=history_of(Car, car.pk).last(), cascade=True)
    assert rolled.pk == car.pk


def test_rows_whose_foreign_key_the_deletion_cleared_are_not_re_created_nor_changed():
    author = make_author()
    with Context():
        note = Note.objects.create(text="n", author=author)
        book = Book.objects.create(author=author, title="b")
        Review.objects.create(book=book, text="r")
    pk = author.pk
    delete_in_revision(author)
    note.refresh_from_db()
    assert note.author_id is None
    rollback(Author, pk, delta=last_delta_of(Author, pk), cascade=True)
    assert Book.objects.filter(author_id=pk).count() == 1
    assert Review.objects.filter(book__author_id=pk).count() == 1
    note.refresh_from_db()
    assert note.author_id is None  # a SET_NULL is an update, not a deletion


def test_many_to_many_links_and_generic_relations_come_back():
    with Context():
        tags = [Tag.objects.create(name=name) for name in ("a", "b")]
        book = make_author().books.create(title="Tagged")
        book.tags.set(tags)
        post = Post.objects.create(title="Post")
        comment = Comment.objects.create(target=post, text="c")
        Reply.objects.create(post=post, comment=comment)
        quoter_post = Post.objects.create(title="Quoter")
        quoting = Comment.objects.create(target=quoter_post, text="q")
        Reply.objects.create(post=quoter_post, comment=quoting, quoting=post)
    before = table(Post, Comment, Reply)
    book_pk, post_pk = book.pk, post.pk
    delete_in_revision(book)
    delete_in_revision(post)
    assert Comment.objects.count() == 1 and Reply.objects.count() == 1
    rollback(Book, book_pk, delta=last_delta_of(Book, book_pk), cascade=True)
    assert sorted(Book.objects.get(pk=book_pk).tags.values_list("name", flat=True)) == ["a", "b"]
    rollback(Post, post_pk, delta=last_delta_of(Post, post_pk), cascade=True)
    after = table(Post, Comment, Reply)
    # The quoting reply's foreign key was cleared (SET_NULL): it stays cleared.
    for reply in before["Reply"]:
        if reply["quoting_id"] == post_pk:
            reply["quoting_id"] = None
    assert after == before


def test_a_multi_table_child_taken_along_with_its_parent_comes_back():
    with Context():
        restaurant = Restaurant.objects.create(name="Luigi", serves_pizza=True)
    pk = restaurant.pk
    delete_in_revision(Place.objects.get(pk=pk))
    assert not Restaurant.objects.exists()
    rollback(Place, pk, delta=last_delta_of(Place, pk), cascade=True)
    restored = Restaurant.objects.get(pk=pk)
    assert (restored.name, restored.serves_pizza) == ("Luigi", True)


def test_every_re_created_row_is_checked_and_a_refusal_writes_nothing():
    car = build_car(cylinders=2)
    pk = car.pk
    delete_in_revision(car)
    seen = []

    def check(action, instance):
        seen.append((action, type(instance).__name__))
        if isinstance(instance, Cylinder):
            raise PermissionDenied("no cylinders")

    counts = history_counts()
    with pytest.raises(PermissionDenied):
        rollback(Car, pk, delta=last_delta_of(Car, pk), cascade=True, check=check)
    assert seen == [("add", "Car"), ("add", "Engine"), ("add", "Cylinder")]
    assert history_counts() == counts
    assert not Car.objects.exists() and not Engine.objects.exists()


def test_finding_the_cascade_costs_a_few_queries_whatever_its_size():
    def queries_for(cylinders: int) -> int:
        car = build_car(cylinders=cylinders)
        pk = car.pk
        delete_in_revision(car)
        with count_queries() as queries:
            assert len(cascade_of(Car, pk)) == cylinders + 1
        return len(queries)

    assert queries_for(1) == queries_for(12)


# Property: a cascade restores exactly what the deletion removed --------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
@given(
    shape=st.lists(st.lists(st.integers(0, 2), max_size=3), min_size=1, max_size=3),
    victim=st.integers(0, 2),
    others=st.booleans(),
)
def test_a_cascade_restores_exactly_the_rows_its_deletion_removed(shape, victim, others):
    """Property: authors -> books -> reviews; deleting one author (maybe with others in the
    same revision) then rolling it back with cascade gives back its rows and nothing else."""
    with transaction.atomic():
        with Context():
            authors = []
            for index, books in enumerate(shape):
                author = Author.objects.create(name=f"Author {index}")
                for number, reviews in enumerate(books):
                    book = Book.objects.create(author=author, title=f"{index}.{number}")
                    for review in range(reviews):
                        Review.objects.create(book=book, text=f"{index}.{number}.{review}")
                authors.append(author)
        everything = table(Author, Book, Review)
        target = authors[victim % len(authors)]
        pk = target.pk
        with Context():
            target.delete()
            if others:
                for author in authors:
                    if author.pk is not None:
                        author.delete()
        rollback(Author, pk, delta=last_delta_of(Author, pk), cascade=True)
        expected = {
            "Author": [row for row in everything["Author"] if row["id"] == pk],
            "Book": [row for row in everything["Book"] if row["author_id"] == pk],
        }
        book_ids = {row["id"] for row in expected["Book"]}
        expected["Review"] = [row for row in everything["Review"] if row["book_id"] in book_ids]
        if not others:
            expected = {
                name: [row for row in rows if row in everything[name]]
                for name, rows in everything.items()
            }
        assert table(Author, Book, Review) == expected
        transaction.set_rollback(True)
