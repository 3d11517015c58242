"""`ObjectSnapshot`: model instances rebuilt from object deltas in one SQL query."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from revy import Context
from revy.contrib.django.events import record_event
from revy.contrib.django.history import history_of
from revy.contrib.django.models import ObjectSnapshot
from tests.contrib.django.helpers import (
    change,
    created,
    deleted,
    deltas_of,
    revision_count,
    row_values,
)
from tests.factories import make_author, make_book
from tests.history_models import ObjectDelta
from tests.testapp.models import Book, Secret, Stamped

pytestmark = pytest.mark.django_db

User = get_user_model()


def readme_snapshot(deleted_user_id):
    """The source README's rollback example, verbatim but for the id."""
    object_delta = (
        ObjectDelta.objects.filter(
            action=ObjectDelta.ACTION_DELETE,
            content_type=ContentType.objects.get_for_model(User),
            content_id=deleted_user_id,
        )
        .annotate(snapshot=ObjectSnapshot(User))
        .order_by(
            "-pk",
        )
        .first()
    )
    return object_delta


def delete_user_in_context(user):
    with Context(actor=None):
        user.first_name = "Alice"
        user.save()
        user.delete()


def test_readme_example_recreates_the_deleted_user_with_its_pk_inside_a_context(user):
    deleted_user_id = user.pk
    expected = row_values(User.objects.get(pk=user.pk))
    delete_user_in_context(user)
    assert not User.objects.filter(pk=deleted_user_id).exists()

    object_delta = readme_snapshot(deleted_user_id)
    assert isinstance(object_delta.snapshot, User)
    with Context():
        object_delta.snapshot.save()

    restored = User.objects.get(pk=deleted_user_id)
    values = row_values(restored)
    # The password is masked in history: never restored, in particular never as the mask.
    assert values.pop("password") == ""
    expected.pop("password")
    assert values == {**expected, "first_name": "Alice"}
    assert [delta.action for delta in deltas_of(User, deleted_user_id)] == [
        "Update",
        "Delete",
        "Create",
    ]


def test_readme_example_recreates_the_deleted_user_outside_any_context(user):
    deleted_user_id = user.pk
    delete_user_in_context(user)
    revisions = revision_count()

    object_delta = readme_snapshot(deleted_user_id)
    object_delta.snapshot.save()

    restored = User.objects.get(pk=deleted_user_id)
    assert (restored.username, restored.first_name) == ("alice", "Alice")
    assert revision_count() == revisions  # untracked outside a context
    assert [delta.action for delta in deltas_of(User, deleted_user_id)] == ["Update", "Delete"]


def test_readme_example_picks_the_latest_deletion_of_a_row_deleted_twice(user):
    deleted_user_id = user.pk
    delete_user_in_context(user)
    with Context():
        readme_snapshot(deleted_user_id).snapshot.save()
        again = User.objects.get(pk=deleted_user_id)
        again.last_name = "Second life"
        again.save()
        again.delete()

    snapshot = readme_snapshot(deleted_user_id).snapshot
    assert (snapshot.pk, snapshot.last_name) == (deleted_user_id, "Second life")


def test_snapshot_of_each_create_update_and_delete_delta_is_the_state_at_that_delta():
    author = make_author()
    book, _ = created(Book, author=author, title="Draft", pages=10)
    change(book, title="First edition")
    change(book, pages=250)
    pk = book.pk
    deleted(book)

    deltas = list(history_of(Book, pk).annotate(snapshot=ObjectSnapshot(Book)))

    assert [delta.action for delta in deltas] == ["Delete", "Update", "Update", "Create"]
    states = [(delta.snapshot.title, delta.snapshot.pages) for delta in deltas]
    assert states == [
        ("First edition", 250),  # a deletion: the state just before it
        ("First edition", 250),
        ("First edition", 10),
        ("Draft", 10),
    ]
    assert all(delta.snapshot.pk == pk for delta in deltas)
    assert all(delta.snapshot.author_id == author.pk for delta in deltas)
    assert all(delta.snapshot._state.adding for delta in deltas)


def test_snapshot_of_an_event_delta_is_the_state_of_the_latest_change_before_it():
    book, _ = created(Book, author=make_author(), title="Draft")
    with Context():
        first_event = record_event(book, "testapp.book.reviewed", {"stars": 4})
    change(book, title="Final")
    with Context():
        second_event = record_event(book, "testapp.book.reviewed", {"stars": 5})
    pk = book.pk
    deleted(book)
    book.pk = pk  # Django clears the pk of a deleted instance
    with Context():
        after_deletion = record_event(book, "testapp.book.archived")

    snapshots = {
        delta.pk: delta.snapshot
        for delta in ObjectDelta.objects.filter(action=ObjectDelta.ACTION_EVENT).annotate(
            snapshot=ObjectSnapshot(Book)
        )
    }

    assert snapshots[first_event.pk].title == "Draft"
    assert snapshots[second_event.pk].title == "Final"
    assert snapshots[after_deletion.pk] is None  # the row no longer existed


def test_snapshot_of_an_event_about_a_row_revy_never_saw_change_is_none():
    book = make_book(title="Old")  # created outside any context: no state recorded
    event = record_event(book, "testapp.book.featured")

    delta = ObjectDelta.objects.annotate(snapshot=ObjectSnapshot(Book)).get(pk=event.pk)

    assert delta.snapshot is None


