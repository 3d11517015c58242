"""Recording saves and deletions: object and attribute deltas, actors, revisions, settings."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import threading
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_save, pre_save
from django.test import override_settings

from revy import Context
from revy import Context as C
from revy.context import current_scope
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.attribution import state_of
from tests.conftest import added, count_queries
from tests.factories import (
    actor_of,
    actor_ref,
    attribute_deltas,
    changes,
    history_counts,
    make_author,
    make_book,
    make_ledger,
    object_deltas,
    only,
    revisions,
    values,
)
from tests.history_models import AttributeDelta, ObjectDelta, Revision
from tests.testapp.models import (
    Author,
    Book,
    Ledger,
    Place,
    ProxyBook,
    Restaurant,
    Review,
    Secret,
    Stamped,
    Untracked,
)

pytestmark = pytest.mark.django_db

SYSTEM = (None, None)


class Boom(Exception):
    pass


def user_created_changes(delta) -> dict[str, tuple]:
    """Map each field of a Create delta to the (new value, actor) of its last attribute delta."""
    return {field: (entries[-1][2], entries[-1][3]) for field, entries in changes(delta).items()}


# Create -------------------------------------------------------------------------------------


def test_save_of_a_new_instance_records_a_create_delta_with_the_full_state(user):
    with C.via_actor(user), C.via_revision_description("New author"):
        author = Author(name="Ann", email="ann@example.com")
        author.save()

    revision = only(revisions())
    assert revision.description == "New author"
    delta = only(object_deltas(author))
    assert delta.revision_id == revision.pk
    assert delta.action == ObjectDelta.ACTION_CREATE == "Create"
    assert delta.event_type == "testapp.author.created"
    assert actor_of(delta) == actor_ref(user)
    assert delta.content_type == ContentType.objects.get_for_model(Author)
    assert delta.content_id == str(author.pk)
    assert delta.content == author
    assert delta.actor == user
    assert delta.data == {
        "id": author.pk,
        "name": "Ann",
        "email": "ann@example.com",
        "user_id": None,
    }
    assert values(delta) == {
        "id": (None, author.pk),
        "name": (None, "Ann"),
        "email": (None, "ann@example.com"),
        "user_id": (None, None),
    }
    # Creation is all Set, whatever the value.
    assert {attribute.action for attribute in attribute_deltas(delta)} == {"Set"}
    assert {attribute.revision_id for attribute in attribute_deltas(delta)} == {revision.pk}
    assert {attribute.content_id for attribute in attribute_deltas(delta)} == {str(author.pk)}
    assert list(delta.children.order_by("id")) == attribute_deltas(delta)


def test_objects_create_inside_a_context_is_recorded(user):
    with C.via_actor(user):
        book = Book.objects.create(author=make_author(), title="Dune", pages=412)
    delta = object_deltas(book)[-1]
    assert delta.action == "Create"
    assert delta.data["title"] == "Dune"
    assert delta.data["pages"] == 412
    assert values(delta)["author_id"] == (None, book.author_id)


def test_asave_of_a_new_instance_records_like_save(user):
    async def create():
        async with C.via_actor(user):
            author = Author(name="Async")
            await author.asave()
            return author

    author = async_to_sync(create)()
    delta = only(object_deltas(author))
    assert delta.action == "Create"
    assert actor_of(delta) == actor_ref(user)
    assert values(delta)["name"] == (None, "Async")


# Update -------------------------------------------------------------------------------------


def test_update_records_only_the_changed_fields_and_the_full_state(user):
    book = make_book(title="Old", pages=10)
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        book.title = "New"
        book.save()

    delta = only(object_deltas(book))
    assert delta.action == ObjectDelta.ACTION_UPDATE == "Update"
    assert delta.event_type == "testapp.book.updated"
    assert actor_of(delta) == actor_ref(user)
    assert values(delta) == {"title": ("Old", "New")}
    assert delta.data == {
        "id": book.pk,
        "author_id": book.author_id,
        "title": "New",
        "pages": 10,
        "price": None,
        "published": None,
    }
    attribute = only(attribute_deltas(delta))
    assert attribute.action == AttributeDelta.ACTION_SET == "Set"
    assert actor_of(attribute) == actor_ref(user)


def test_asave_of_a_loaded_instance_records_an_update(user):
    book = make_book(title="Old")

    async def update():
        async with C.via_actor(user):
            loaded = await Book.objects.aget(pk=book.pk)
            loaded.title = "Async"
            await loaded.asave()

    async_to_sync(update)()
    delta = only(object_deltas(book))
    assert delta.action == "Update"
    assert values(delta) == {"title": ("Old", "Async")}
    assert actor_of(delta) == actor_ref(user)


@pytest.mark.django_db(transaction=True)
def test_asave_and_adelete_in_autocommit_mode(user):
    async def scenario():
        async with C.via_actor(user):
            author = await Author.objects.acreate(name="A")
            author.name = "B"
            await author.asave()
            await author.adelete()
        return author

    author = async_to_sync(scenario)()
    deltas = object_deltas(Author)
    assert [delta.action for delta in deltas] == ["Create", "Update", "Delete"]
    assert values(deltas[1]) == {"name": ("A", "B")}
    assert deltas[2].data["name"] == "B"
    assert {delta.content_id for delta in deltas} == {str(deltas[0].data["id"])}
    assert author.pk is None
    assert len({delta.revision_id for delta in deltas}) == 1


def test_asyncio_run_of_a_coroutine_records_like_a_sync_save(user):
    # The ORM's async methods run in a worker thread; the context must follow them there.
    book = make_book(title="Old")

    async def update():
        async with C.via_actor(user):
            loaded = await Book.objects.aget(pk=book.pk)
            loaded.pages = 99
            await loaded.asave()

    async_to_sync(update)()
    assert values(only(object_deltas(book))) == {"pages": (0, 99)}


def test_unset_action_when_the_new_value_is_none_or_empty(user):
    book = make_book(price=Decimal("9.99"))
    author = book.author
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        book.price = None
        book.save()
        author = Author.objects.get(pk=author.pk)
        author.email = "x@example.com"
        author.save()
        author.email = ""
        author.save()
    price = only(attribute_deltas(only(object_deltas(book))))
    assert (price.action, price.old_value, price.new_value) == ("Unset", "9.99", None)
    set_email, unset_email = (only(attribute_deltas(delta)) for delta in object_deltas(author))
    assert (set_email.action, set_email.new_value) == ("Set", "x@example.com")
    assert (unset_email.action, unset_email.old_value, unset_email.new_value) == (
        "Unset",
        "x@example.com",
        "",
    )


def test_falsy_values_other_than_none_and_empty_string_are_set(user):
    book = make_book(pages=5)
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        book.pages = 0
        book.save()
    attribute = only(attribute_deltas(only(object_deltas(book))))
    assert (attribute.action, attribute.new_value) == ("Set", 0)


# Delete -------------------------------------------------------------------------------------


def test_delete_records_a_delete_delta_with_the_pre_deletion_state(user):
    author = make_author(name="Gone", email="gone@example.com")
    pk = author.pk
    with C.via_actor(user), C.via_object_delta_description("Cleanup"):
        Author.objects.get(pk=pk).delete()

    delta = only(object_deltas(Author, pk))
    assert delta.action == ObjectDelta.ACTION_DELETE == "Delete"
    assert delta.event_type == "testapp.author.deleted"
    assert delta.description == "Cleanup"
    assert actor_of(delta) == actor_ref(user)
    assert delta.data == {"id": pk, "name": "Gone", "email": "gone@example.com", "user_id": None}
    assert attribute_deltas(delta) == []
    assert not Author.objects.filter(pk=pk).exists()


def test_adelete_records_like_delete(user):
    author = make_author(name="Async gone")
    pk = author.pk

    async def delete():
        async with C.via_actor(user):
            loaded = await Author.objects.aget(pk=pk)
            await loaded.adelete()

    async_to_sync(delete)()
    delta = only(object_deltas(Author, pk))
    assert delta.action == "Delete"
    assert delta.data["name"] == "Async gone"
    assert actor_of(delta) == actor_ref(user)


def test_deleting_an_instance_changed_in_memory_records_the_database_state(user):
    author = make_author(name="In the database")
    with C.via_actor(user):
        loaded = Author.objects.get(pk=author.pk)
        loaded.name = "Only in memory"
        loaded.delete()
    assert only(object_deltas(Author, author.pk)).data["name"] == "In the database"


# The source README's collaborative revision ---------------------------------------------------


def deserialize(data: dict, pk=None) -> Ledger:
    """Build a new Ledger from request data, or load one and apply the data to it."""
    if pk is None:
        return Ledger(**data)
    instance = Ledger.objects.get(pk=pk)
    for name, value in data.items():
        setattr(instance, name, value)
    return instance


def readme_view(user, data: dict, pk=None) -> Ledger:
    """The source README's collaborative example, line for line."""
    with C.via_actor(user):
        C.set_revision_description("Imported from the bank")
        instance = deserialize(data, pk)
        local_amount = instance.amount * instance.exchange_rate
        if instance.local_amount != local_amount:
            with (
                C.via_actor(None),
                C.via_attribute_delta_description("Corrected by the system."),
            ):
                instance.local_amount = local_amount
        instance.save()
    return instance


