"""revy's on_delete handlers: CASCADE, SET_NULL, SET_DEFAULT and SET."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import models, transaction
from django.db.migrations.writer import MigrationWriter
from django.db.models import deletion as django_deletion

from revy import Context
from revy.contrib.django import deletion
from revy.contrib.django import models as revy_models
from tests.conftest import count_queries
from tests.factories import (
    actor_of,
    actor_ref,
    changes,
    history_counts,
    make_author,
    make_book,
    make_note,
    make_review,
    object_deltas,
    only,
    revisions,
)
from tests.testapp.models import Author, Book, Note, Place, Restaurant, Review, Tag

pytestmark = pytest.mark.django_db

SYSTEM = (None, None)
CLOSED = "The account has been closed at the owner's request."
BECAUSE = "Deleted because the owner's account has been closed."


def build_library(owner=None):
    """An author (optionally of a user) with two books, three reviews and notes about them."""
    author = make_author(name="Owner's pen name", user=owner)
    books = [make_book(author=author, title=f"Book {n}", pages=n) for n in (1, 2)]
    reviews = [make_review(book=books[0]), make_review(book=books[0]), make_review(book=books[1])]
    note = make_note(text="All three", author=author, editor=author, reviewer=author)
    bystander = make_note(text="Someone else's", author=make_author(name="Other"))
    return author, books, reviews, note, bystander


# The source README's example ------------------------------------------------------------------


def test_readme_account_closure_records_every_affected_row_in_one_revision(user):
    admin = make_author(name="Support desk")  # any model instance can act
    author, books, reviews, note, bystander = build_library(owner=user)
    user_pk = user.pk

    with (
        Context.via_actor(admin),
        Context.via_object_delta_description(CLOSED),
        Context.via_deletion_description(BECAUSE),
    ):
        user.delete()

    revision = only(revisions())
    deltas = revision.get_object_deltas()
    # The row the user deleted: the context's actor and object delta description.
    origin = only([d for d in deltas if d.event_type == "auth.user.deleted"])
    assert origin.action == "Delete"
    assert origin.content_id == str(user_pk)
    assert actor_of(origin) == actor_ref(admin)
    assert origin.description == CLOSED
    # Every row the deletion reached: its own delta, the system, the deletion description.
    cascaded = [d for d in deltas if d.pk != origin.pk]
    by_event = {}
    for delta in cascaded:
        by_event.setdefault(delta.event_type, []).append(delta.content_id)
    assert sorted(by_event["testapp.author.deleted"]) == [str(author.pk)]
    assert sorted(by_event["testapp.book.deleted"]) == sorted(str(b.pk) for b in books)
    assert sorted(by_event["testapp.review.deleted"]) == sorted(str(r.pk) for r in reviews)
    assert by_event["testapp.note.updated"] == [str(note.pk)]
    assert {actor_of(d) for d in cascaded} == {SYSTEM}
    assert {d.description for d in cascaded} == {BECAUSE}
    assert {d.revision_id for d in deltas} == {revision.pk}
    # The database did what Django does.
    assert not Author.objects.filter(pk=author.pk).exists()
    assert not Book.objects.filter(pk__in=[b.pk for b in books]).exists()
    assert not Review.objects.filter(pk__in=[r.pk for r in reviews]).exists()
    note.refresh_from_db()
    assert (note.author_id, note.editor_id, note.reviewer_id) == (None, None, None)
    bystander.refresh_from_db()
    assert bystander.author_id is not None
    assert object_deltas(bystander) == []


def test_cascaded_deletes_keep_each_rows_pre_deletion_state(user):
    # Rows created before tracking began: revy never saw them, the deltas still hold them.
    author, books, reviews, _, _ = build_library()
    with Context.via_actor(user), Context.via_deletion_description(BECAUSE):
        Author.objects.get(pk=author.pk).delete()

    assert only(object_deltas(author)).data == {
        "id": author.pk,
        "name": "Owner's pen name",
        "email": "",
        "user_id": None,
    }
    for book in books:
        delta = only(object_deltas(book))
        assert delta.action == "Delete"
        assert delta.data == {
            "id": book.pk,
            "author_id": author.pk,
            "title": book.title,
            "pages": book.pages,
            "price": None,
            "published": None,
        }
    for review in reviews:
        assert only(object_deltas(review)).data == {
            "id": review.pk,
            "book_id": review.book_id,
            "text": review.text,
        }


def test_the_origin_gets_the_actor_and_the_cascade_gets_the_system(user):
    book = make_book()
    review = make_review(book=book)
    with Context.via_actor(user), Context.via_object_delta_description("Spam"):
        book.delete()
    book_delta = only(object_deltas(Book))
    review_delta = only(object_deltas(review))
    assert (actor_of(book_delta), book_delta.description) == (actor_ref(user), "Spam")
    assert (actor_of(review_delta), review_delta.description) == (SYSTEM, "")
    assert object_deltas(Author) == []


def test_cascaded_rows_loaded_with_changes_in_memory_record_the_database_state(user):
    book = make_book(title="Stored")
    with Context.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Unsaved"
        loaded.author.delete()
    assert only(object_deltas(book)).data["title"] == "Stored"


# SET_NULL, SET_DEFAULT and SET -----------------------------------------------------------------


@pytest.mark.parametrize("field", ["author", "editor", "reviewer"])
def test_set_handlers_record_an_update_of_the_foreign_key(user, field):
    author = make_author()
    author_pk = author.pk
    note = make_note(text="x", **{field: author})
    with (
        Context.via_actor(user),
        Context.via_object_delta_description("origin"),
        Context.via_deletion_description(BECAUSE),
    ):
        author.delete()

    delta = only(object_deltas(note))
    assert delta.action == "Update"
    assert delta.event_type == "testapp.note.updated"
    assert actor_of(delta) == SYSTEM
    assert delta.description == BECAUSE
    assert changes(delta) == {f"{field}_id": [("Unset", author_pk, None, SYSTEM, BECAUSE)]}
    assert delta.data[f"{field}_id"] is None
    assert delta.data["text"] == "x"
    assert delta.revision_id == only(object_deltas(Author)).revision_id
    note.refresh_from_db()
    assert getattr(note, f"{field}_id") is None


def test_one_row_updated_by_several_set_handlers_gets_one_delta_with_its_final_state(user):
    author = make_author()
    author_pk = author.pk
    note = make_note(text="x", author=author, editor=author, reviewer=author)
    with Context.via_actor(user), Context.via_deletion_description(BECAUSE):
        author.delete()

    delta = only(object_deltas(note))
    assert delta.data == {
        "id": note.pk,
        "text": "x",
        "author_id": None,
        "editor_id": None,
        "reviewer_id": None,
    }
    assert changes(delta) == {
        "author_id": [("Unset", author_pk, None, SYSTEM, BECAUSE)],
        "editor_id": [("Unset", author_pk, None, SYSTEM, BECAUSE)],
        "reviewer_id": [("Unset", author_pk, None, SYSTEM, BECAUSE)],
    }


def test_set_null_on_several_rows_records_each(user):
    author = make_author()
    notes = [make_note(author=author) for _ in range(3)]
    with Context.via_actor(user):
        author.delete()
    assert sorted(d.content_id for d in object_deltas(Note)) == sorted(str(n.pk) for n in notes)
    assert Note.objects.filter(author__isnull=True).count() == 3


# QuerySet.delete() ------------------------------------------------------------------------------


def test_queryset_delete_records_each_row_and_its_cascade(user):
    authors = [make_author(name=f"Doomed {n}") for n in range(3)]
    keep = make_author(name="Kept")
    books = [make_book(author=author) for author in authors]
    with Context.via_actor(user), Context.via_object_delta_description("Purge"):
        count, _ = Author.objects.filter(name__startswith="Doomed").delete()

    assert count == 6
    deleted = object_deltas(Author)
    assert sorted(d.content_id for d in deleted) == sorted(str(a.pk) for a in authors)
    assert {(actor_of(d), d.description, d.action) for d in deleted} == {
        (actor_ref(user), "Purge", "Delete")
    }
    assert {d.data["name"] for d in deleted} == {"Doomed 0", "Doomed 1", "Doomed 2"}
    cascaded = object_deltas(Book)
    assert sorted(d.content_id for d in cascaded) == sorted(str(b.pk) for b in books)
    assert {actor_of(d) for d in cascaded} == {SYSTEM}
    assert len({d.revision_id for d in deleted + cascaded}) == 1
    assert Author.objects.get() == keep


def test_queryset_delete_of_rows_without_dependants_records_each(user):
    book = make_book()
    reviews = [make_review(book=book, text=f"r{n}") for n in range(4)]
    with Context.via_actor(user):
        Review.objects.filter(book=book).delete()
    deltas = object_deltas(Review)
    assert sorted(d.content_id for d in deltas) == sorted(str(r.pk) for r in reviews)
    assert {d.data["text"] for d in deltas} == {"r0", "r1", "r2", "r3"}
    assert {actor_of(d) for d in deltas} == {actor_ref(user)}


def test_deleting_a_row_with_many_to_many_links_records_the_links(user):
    book = make_book()
    book.tags.add(Tag.objects.create(name="sf"), Tag.objects.create(name="classic"))
    through = Book.tags.through
    links = sorted(str(pk) for pk in through.objects.values_list("pk", flat=True))
    with Context.via_actor(user), Context.via_deletion_description(BECAUSE):
        book.delete()
    deltas = object_deltas(through)
    assert sorted(d.content_id for d in deltas) == links
    assert {(d.action, actor_of(d), d.description) for d in deltas} == {("Delete", SYSTEM, BECAUSE)}
    assert Tag.objects.count() == 2


def test_multi_table_inheritance_delete_gives_the_parent_row_the_origins_actor(user):
    restaurant = Restaurant.objects.create(name="Closed", serves_pizza=True)
    with Context.via_actor(user), Context.via_object_delta_description("Closed down"):
        restaurant.delete()
    for model in (Restaurant, Place):
        delta = only(object_deltas(model, restaurant.place_ptr_id))
        assert delta.action == "Delete"
        assert (actor_of(delta), delta.description) == (actor_ref(user), "Closed down")


# Outside a context -------------------------------------------------------------------------------


def test_outside_a_context_djangos_handlers_run_and_nothing_is_recorded():
    author, _, _, note, _ = build_library(owner=get_user_model().objects.create())
    author.user.delete()
    assert not Author.objects.filter(pk=author.pk).exists()
    assert not Book.objects.exists()
    assert not Review.objects.exists()
    note.refresh_from_db()
    assert (note.author_id, note.editor_id, note.reviewer_id) == (None, None, None)
    assert history_counts() == (0, 0, 0)


def test_inside_a_disabled_context_nothing_is_recorded(user):
    author, *_ = build_library()
    with Context.via_actor(user), Context.as_disabled():
        author.delete()
    assert not Book.objects.exists()
    assert history_counts() == (0, 0, 0)


def test_deleting_inside_a_rolled_back_transaction_records_nothing(user):
    author, *_ = build_library()

    with pytest.raises(RuntimeError), transaction.atomic(), Context.via_actor(user):
        author.delete()
        raise RuntimeError
    assert Book.objects.count() == 2
    assert history_counts() == (0, 0, 0)


# Migrations ---------------------------------------------------------------------------------------


def test_the_handlers_are_exported_by_the_models_module():
    for name in ("CASCADE", "SET", "SET_NULL", "SET_DEFAULT"):
        assert getattr(revy_models, name) is getattr(deletion, name)
        assert getattr(deletion, name) is not getattr(django_deletion, name)


@pytest.mark.parametrize("handler", ["CASCADE", "SET_NULL", "SET_DEFAULT"])
def test_a_field_with_a_handler_serializes_to_its_import_path(handler):
    field = models.ForeignKey(
        "testapp.Author", null=True, default=None, on_delete=getattr(deletion, handler)
    )
    string, imports = MigrationWriter.serialize(field)
    assert f"on_delete=revy.contrib.django.deletion.{handler}" in string
    assert "import revy.contrib.django.deletion" in imports
    assert field.deconstruct()[3]["on_delete"] is getattr(deletion, handler)


def test_set_serializes_to_a_call_of_revys_set():
    from tests.testapp.models import default_author

    string, imports = MigrationWriter.serialize(Note._meta.get_field("reviewer"))
    assert "on_delete=revy.contrib.django.deletion.SET(tests.testapp.models.default_author)" in (
        string
    )
    assert {"import revy.contrib.django.deletion", "import tests.testapp.models"} <= imports

    string, imports = MigrationWriter.serialize(deletion.SET(5))
    assert string == "revy.contrib.django.deletion.SET(5)"
    assert imports == {"import revy.contrib.django.deletion"}
    assert deletion.SET(default_author).deconstruct() == (
        "revy.contrib.django.deletion.SET",
        (default_author,),
        {},
    )


def test_set_with_a_plain_value_sets_that_value(user):
    handler = deletion.SET(None)
    assert callable(handler)
    author = make_author()
    note = make_note(reviewer=author)
    with Context.via_actor(user):
        author.delete()
    note.refresh_from_db()
    assert note.reviewer_id is None


def test_the_test_apps_migrations_match_its_models():
    # makemigrations --check fails if a handler deconstructs differently than the migration says.
    call_command("makemigrations", "testapp", "--check", "--dry-run", verbosity=0)


def test_adelete_cascades_and_records_like_delete(user):
    author, books, reviews, note, _ = build_library()

    async def delete():
        async with Context.via_actor(user), Context.via_deletion_description(BECAUSE):
            loaded = await Author.objects.aget(pk=author.pk)
            await loaded.adelete()

    async_to_sync(delete)()
    assert only(object_deltas(author)).action == "Delete"
    cascaded = [*object_deltas(Book), *object_deltas(Review), *object_deltas(note)]
    assert len(cascaded) == len(books) + len(reviews) + 1
    assert {(actor_of(d), d.description) for d in cascaded} == {(SYSTEM, BECAUSE)}


@pytest.mark.parametrize(
    ("revy_handler", "django_handler"),
    [
        (deletion.SET_NULL, django_deletion.SET_NULL),
        (deletion.SET_DEFAULT, django_deletion.SET_DEFAULT),
        (deletion.SET(None), django_deletion.SET(None)),
        (deletion.SET(lambda: None), django_deletion.SET(lambda: None)),
    ],
    ids=["SET_NULL", "SET_DEFAULT", "SET(value)", "SET(callable)"],
)
def test_handlers_are_as_lazy_as_djangos(revy_handler, django_handler):
    # Django calls a handler without looking for affected rows only when it is marked lazy;
    # a default or a SET callable must not run when no row points at the deleted one.
    assert getattr(revy_handler, "lazy_sub_objs", False) == getattr(
        django_handler, "lazy_sub_objs", False
    )


def test_outside_a_context_cascade_fast_deletes_leaf_rows_like_djangos():
    # Django fast-deletes (never reads) the rows its own CASCADE reaches when it can; revy's
    # CASCADE must not cost more than Django's outside a context.
    book = make_book()
    make_review(book=book)
    make_review(book=book)
    with count_queries() as queries:
        book.delete()
    review_reads = [sql for sql in queries.statements if sql.startswith("SELECT")]
    assert not [sql for sql in review_reads if "testapp_review" in sql]
    assert not Review.objects.exists()