@pytest.mark.parametrize("updates", [5, 200])
def test_snapshots_of_a_whole_history_take_one_query(updates):
    book, _ = created(Book, author=make_author(), title="Counting", pages=0)
    with Context():
        for pages in range(1, updates + 1):
            book.pages = pages
            book.save()

    with CaptureQueriesContext(connection) as queries:
        deltas = list(history_of(book).annotate(snapshot=ObjectSnapshot(Book)))

    assert len(queries) == 1
    assert len(deltas) == updates + 1
    assert [delta.snapshot.pages for delta in deltas] == list(range(updates, -1, -1))


def test_snapshots_of_events_between_many_updates_take_one_query():
    book, _ = created(Book, author=make_author(), title="Counting", pages=0)
    with Context():
        for pages in range(1, 31):
            book.pages = pages
            book.save()
            record_event(book, "testapp.book.counted", {"pages": pages})

    with CaptureQueriesContext(connection) as queries:
        events = list(
            history_of(book)
            .filter(action=ObjectDelta.ACTION_EVENT)
            .annotate(snapshot=ObjectSnapshot(Book))
        )

    assert len(queries) == 1
    assert [event.snapshot.pages for event in events] == [event.data["pages"] for event in events]


def test_snapshot_round_trips_uuid_datetimes_json_binary_and_duration_exactly():
    payload = {"nested": {"list": [1, 2.5, "three", None, True]}, "unicode": "çğü €"}
    stamped, _ = created(
        Stamped,
        label="original",
        payload=payload,
        blob=b"\x00\x01\xfe\xff binary",
        duration=datetime.timedelta(days=-2, hours=3, microseconds=123457),
    )
    stored = Stamped.objects.get(pk=stamped.pk)
    assert stored.created.microsecond or stored.updated.microsecond  # precision is exercised

    delta = history_of(stamped).annotate(snapshot=ObjectSnapshot(Stamped)).get()
    snapshot = delta.snapshot

    assert isinstance(snapshot.pk, uuid.UUID)
    assert snapshot.pk == stored.pk
    assert snapshot.label == "original"
    assert snapshot.created == stored.created
    assert snapshot.updated == stored.updated
    assert snapshot.created.tzinfo is not None
    assert snapshot.payload == payload
    assert bytes(snapshot.blob) == b"\x00\x01\xfe\xff binary"
    assert snapshot.duration == datetime.timedelta(days=-2, hours=3, microseconds=123457)


def test_snapshot_round_trips_decimal_date_and_foreign_key_exactly():
    author = make_author(name="Ursula")
    book, _ = created(
        Book,
        author=author,
        title="The Dispossessed",
        price=Decimal("19.90"),
        published=datetime.date(1974, 5, 1),
    )

    snapshot = history_of(book).annotate(snapshot=ObjectSnapshot(Book)).get().snapshot

    assert snapshot.price == Decimal("19.90")
    assert isinstance(snapshot.price, Decimal)
    assert snapshot.published == datetime.date(1974, 5, 1)
    assert snapshot.author_id == author.pk
    assert snapshot.author == author  # the relation resolves to the live row


def test_snapshot_of_a_deleted_stamped_row_saves_back_with_the_same_uuid():
    stamped, _ = created(Stamped, label="gone", payload={"k": "v"}, blob=b"\x10")
    pk = stamped.pk
    deleted(stamped)

    delta = (
        ObjectDelta.objects.filter(action=ObjectDelta.ACTION_DELETE, content_id=str(pk))
        .annotate(snapshot=ObjectSnapshot(Stamped))
        .get()
    )
    with Context():
        delta.snapshot.save()

    restored = Stamped.objects.get(pk=pk)
    assert (restored.label, restored.payload, bytes(restored.blob)) == ("gone", {"k": "v"}, b"\x10")
    assert deltas_of(Stamped, pk)[-1].action == "Create"


def test_snapshot_never_holds_a_masked_value():
    secret, _ = created(Secret, name="vault", pin="1234", internal="ops only")

    snapshot = history_of(secret).annotate(snapshot=ObjectSnapshot(Secret)).get().snapshot

    assert snapshot.name == "vault"
    assert snapshot.pin == ""  # masked: not stored, so the field's default
    assert snapshot.internal == ""  # excluded: not stored either


def test_snapshot_of_the_deltas_of_other_models_in_an_aggregate_history_is_none():
    from tests.testapp.models import Car, Cylinder, Engine

    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        engine = Engine.objects.create(car=car)
        Cylinder.objects.create(engine=engine)
    change(car, manufacturer="Volvo Cars")

    with CaptureQueriesContext(connection) as queries:
        deltas = list(history_of(car, aggregates=True).annotate(snapshot=ObjectSnapshot(Car)))

    assert len(queries) == 1
    snapshots = [(delta.event_type, delta.snapshot) for delta in deltas]
    assert [(event_type, snap.manufacturer) for event_type, snap in snapshots if snap] == [
        ("testapp.car.updated", "Volvo Cars"),
        ("testapp.car.created", "Volvo"),
    ]
    assert {event_type for event_type, snap in snapshots if snap is None} == {
        "testapp.engine.created",
        "testapp.cylinder.created",
    }


def test_object_snapshot_of_a_proxy_model_reads_the_concrete_rows_history():
    from tests.testapp.models import ProxyBook

    book, _ = created(Book, author=make_author(), title="Concrete")

    delta = history_of(book).annotate(snapshot=ObjectSnapshot(ProxyBook)).get()

    assert type(delta.snapshot) is ProxyBook
    assert delta.snapshot.title == "Concrete"