def test_collaborative_revision_of_a_new_instance_attributes_each_field_to_its_actor(user):
    ledger = readme_view(
        user, {"amount": Decimal("100.00"), "exchange_rate": Decimal("1.5"), "memo": "Rent"}
    )

    revision = only(revisions())
    assert revision.description == "Imported from the bank"
    delta = only(object_deltas(ledger))
    assert delta.action == "Create"
    assert actor_of(delta) == actor_ref(user)
    assert delta.description == ""
    recorded = changes(delta)
    assert recorded["amount"] == [("Set", None, "100.00", actor_ref(user), "")]
    assert recorded["exchange_rate"] == [("Set", None, "1.5000", actor_ref(user), "")]
    assert recorded["memo"] == [("Set", None, "Rent", actor_ref(user), "")]
    # The auto primary key is Django's doing, during save().
    assert recorded["id"] == [("Set", None, ledger.pk, SYSTEM, "")]
    assert recorded["local_amount"][-1] == (
        "Set",
        recorded["local_amount"][-1][1],
        "150.00",
        SYSTEM,
        "Corrected by the system.",
    )
    assert {entry[3] for entry in recorded["local_amount"]} <= {SYSTEM, actor_ref(user)}
    assert delta.data["local_amount"] == "150.00"
    assert Revision.objects.get().get_actors() == [None, user]


def test_collaborative_revision_of_a_loaded_instance_attributes_each_field_to_its_actor(user):
    ledger = make_ledger(amount=Decimal("10.00"), local_amount=Decimal("10.00"))
    readme_view(user, {"amount": Decimal("20.00"), "exchange_rate": Decimal("2.0000")}, ledger.pk)

    revision = only(revisions())
    assert revision.description == "Imported from the bank"
    delta = only(object_deltas(ledger))
    assert delta.action == "Update"
    assert actor_of(delta) == actor_ref(user)
    assert changes(delta) == {
        "amount": [("Set", "10.00", "20.00", actor_ref(user), "")],
        "exchange_rate": [("Set", "1.0000", "2.0000", actor_ref(user), "")],
        "local_amount": [("Set", "10.00", "40.00", SYSTEM, "Corrected by the system.")],
    }
    ledger.refresh_from_db()
    assert ledger.local_amount == Decimal("40.00")
    assert delta.data["local_amount"] == "40.00"


def test_collaborative_revision_loaded_inside_the_context(user):
    ledger = make_ledger(amount=Decimal("10.00"), local_amount=Decimal("10.00"))
    with C.via_actor(user):
        instance = Ledger.objects.get(pk=ledger.pk)
        instance.amount = Decimal("30.00")
        with C.via_actor(None), C.via_attribute_delta_description("Corrected by the system."):
            instance.local_amount = instance.amount * instance.exchange_rate
        instance.memo = "after the correction"
        instance.save()
    recorded = changes(only(object_deltas(ledger)))
    assert {field: [entry[3] for entry in entries] for field, entries in recorded.items()} == {
        "amount": [actor_ref(user)],
        "local_amount": [SYSTEM],
        "memo": [actor_ref(user)],
    }
    assert recorded["local_amount"][0][4] == "Corrected by the system."
    assert recorded["memo"][0][4] == ""


# Collapsing ----------------------------------------------------------------------------------


def test_repeated_assignments_by_one_actor_collapse_into_one_attribute_delta(user):
    book = make_book(title="Start", pages=1)
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        book.title = "First"
        with C.via_actor(None):  # another actor changes another field in between
            book.pages = 2
        book.title = "Second"
        with C.via_actor(user):  # same actor, new block: still the same span
            book.title = "Third"
        book.title = "Last"
        book.save()
    recorded = changes(only(object_deltas(book)))
    assert recorded["title"] == [("Set", "Start", "Last", actor_ref(user), "")]
    assert recorded["pages"] == [("Set", 1, 2, SYSTEM, "")]


def test_a_collapsed_attribute_delta_keeps_the_description_of_its_last_assignment(user):
    book = make_book(title="Start")
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        with C.via_attribute_delta_description("first"):
            book.title = "One"
        with C.via_attribute_delta_description("second"):
            book.title = "Two"
        book.save()
    assert changes(only(object_deltas(book)))["title"] == [
        ("Set", "Start", "Two", actor_ref(user), "second")
    ]


def test_assignments_by_different_actors_stay_separate_attribute_deltas(user, other_user):
    book = make_book(title="Start")
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        book.title = "By Alice"
        with C.via_actor(other_user):
            book.title = "By Bob"
        book.title = "Alice again"
        book.save()
    assert changes(only(object_deltas(book)))["title"] == [
        ("Set", "Start", "By Alice", actor_ref(user), ""),
        ("Set", "By Alice", "By Bob", actor_ref(other_user), ""),
        ("Set", "By Bob", "Alice again", actor_ref(user), ""),
    ]


def test_set_actor_inside_a_block_splits_spans_too(user, other_user):
    book = make_book(title="Start")
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        book.title = "Alice"
        C.set_actor(other_user)
        book.title = "Bob"
        C.unset_actor()
        book.pages = 7
        book.save()
    recorded = changes(only(object_deltas(book)))
    assert [entry[3] for entry in recorded["title"]] == [actor_ref(user), actor_ref(other_user)]
    assert recorded["pages"] == [("Set", 0, 7, actor_ref(user), "")]


def test_assigning_a_field_back_to_its_stored_value_records_nothing(user):
    book = make_book(title="Same")
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        book.title = "Changed"
        with C.via_actor(None):
            book.pages = 3
        book.title = "Same"
        book.save()
    assert values(only(object_deltas(book))) == {"pages": (0, 3)}


def test_a_save_that_changes_nothing_records_nothing_and_creates_no_revision(user):
    book = make_book(title="Same", price=Decimal("1.50"))
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.save()
        loaded.title = "Same"
        loaded.price = Decimal("1.5")  # equal to the stored value
        loaded.save()
        book.save()  # an instance created outside the context
    assert history_counts() == (0, 0, 0)


def test_several_saves_of_one_row_in_one_context_give_one_object_delta_each(user):
    book = make_book(title="v0")
    with C.via_actor(user):
        book = Book.objects.get(pk=book.pk)
        for number in range(1, 4):
            book.title = f"v{number}"
            book.save()
    deltas = object_deltas(book)
    assert [values(delta) for delta in deltas] == [
        {"title": ("v0", "v1")},
        {"title": ("v1", "v2")},
        {"title": ("v2", "v3")},
    ]
    assert len({delta.revision_id for delta in deltas}) == 1


def test_created_then_updated_in_one_context_records_create_then_update(user):
    with C.via_actor(user):
        author = Author(name="First")
        author.save()
        author.name = "Second"
        author.save()
    create, update = object_deltas(author)
    assert create.action == "Create"
    assert create.data["name"] == "First"
    assert update.action == "Update"
    assert values(update) == {"name": ("First", "Second")}


# Revisions -----------------------------------------------------------------------------------


def test_one_lazily_created_revision_per_outermost_context(user):
    with C.via_actor(user):
        assert Revision.objects.count() == 0
        author = make_author()
        assert Revision.objects.count() == 1
        with C.via_actor(None), Context():
            make_book(author=author)
        author.name = "Renamed"
        author.save()
    with C.via_actor(user):
        make_author()
    first, second = revisions()
    assert {delta.revision_id for delta in object_deltas(Book)} == {first.pk}
    assert {delta.revision_id for delta in object_deltas(author)} == {first.pk}
    assert len(first.get_object_deltas()) == 3
    assert len(second.get_object_deltas()) == 1


def test_a_context_that_writes_nothing_creates_no_revision(user):
    book = make_book()
    with C.via_actor(user), C.via_revision_description("Nothing"):
        Book.objects.get(pk=book.pk)
        make_author.__name__  # noqa: B018 - nothing saved
    with C.via_actor(user), C.as_disabled():
        make_author()
    assert Revision.objects.count() == 0


def test_via_revision_puts_deltas_in_the_given_revision(user):
    existing = Revision.objects.create(description="Given")
    with C.via_actor(user), C.via_revision(existing):
        author = make_author()
    with C.via_revision(existing):
        author.name = "Renamed"
        author.save()
    assert only(revisions()) == existing
    assert {delta.revision_id for delta in object_deltas(author)} == {existing.pk}
    assert len(attribute_deltas()) > 0
    assert {attribute.revision_id for attribute in attribute_deltas()} == {existing.pk}


def test_a_lazy_revision_callable_is_called_once_at_the_first_write(user):
    calls = []

    def create_revision():
        calls.append(1)
        return Revision.objects.create(description="Lazy")

    with C.via_actor(user), C.via_revision(create_revision):
        assert calls == []
        make_author()
        make_author()
    with C.via_revision(create_revision):
        pass  # never written: never called
    assert calls == [1]
    revision = only(revisions())
    assert revision.description == "Lazy"
    assert len(revision.get_object_deltas()) == 2


def test_the_revision_description_comes_from_the_context(user):
    with C.via_actor(user):
        C.set_revision_description("Set before the first write")
        make_author()
    assert only(revisions()).description == "Set before the first write"


def test_object_delta_description_comes_from_the_context(user):
    with C.via_actor(user), C.via_object_delta_description("Why"):
        author = make_author()
    assert only(object_deltas(author)).description == "Why"


# Actors --------------------------------------------------------------------------------------


def test_a_non_user_model_instance_can_act(user):
    organization = make_author(name="ACME")
    with C.via_actor(organization):
        book = make_book(author=organization)
    delta = only(object_deltas(book))
    assert actor_of(delta) == (ContentType.objects.get_for_model(Author).pk, str(organization.pk))
    assert delta.actor == organization
    assert {
        actor_of(attribute) for attribute in attribute_deltas(delta) if attribute.field_name != "id"
    } == {actor_ref(organization)}


def test_none_is_the_system_actor():
    with C.via_actor(None):
        author = make_author()
    delta = only(object_deltas(author))
    assert actor_of(delta) == SYSTEM
    assert delta.actor is None
    assert {actor_of(attribute) for attribute in attribute_deltas(delta)} == {SYSTEM}


def test_a_context_without_actor_records_the_system():
    with Context():
        author = make_author()
    assert actor_of(only(object_deltas(author))) == SYSTEM


def test_actors_of_different_models_in_one_revision(user):
    organization = make_author(name="ACME")
    with C.via_actor(user):
        first = make_author()
        with C.via_actor(organization):
            second = make_author()
        with C.via_actor(None):
            third = make_author()
    assert [actor_of(only(object_deltas(obj))) for obj in (first, second, third)] == [
        actor_ref(user),
        actor_ref(organization),
        SYSTEM,
    ]
    actors = only(revisions()).get_actors()
    assert None in actors
    assert user in actors
    assert organization in actors


def test_an_actor_that_is_not_a_model_instance_is_refused_and_nothing_is_kept():
    with (
        pytest.raises(TypeError, match="model instance or None"),
        transaction.atomic(),
        C.via_actor("alice"),
    ):
        make_author(name="Refused")
    assert not Author.objects.filter(name="Refused").exists()
    assert history_counts() == (0, 0, 0)


# Values Django sets during save --------------------------------------------------------------


def test_auto_primary_key_is_attributed_to_the_system(user):
    with C.via_actor(user):
        author = Author(name="Ann")
        author.save()
    recorded = changes(only(object_deltas(author)))
    assert recorded["id"] == [("Set", None, author.pk, SYSTEM, "")]
    assert recorded["name"][0][3] == actor_ref(user)


def test_uuid_primary_key_and_auto_now_fields_are_attributed_to_the_system(user):
    with C.via_actor(user):
        stamped = Stamped(label="first")
        stamped.save()
    recorded = changes(only(object_deltas(stamped)))
    assert recorded["id"] == [("Set", None, str(stamped.pk), SYSTEM, "")]
    assert recorded["created"] == [("Set", None, stamped.created.isoformat(), SYSTEM, "")]
    assert recorded["updated"] == [("Set", None, stamped.updated.isoformat(), SYSTEM, "")]
    assert recorded["label"] == [("Set", None, "first", actor_ref(user), "")]


def test_an_explicit_uuid_primary_key_belongs_to_whoever_gave_it(user):
    pk = uuid.uuid4()
    with C.via_actor(user):
        stamped = Stamped(id=pk, label="explicit")
        stamped.save()
    assert changes(only(object_deltas(stamped)))["id"] == [
        ("Set", None, str(pk), actor_ref(user), "")
    ]


def test_auto_now_on_update_is_attributed_to_the_system(user):
    stamped = Stamped.objects.create(label="first")
    with C.via_actor(user):
        stamped = Stamped.objects.get(pk=stamped.pk)
        before = stamped.updated
        stamped.label = "second"
        stamped.save()
    recorded = changes(only(object_deltas(stamped)))
    assert recorded["label"] == [("Set", "first", "second", actor_ref(user), "")]
    assert recorded["updated"] == [
        ("Set", before.isoformat(), stamped.updated.isoformat(), SYSTEM, "")
    ]
    assert "created" not in recorded


def test_json_binary_and_duration_values_are_recorded_losslessly(user):
    with C.via_actor(user):
        stamped = Stamped.objects.create(
            label="types",
            payload={"nested": [1, "two", None]},
            blob=b"\x00\xffbytes",
            duration=datetime.timedelta(days=1, microseconds=5),
        )
    delta = only(object_deltas(stamped))
    assert delta.data["payload"] == {"nested": [1, "two", None]}
    assert delta.data["blob"] == "AP9ieXRlcw=="
    assert delta.data["duration"] == "P1DT00H00M00.000005S"
    assert delta.data["created"] == stamped.created.isoformat()


# Settings: what is tracked -------------------------------------------------------------------


def test_nothing_is_recorded_outside_a_context_by_default():
    author = make_author()
    author.name = "Changed"
    author.save()
    author.delete()
    assert history_counts() == (0, 0, 0)


def test_nothing_is_recorded_where_tracking_is_disabled(user):
    book = make_book()
    with C.via_actor(user):
        C.disable()
        make_author()
        book.title = "Disabled"
        book.save()
        C.enable()
        with C.as_disabled():
            make_author().delete()
    assert history_counts() == (0, 0, 0)


def test_an_instance_loaded_while_disabled_and_saved_while_enabled_records_its_real_change(user):
    book = make_book(title="Before")
    with C.via_actor(user):
        with C.as_disabled():
            loaded = Book.objects.get(pk=book.pk)
            loaded.title = "While disabled"
        loaded.save()
    assert values(only(object_deltas(book))) == {"title": ("Before", "While disabled")}


def test_excluded_model_records_nothing(user):
    with C.via_actor(user):
        untracked = Untracked.objects.create(name="x")
        untracked.name = "y"
        untracked.save()
        untracked.delete()
    assert history_counts() == (0, 0, 0)


def test_excluded_field_never_appears_and_alone_records_nothing(user):
    with C.via_actor(user):
        secret = Secret.objects.create(name="s", pin="1234", internal="hidden-value")
        secret.internal = "hidden-again"
        secret.save()
    delta = only(object_deltas(secret))
    assert "internal" not in delta.data
    assert "internal" not in {attribute.field_name for attribute in attribute_deltas()}
    assert "hidden" not in dump_history()


def dump_history() -> str:
    """Every column of every history row, as text."""
    rows = [
        *Revision.objects.values_list(),
        *ObjectDelta.objects.values_list(),
        *AttributeDelta.objects.values_list(),
    ]
    return json.dumps([[str(value) for value in row] for row in rows])


def test_masked_field_stores_the_mask_and_never_the_value(user):
    with C.via_actor(user):
        secret = Secret.objects.create(name="s", pin="1234")
        secret.pin = "9876"
        secret.save()
        secret.delete()
    create, update, delete = object_deltas(Secret, secret.pk if secret.pk else None) or [None] * 3
    assert "pin" not in create.data
    assert "pin" not in delete.data
    assert values(create)["pin"] == (None, revy_settings.MASK)
    assert values(update) == {"pin": (revy_settings.MASK, revy_settings.MASK)}
    history = dump_history()
    assert "1234" not in history
    assert "9876" not in history


def test_user_password_and_its_hash_never_reach_the_history_tables():
    User = get_user_model()
    with C.via_actor(None):
        created = User.objects.create_user("carol", password="Raw-Password-1")
        first_hash = created.password
        created.set_password("Raw-Password-2")
        second_hash = created.password
        created.save()
        created.delete()
    history = dump_history()
    for secret in ("Raw-Password-1", "Raw-Password-2", first_hash, second_hash):
        assert secret not in history
    for delta in object_deltas(User):
        assert "password" not in delta.data
    masked = [a for a in attribute_deltas() if a.field_name == "password"]
    assert masked
    assert {(a.new_value) for a in masked} == {revy_settings.MASK}


@override_settings(REVY_MODELS=["testapp.Book"])
def test_revy_models_limits_tracking_to_the_listed_models(user):
    with C.via_actor(user):
        book = make_book()
    assert object_deltas(Author) == []
    assert only(object_deltas(book)).action == "Create"


@override_settings(REVY_MODELS=["auth"])
def test_revy_models_accepts_app_labels(user, other_user):
    with C.via_actor(user):
        make_author()
        other_user.first_name = "Bob"
        other_user.save()
    assert object_deltas(Author) == []
    assert values(only(object_deltas(other_user))) == {"first_name": ("", "Bob")}


@override_settings(REVY_EXCLUDED_MODELS=["testapp.Author"])
def test_revy_excluded_models_can_be_changed_in_tests(user):
    with C.via_actor(user):
        book = make_book()
    assert object_deltas(Author) == []
    assert only(object_deltas(book)).action == "Create"


@override_settings(REVY_EXCLUDED_FIELDS=["testapp.Book.pages"])
def test_revy_excluded_fields_can_be_changed_in_tests(user):
    with C.via_actor(user):
        book = make_book(pages=3)
        book.pages = 4
        book.save()
    assert "pages" not in only(object_deltas(book)).data
    assert "pages" not in {a.field_name for a in attribute_deltas()}


@override_settings(REVY_TRACK_OUTSIDE_CONTEXT=True)
def test_track_outside_context_records_every_change_with_the_system_actor():
    author = make_author(name="Outside")
    author.name = "Still outside"
    author.save()
    author.delete()
    deltas = object_deltas(Author)
    assert [delta.action for delta in deltas] == ["Create", "Update", "Delete"]
    assert {actor_of(delta) for delta in deltas} == {SYSTEM}
    assert Revision.objects.count() == 3  # every write is its own revision


@override_settings(REVY_TRACK_OUTSIDE_CONTEXT=True)
def test_track_outside_context_still_honours_a_disabled_context():
    with C.as_disabled():
        make_author()
    assert history_counts() == (0, 0, 0)


# Transactions --------------------------------------------------------------------------------


def test_a_change_whose_transaction_rolls_back_leaves_no_delta(user):
    book = make_book(title="Kept")
    with pytest.raises(Boom), transaction.atomic(), C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Rolled back"
        loaded.save()
        make_author()
        raise Boom
    assert history_counts() == (0, 0, 0)
    book.refresh_from_db()
    assert book.title == "Kept"


def test_a_failure_while_writing_history_rolls_the_change_back(user):
    book = make_book(title="Kept")
    unsaved_actor = Author(name="Not saved yet")
    with (
        pytest.raises(ValueError, match="must be saved"),
        transaction.atomic(),
        C.via_actor(unsaved_actor),
    ):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Never"
        loaded.save()
    book.refresh_from_db()
    assert book.title == "Kept"
    assert history_counts() == (0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_failure_while_writing_history_rolls_back_in_autocommit_mode(user):
    book = make_book(title="Kept")
    with C.via_actor(Author(name="Not saved yet")):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Never"
        with pytest.raises(ValueError, match="must be saved"):
            loaded.save()
        with pytest.raises(ValueError, match="must be saved"):
            Author.objects.create(name="Never created")
        with pytest.raises(ValueError, match="must be saved"):
            book.delete()
    book.refresh_from_db()
    assert book.title == "Kept"
    assert not Author.objects.filter(name="Never created").exists()
    assert history_counts() == (0, 0, 0)
    # The context works again once the actor is valid.
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Now"
        loaded.save()
    assert values(only(object_deltas(book))) == {"title": ("Kept", "Now")}


@pytest.mark.django_db(transaction=True)
def test_a_failed_write_then_a_good_one_in_the_same_context_recreates_the_revision(user):
    book = make_book(title="Kept")
    with C.via_actor(user):
        with pytest.raises(ValueError), C.via_actor(Author(name="unsaved")):
            make_author(name="first try")
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Second try"
        loaded.save()
    revision = only(revisions())
    assert only(object_deltas(book)).revision_id == revision.pk


def test_savepoint_rollback_after_the_revision_was_created_then_another_write(user):
    book = make_book(title="Start")
    with C.via_actor(user), C.via_revision_description("Retry"):
        with pytest.raises(Boom), transaction.atomic():
            make_author(name="Rolled back")
            assert Revision.objects.count() == 1
            raise Boom
        assert Revision.objects.count() == 0
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "After the rollback"
        loaded.save()
        make_author(name="Kept")
    revision = only(revisions())
    assert revision.description == "Retry"
    assert [delta.action for delta in revision.get_object_deltas()] == ["Update", "Create"]
    assert not Author.objects.filter(name="Rolled back").exists()


def test_a_revision_created_before_a_savepoint_survives_its_rollback(user):
    with C.via_actor(user):
        first = make_author(name="Kept")
        with pytest.raises(Boom), transaction.atomic():
            make_author(name="Rolled back")
            raise Boom
        second = make_author(name="Also kept")
    revision = only(revisions())
    assert [delta.content_id for delta in revision.get_object_deltas()] == [
        str(first.pk),
        str(second.pk),
    ]


# Partial saves, proxies, inheritance, refresh, copies ----------------------------------------


def test_update_fields_records_only_the_saved_fields(user):
    book = make_book(title="Title", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Saved"
        loaded.pages = 2
        loaded.save(update_fields=["title"])
        first = object_deltas(book)[-1]
        assert values(first) == {"title": ("Title", "Saved")}
        assert first.data["pages"] == 1  # the row still holds the old value
        loaded.save()
    second = object_deltas(book)[-1]
    assert values(second) == {"pages": (1, 2)}
    assert second.data["title"] == "Saved"
    assert len(object_deltas(book)) == 2


def test_update_fields_with_nothing_changed_records_nothing(user):
    book = make_book(title="Title")
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.pages = 5
        loaded.save(update_fields=["title"])
    assert history_counts() == (0, 0, 0)


def test_deferred_fields_save_records_the_loaded_fields_change(user):
    book = make_book(title="Title", pages=3)
    with C.via_actor(user):
        loaded = Book.objects.only("title").get(pk=book.pk)
        loaded.title = "Deferred"
        loaded.save()
    delta = only(object_deltas(book))
    assert values(delta) == {"title": ("Title", "Deferred")}
    assert delta.data["pages"] == 3


def test_proxy_model_changes_are_recorded_for_the_concrete_model(user):
    with C.via_actor(user):
        proxy = ProxyBook.objects.create(author=make_author(), title="Proxy")
        proxy.title = "Proxy renamed"
        proxy.save()
    create, update = object_deltas(Book, proxy.pk)
    assert create.event_type == "testapp.book.created"
    assert values(update) == {"title": ("Proxy", "Proxy renamed")}
    assert object_deltas(ProxyBook, proxy.pk) == [create, update]


def test_multi_table_inheritance_records_the_child_with_its_parents_fields(user):
    with C.via_actor(user):
        restaurant = Restaurant.objects.create(name="Luigi", serves_pizza=True)
        restaurant = Restaurant.objects.get(pk=restaurant.pk)
        restaurant.name = "Mario"
        restaurant.serves_pizza = False
        restaurant.save()
    create, update = object_deltas(Restaurant, restaurant.pk)
    assert create.event_type == "testapp.restaurant.created"
    assert create.data["name"] == "Luigi"
    assert create.data["serves_pizza"] is True
    assert values(update) == {"name": ("Luigi", "Mario"), "serves_pizza": (True, False)}


def test_multi_table_inheritance_delete_records_the_childs_state(user):
    restaurant = Restaurant.objects.create(name="Closed", serves_pizza=True)
    with C.via_actor(user):
        Restaurant.objects.get(pk=restaurant.pk).delete()
    delta = only(object_deltas(Restaurant, restaurant.pk))
    assert delta.action == "Delete"
    assert actor_of(delta) == actor_ref(user)
    assert delta.data["name"] == "Closed"
    assert not Place.objects.filter(pk=restaurant.pk).exists()


def test_plain_parent_rows_are_recorded_on_their_own(user):
    with C.via_actor(user):
        place = Place.objects.create(name="Park")
    assert only(object_deltas(place)).data == {"id": place.pk, "name": "Park"}


def test_refresh_from_db_then_save_records_only_real_changes(user):
    book = make_book(title="Stored", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Discarded"
        loaded.refresh_from_db()
        loaded.save()
        assert history_counts() == (0, 0, 0)
        # Changed behind its back (untracked), then refreshed: old values are the new ones.
        with C.as_disabled():
            Book.objects.filter(pk=book.pk).update(pages=2)
        loaded.refresh_from_db()
        loaded.pages = 3
        loaded.save()
    assert values(only(object_deltas(book))) == {"pages": (2, 3)}


def test_refresh_from_db_of_some_fields_keeps_pending_changes_of_the_others(user):
    book = make_book(title="Stored", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Kept"
        loaded.pages = 50
        with C.as_disabled():
            Book.objects.filter(pk=book.pk).update(pages=2)
        loaded.refresh_from_db(fields=["pages"])
        assert loaded.pages == 2
        loaded.save()
    assert values(only(object_deltas(book))) == {"title": ("Stored", "Kept")}


def test_an_instance_loaded_outside_a_context_records_correct_old_values(user):
    book = make_book(title="Stored", pages=1)
    loaded = Book.objects.get(pk=book.pk)
    loaded.title = "Changed outside"
    Book.objects.filter(pk=book.pk).update(pages=5)  # the row moved on meanwhile
    with C.via_actor(user):
        loaded.pages = 6
        loaded.save()
    assert values(only(object_deltas(book))) == {
        "title": ("Stored", "Changed outside"),
        "pages": (5, 6),
    }
    assert {actor_of(a) for a in attribute_deltas()} == {actor_ref(user)}


def test_an_instance_kept_across_contexts_records_the_rows_real_old_values(user, other_user):
    book = make_book(title="Stored")
    with C.via_actor(user):
        kept = Book.objects.get(pk=book.pk)
    with C.via_actor(other_user):
        other = Book.objects.get(pk=book.pk)
        other.title = "Changed by Bob"
        other.save()
    with C.via_actor(user):
        kept.pages = 10
        kept.save()  # writes every field: the title goes back to "Stored"
    last = object_deltas(book)[-1]
    assert values(last) == {"title": ("Changed by Bob", "Stored"), "pages": (0, 10)}


def test_a_shallow_copy_is_tracked_on_its_own(user):
    book = make_book(title="Original", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        duplicate = copy.copy(loaded)
        duplicate.title = "Copy"
        duplicate.save()
        assert loaded.title == "Original"
        loaded.pages = 2
        loaded.save(update_fields=["pages"])
    first, second = object_deltas(book)
    assert values(first) == {"title": ("Original", "Copy")}
    assert values(second) == {"pages": (1, 2)}
    assert second.data["title"] == "Copy"


def test_a_deep_copy_starts_afresh_and_the_original_keeps_its_state(user):
    book = make_book(title="Original", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Assigned before the copy"
        duplicate = copy.deepcopy(loaded)
        assert state_of(duplicate) is None
        assert state_of(loaded) is not None
        duplicate.pages = 2
        duplicate.save()
    (delta,) = object_deltas(book)
    # The copy compared with the database: both its changes, by the actor of the save.
    assert values(delta) == {"title": ("Original", "Assigned before the copy"), "pages": (1, 2)}


def test_a_copy_saved_as_a_new_row_records_a_create(user):
    book = make_book(title="Original")
    with C.via_actor(user):
        duplicate = copy.copy(Book.objects.get(pk=book.pk))
        duplicate.pk = None
        duplicate._state.adding = True
        duplicate.title = "Duplicate"
        duplicate.save()
    assert duplicate.pk != book.pk
    assert only(object_deltas(duplicate)).action == "Create"
    assert object_deltas(book) == []


def test_two_instances_of_one_row_in_one_context_record_the_rows_real_old_values(user):
    book = make_book(title="Stored", pages=1)
    with C.via_actor(user):
        first = Book.objects.get(pk=book.pk)
        second = Book.objects.get(pk=book.pk)
        first.title = "From the first"
        first.save()
        second.pages = 2
        second.save()  # also writes its stale title back
    one, two = object_deltas(book)
    assert values(one) == {"title": ("Stored", "From the first")}
    assert values(two) == {"title": ("From the first", "Stored"), "pages": (1, 2)}
    assert two.data["title"] == "Stored"


def test_an_instance_whose_row_was_deleted_meanwhile_records_a_create_when_saved_again(user):
    book = make_book(title="Phoenix")
    with C.via_actor(user):
        survivor = Book.objects.get(pk=book.pk)
        Book.objects.get(pk=book.pk).delete()
        survivor.save()  # Django inserts the row again
    assert [delta.action for delta in object_deltas(book)] == ["Delete", "Create"]
    assert object_deltas(book)[1].data["title"] == "Phoenix"


# Expressions ---------------------------------------------------------------------------------


def test_an_f_expression_records_the_value_the_database_computed(user):
    book = make_book(pages=10)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.pages = F("pages") + 5
        loaded.title = "Plus five"
        loaded.save()
        # Django 6 reads the value back; before it, the instance keeps the expression and a
        # second save applies it again. Either way the history follows the database.
        applies_again = hasattr(loaded.pages, "resolve_expression")
        loaded.save()
    deltas = object_deltas(book)
    assert changes(deltas[0])["pages"] == [("Set", 10, 15, actor_ref(user), "")]
    assert deltas[0].data["pages"] == 15
    book.refresh_from_db()
    if applies_again:
        assert [values(delta) for delta in deltas[1:]] == [{"pages": (15, 20)}]
    else:
        assert len(deltas) == 1
    assert deltas[-1].data["pages"] == book.pages


def test_an_f_expression_with_update_fields(user):
    book = make_book(pages=1, title="Kept")
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.pages = F("pages") * 3
        loaded.save(update_fields=["pages"])
        loaded.refresh_from_db()
        loaded.pages = 4
        loaded.save()
    first, second = object_deltas(book)
    assert values(first) == {"pages": (1, 3)}
    assert values(second) == {"pages": (3, 4)}


# Content types -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_content_types_recreated_with_new_ids_are_picked_up():
    # `flush` between transactional tests re-creates content types, possibly with new ids.
    with Context():
        make_author()
    old = ContentType.objects.get_for_model(Author)
    ObjectDelta.objects.all().delete()
    Permission.objects.filter(content_type=old).delete()
    ContentType.objects.filter(pk=old.pk).update(id=old.pk + 1000)
    ContentType.objects.clear_cache()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    with Context():
        author = make_author()
    delta = only(object_deltas(author))
    assert delta.content_type_id == old.pk + 1000
    assert {a.content_type_id for a in attribute_deltas(delta)} == {old.pk + 1000}


def test_a_save_rolled_back_with_its_savepoint_is_recorded_when_saved_again(user):
    book = make_book(title="Stored", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        with pytest.raises(Boom), transaction.atomic():
            loaded.title = "Paid"
            loaded.save()
            raise Boom  # e.g. the payment that went with it failed
        assert object_deltas(book) == []
        loaded.pages = 2
        loaded.save()  # writes the title again, for real this time
    assert values(only(object_deltas(book))) == {"title": ("Stored", "Paid"), "pages": (1, 2)}


def test_a_save_in_a_released_savepoint_is_not_recorded_twice(user):
    book = make_book(title="Stored", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        with transaction.atomic():
            loaded.title = "Kept"
            loaded.save()
        loaded.pages = 2
        with count_queries() as queries:
            loaded.save()
        # Whether the savepoint was released or rolled back is unknown afterwards: the row
        # is read again once, then the base is trusted again.
        assert len([sql for sql in queries.statements if sql.startswith("SELECT")]) <= 2
        loaded.pages = 3
        with count_queries() as queries:
            loaded.save()
        assert len(queries) == 1 + added(2)
    first, second, third = object_deltas(book)
    assert values(first) == {"title": ("Stored", "Kept")}
    assert values(second) == {"pages": (1, 2)}
    assert values(third) == {"pages": (2, 3)}


def test_an_instance_saved_while_disabled_records_later_changes_from_that_state(user):
    book = make_book(title="Stored", pages=1)
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        with C.as_disabled():
            loaded.title = "Quietly"
            loaded.save()
        loaded.pages = 2
        loaded.save()
    assert values(only(object_deltas(book))) == {"pages": (1, 2)}
    assert only(object_deltas(book)).data["title"] == "Quietly"


@transaction.atomic
def save_in_a_decorated_transaction(instance, fail: bool = False):
    # A decorated function reuses one Atomic object for every call's transaction.
    instance.save()
    if fail:
        raise Boom


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_decorated_transaction_then_another_call_in_the_same_context(user):
    with C.via_actor(user):
        with pytest.raises(Boom):
            save_in_a_decorated_transaction(Author(name="Rolled back"), fail=True)
        kept = Author(name="Kept")
        save_in_a_decorated_transaction(kept)
    revision = only(revisions())
    assert [delta.content_id for delta in revision.get_object_deltas()] == [str(kept.pk)]
    assert not Author.objects.filter(name="Rolled back").exists()


@pytest.mark.django_db(transaction=True)
def test_an_instance_saved_in_a_rolled_back_decorated_transaction_is_recorded_again(user):
    book = make_book(title="Stored")
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.title = "Paid"
        with pytest.raises(Boom):
            save_in_a_decorated_transaction(loaded, fail=True)
        save_in_a_decorated_transaction(loaded)
    assert values(only(object_deltas(book))) == {"title": ("Stored", "Paid")}


# Concurrency ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_asyncio_tasks_record_their_own_actor_and_revision():
    actors = [Author.objects.create(name=f"Actor {number}") for number in range(6)]

    async def request(actor: Author) -> tuple[int, int]:
        async with C.via_actor(actor), C.via_revision_description(f"By {actor.name}"):
            book = await Book.objects.acreate(author=actor, title="Draft")
            await asyncio.sleep(0.001)
            book.title = f"Final by {actor.name}"
            await book.asave()
            await asyncio.sleep(0)
            return book.pk, actor.pk

    async def serve_all():
        return await asyncio.gather(*(request(actor) for actor in actors))

    results = async_to_sync(serve_all)()
    assert Revision.objects.count() == len(actors)
    for book_pk, actor_pk in results:
        deltas = object_deltas(Book, book_pk)
        assert [delta.action for delta in deltas] == ["Create", "Update"]
        assert {actor_of(delta) for delta in deltas} == {
            (ContentType.objects.get_for_model(Author).pk, str(actor_pk))
        }
        revision = Revision.objects.get(pk=deltas[0].revision_id)
        assert revision.description == f"By {Author.objects.get(pk=actor_pk).name}"
        assert list(revision.get_object_deltas()) == deltas


@pytest.mark.django_db(transaction=True)
def test_concurrent_threads_record_their_own_actor_and_revision():
    actors = [Author.objects.create(name=f"Thread {number}") for number in range(4)]
    barrier = threading.Barrier(len(actors))
    turn = threading.Lock()  # SQLite in memory takes one writer at a time
    errors: list[BaseException] = []

    def worker(actor: Author) -> None:
        try:
            with C.via_actor(actor), C.via_revision_description(actor.name):
                barrier.wait(timeout=10)  # every thread is inside its context now
                for step in range(3):
                    with turn:
                        Book.objects.create(author=actor, title=f"{actor.name} {step}")
                    barrier.wait(timeout=10)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(actor,)) for actor in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert Revision.objects.count() == len(actors)
    for actor in actors:
        revision = Revision.objects.get(description=actor.name)
        deltas = list(revision.get_object_deltas())
        assert len(deltas) == 3
        assert {actor_of(delta) for delta in deltas} == {actor_ref(actor)}
        assert {delta.data["title"] for delta in deltas} == {f"{actor.name} {n}" for n in range(3)}


def test_a_long_context_does_not_keep_a_reference_per_row_it_ever_loaded(user):
    book = make_book()
    Review.objects.bulk_create([Review(book=book, text=str(n)) for n in range(5000)])
    with C.via_actor(user):
        for review in Review.objects.iterator(chunk_size=500):
            assert review.text
        assert len(current_scope().tracked) < 2048
        kept = list(Review.objects.order_by("pk")[:3000])  # live instances stay watched
        kept[0].text = "changed"
        kept[0].save()
        assert len(current_scope().tracked) >= len(kept)
    assert values(only(object_deltas(kept[0]))) == {"text": ("0", "changed")}


def test_an_instance_given_a_new_primary_key_records_the_create_of_that_row(user):
    book = make_book(title="Original")
    new_pk = book.pk + 1000
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.pk = new_pk
        loaded.title = "Under a new key"
        loaded.save()  # Django's UPDATE finds no row 1000+, so it INSERTs one
    assert Book.objects.filter(pk__in=[book.pk, new_pk]).count() == 2
    assert object_deltas(book) == []
    delta = only(object_deltas(Book, new_pk))
    assert delta.action == "Create"
    assert delta.data["title"] == "Under a new key"


@override_settings(REVY_MASKED_FIELDS=())
def test_password_hashes_are_masked_even_when_the_setting_forgets_them():
    with C.via_actor(None):
        created = get_user_model().objects.create_user("dave", password="Raw-Password-3")
    history = dump_history()
    assert created.password not in history
    assert "Raw-Password-3" not in history


@override_settings(REVY_EXCLUDED_FIELDS=["testapp.Book.author"])
def test_an_excluded_foreign_key_named_by_field_name_excludes_its_column(user):
    with C.via_actor(user):
        book = make_book()
    assert "author_id" not in only(object_deltas(book)).data
    assert "author_id" not in {a.field_name for a in attribute_deltas()}


def test_dates_decimals_and_datetimes_are_stored_as_exact_strings(user):
    book = make_book(price=Decimal("10.50"), published=datetime.date(2020, 2, 29))
    with C.via_actor(user):
        loaded = Book.objects.get(pk=book.pk)
        loaded.price = Decimal("0.05")
        loaded.published = datetime.date(2024, 1, 1)
        loaded.save()
    delta = only(object_deltas(book))
    assert values(delta) == {
        "price": ("10.50", "0.05"),
        "published": ("2020-02-29", "2024-01-01"),
    }
    assert delta.data["price"] == "0.05"


def test_a_lazy_revision_created_in_a_rolled_back_savepoint_is_put_back(user):
    calls = []

    def create_revision():
        calls.append(1)
        return Revision.objects.create(description="Lazy")

    with C.via_actor(user), C.via_revision(create_revision):
        with pytest.raises(Boom), transaction.atomic():
            make_author(name="Rolled back")
            raise Boom
        kept = make_author(name="Kept")
    assert calls == [1]
    revision = only(revisions())
    assert revision.description == "Lazy"
    assert [delta.content_id for delta in revision.get_object_deltas()] == [str(kept.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_lazy_revision_created_in_a_rolled_back_transaction_is_put_back(user):
    with C.via_actor(user), C.via_revision(lambda: Revision.objects.create(description="Lazy")):
        with pytest.raises(Boom):
            save_in_a_decorated_transaction(Author(name="Rolled back"), fail=True)
        kept = Author(name="Kept")
        save_in_a_decorated_transaction(kept)
    revision = only(revisions())
    assert revision.description == "Lazy"
    assert [delta.content_id for delta in revision.get_object_deltas()] == [str(kept.pk)]


def test_the_history_models_in_use_never_record_themselves(user):
    from revy.contrib.django.registry import is_tracked

    for model in (Revision, ObjectDelta, AttributeDelta):
        assert not is_tracked(model)
    with Context(actor=user):
        make_author()
    assert {delta.event_type for delta in ObjectDelta.objects.all()} == {"testapp.author.created"}


# An instance without a key, saved under its key field's constant default -----------------
# Found by the model-based history test (long profile): Django's delete() leaves the instance
# without its key, even when the deletion is rolled back; its next save takes the key field's
# default ("" for a CharField) and UPDATEs the row that has that key, if there is one.


def test_an_instance_saved_under_its_key_fields_default_updates_the_row_that_has_it(user):
    from tests.trustapp.models import Tag

    Tag.objects.create(slug="", label="a")
    held = Tag.objects.create(slug="t4", label="x")
    held.pk = None  # as Django leaves an instance after delete()
    with C.via_actor(user):
        held.label = "b"
        held.save()
    assert dict(Tag.objects.values_list("pk", "label")) == {"": "b", "t4": "x"}
    (delta,) = object_deltas(Tag, "")
    assert delta.action == "Update"
    assert values(delta) == {"label": ("a", "b")}


def test_a_new_instance_without_its_key_updates_the_row_that_has_the_default_key(user):
    from tests.trustapp.models import Tag

    Tag.objects.create(slug="", label="a")
    with C.via_actor(user):
        Tag(label="c").save()  # Django: UPDATE ... WHERE slug = '' (no default: no INSERT forced)
    assert dict(Tag.objects.values_list("pk", "label")) == {"": "c"}
    (delta,) = object_deltas(Tag, "")
    assert (delta.action, values(delta)) == ("Update", {"label": ("a", "c")})


def test_an_instance_without_its_key_creates_the_row_with_the_default_key(user):
    from tests.trustapp.models import Tag

    held = Tag.objects.create(slug="t4", label="x")
    held.pk = None
    with C.via_actor(user):
        held.save()
    assert dict(Tag.objects.values_list("pk", "label")) == {"": "x", "t4": "x"}
    (delta,) = object_deltas(Tag, "")
    assert delta.action == "Create"


# A multi-table child is saved under its parent's key ----------------------------------------
# Found by the model-based history test (long profile, PostgreSQL): Django saves the parents
# first and then sets the child's link to the key its parent was saved under
# (`Model._save_parents`). delete() clears only the link (the child's own key), so after a
# rolled-back deletion the next save UPDATEs both rows under the parent's key.


def _child_and_parent_deltas(pk):
    from tests.trustapp.models import Place, Shop

    return [(d.action, values(d)) for d in object_deltas(Shop, pk)], [
        (d.action, values(d)) for d in object_deltas(Place, pk)
    ]


def test_a_child_without_its_link_is_saved_under_its_parents_key(user):
    from tests.trustapp.models import Shop

    held = Shop.objects.create(name="p")
    pk = held.pk
    held.place_ptr_id = None  # what delete() leaves, even when the deletion is rolled back
    assert held.pk is None and held.id == pk
    with C.via_actor(user):
        held.name = "q"
        held.save()
    assert list(Shop.objects.values_list("pk", "name")) == [(pk, "q")]
    shop, place = _child_and_parent_deltas(pk)
    assert shop == [("Update", {"name": ("p", "q")})]
    assert place == [("Update", {"name": ("p", "q")})]


def test_a_child_whose_link_and_parent_key_differ_is_saved_under_the_parent_key(user):
    from tests.trustapp.models import Shop

    first, second = Shop.objects.create(name="a"), Shop.objects.create(name="b")
    second.place_ptr_id = first.pk  # Django saves the parent under `id`, then the link follows
    with C.via_actor(user):
        second.name = "c"
        second.save()
    assert dict(Shop.objects.values_list("pk", "name")) == {first.pk: "a", second.pk: "c"}
    assert _child_and_parent_deltas(first.pk) == ([], [])
    shop, place = _child_and_parent_deltas(second.pk)
    assert shop == [("Update", {"name": ("b", "c")})]
    assert place == [("Update", {"name": ("b", "c")})]


# Signal receivers that assign fields ----------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["one statement", "default path"])
def either_path(request, settings):
    settings.REVY_ONE_STATEMENT = request.param


@contextlib.contextmanager
def receiving(signal, sender, receiver):
    signal.connect(receiver, sender=sender)
    try:
        yield
    finally:
        signal.disconnect(receiver, sender=sender)


def _assign_title(sender, instance, **kwargs):
    instance.title = "assigned by a receiver"


def _saved_with(signal, creating: bool) -> Book:
    """A book created, or updated, with `_assign_title` receiving `signal` during the save."""
    author = make_author()
    if not creating:
        with Context():
            book = Book.objects.create(author=author, title="first")
    with receiving(signal, Book, _assign_title), Context():
        if creating:
            return Book.objects.create(author=author, title="saved")
        book.title = "saved"
        book.save()
    return book


@pytest.mark.parametrize("creating", [True, False], ids=["create", "update"])
def test_history_holds_what_was_written_not_what_a_post_save_receiver_assigns(
    either_path, creating
):
    # A post_save receiver runs after the row is written: its assignment is not in the row
    # until the instance is saved again, and history must say the same.
    from revy.contrib.django.history import snapshot

    book = _saved_with(post_save, creating)
    assert Book.objects.get(pk=book.pk).title == snapshot(Book, book.pk).title == "saved"
    assert book.title == "assigned by a receiver"
    with Context():
        book.save()  # now the row holds it
    assert Book.objects.get(pk=book.pk).title == "assigned by a receiver"
    latest = object_deltas(Book, book.pk)[-1]
    assert latest.action == "Update"
    assert [(a.field_name, a.old_value, a.new_value) for a in latest.children.all()] == [
        ("title", "saved", "assigned by a receiver")
    ]


def test_a_post_save_assignment_is_recorded_by_a_later_save_of_the_same_context(either_path):
    from revy.contrib.django.history import snapshot

    with Context():
        book = make_book(title="first")
    with Context():
        with receiving(post_save, Book, _assign_title):
            book.title = "saved"
            book.save()
        book.save()  # in the same context: the instance's base is the row as written
    assert Book.objects.get(pk=book.pk).title == "assigned by a receiver"
    assert snapshot(Book, book.pk).title == "assigned by a receiver"


@pytest.mark.parametrize("creating", [True, False], ids=["create", "update"])
def test_history_holds_what_a_pre_save_receiver_assigns(either_path, creating):
    # A pre_save receiver runs before the row is written: its assignment is in the row.
    from revy.contrib.django.history import snapshot

    book = _saved_with(pre_save, creating)
    row = Book.objects.get(pk=book.pk)
    assert row.title == snapshot(Book, book.pk).title == "assigned by a receiver"


def test_a_post_save_receiver_saving_the_instance_again_is_recorded_after_the_save(either_path):
    # The common "set a field once the key exists, save again" receiver: its save is a later
    # change of the row, and history keeps that order.
    from revy.contrib.django.history import snapshot

    def receiver(sender, instance, created, **kwargs):
        if created:
            instance.title = f"Book {instance.pk}"
            instance.save()

    with receiving(post_save, Book, receiver), Context():
        book = make_book(title="saved")
    deltas = object_deltas(Book, book.pk)
    assert [delta.action for delta in deltas] == ["Create", "Update"]
    assert deltas[0].data["title"] == "saved"
    assert [(a.field_name, a.old_value, a.new_value) for a in deltas[1].children.all()] == [
        ("title", "saved", f"Book {book.pk}")
    ]
    assert Book.objects.get(pk=book.pk).title == snapshot(Book, book.pk).title == f"Book {book.pk}"


@pytest.mark.parametrize("creating", [True, False], ids=["create", "update"])
def test_a_saved_instance_is_freed_as_soon_as_it_is_dropped(either_path, creating):
    # Without reference cycles: an instance kept alive until the garbage collector runs stays
    # watched by its context, and what a bulk write then reads depends on when it ran.
    import gc
    import weakref

    book = make_book(title="first") if not creating else None
    pk = book.pk if book is not None else None
    del book
    gc.collect()
    gc.disable()
    try:
        with Context():
            if creating:
                saved = make_book(title="saved")
            else:
                saved = Book.objects.get(pk=pk)
                saved.title = "saved"
                saved.save()
            dropped = weakref.ref(saved)
            del saved
            assert dropped() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("creating", [True, False], ids=["create", "update"])
def test_a_post_save_receiver_updating_the_row_with_a_queryset_is_recorded_after_the_save(
    either_path, creating
):
    # The idiom that avoids signals: `Model.objects.filter(pk=...).update(...)` in post_save.
    from revy.contrib.django.history import snapshot

    def receiver(sender, instance, **kwargs):
        Book.objects.filter(pk=instance.pk).update(pages=F("pages") + 1)

    book = None if creating else make_book(title="first", pages=10)
    with receiving(post_save, Book, receiver), Context():
        if creating:
            book = make_book(title="saved", pages=10)
        else:
            book.title = "saved"
            book.save()
    deltas = object_deltas(Book, book.pk)
    assert [delta.action for delta in deltas][-2:] == ["Create" if creating else "Update", "Update"]
    assert Book.objects.get(pk=book.pk).pages == snapshot(Book, book.pk).pages == 11


@pytest.mark.parametrize("creating", [True, False], ids=["create", "update"])
def test_post_save_receivers_see_the_history_of_the_save(either_path, creating):
    from revy.contrib.django.history import history_of

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append([delta.action for delta in history_of(instance)])

    book = None if creating else make_book(title="first")
    with receiving(post_save, Book, receiver), Context():
        if creating:
            make_book(title="saved")
        else:
            book.title = "saved"
            book.save()
    assert seen == [["Create"]] if creating else [["Update"]]
