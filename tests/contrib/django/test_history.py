"""The read side of `revy.contrib.django.history`: history_of, snapshot, diff, rollback, revert."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from revy import Context
from revy.contrib.django.events import record_event
from revy.contrib.django.history import (
    HistoryNotFound,
    ObjectAbsent,
    RevisionConflict,
    diff,
    history_of,
    revert,
    rollback,
    snapshot,
)
from tests.contrib.django.helpers import (
    change,
    changed_fields,
    created,
    deleted,
    deltas_of,
    last_delta_of,
    last_revision,
    moment,
    revision_count,
)
from tests.factories import make_author, make_book
from tests.history_models import AttributeDelta, ObjectDelta
from tests.testapp.models import Author, Book, Car, Cylinder, Engine, Secret, Stamped, Tag

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def book_history():
    """A book created, retitled, repriced and deleted, one revision each.

    Returns (pk, {"created": revision, "retitled": ..., "repriced": ..., "deleted": ...},
    {moment name: datetime between the revisions}).
    """
    author = make_author(name="Le Guin")
    times = {"before": moment()}
    book, created_in = created(Book, author=author, title="Draft", pages=100)
    times["after_create"] = moment()
    retitled = change(book, title="The Left Hand of Darkness")
    times["after_retitle"] = moment()
    repriced = change(book, price=Decimal("12.50"), pages=304)
    times["after_reprice"] = moment()
    pk = book.pk
    removed = deleted(book)
    times["after_delete"] = moment()
    revisions = {
        "created": created_in,
        "retitled": retitled,
        "repriced": repriced,
        "deleted": removed,
    }
    return pk, revisions, times


# history_of -------------------------------------------------------------------------------


def test_history_of_an_instance_lists_its_deltas_newest_first():
    book, _ = created(Book, author=make_author(), title="One")
    change(book, title="Two")
    change(book, pages=3)
    make_book(title="Unrelated")  # outside a context: no history
    created(Book, author=make_author(), title="Other row")

    deltas = list(history_of(book))

    assert [delta.action for delta in deltas] == ["Update", "Update", "Create"]
    assert [delta.pk for delta in deltas] == sorted((delta.pk for delta in deltas), reverse=True)
    assert {delta.content_id for delta in deltas} == {str(book.pk)}


def test_history_of_model_and_pk_equals_history_of_the_instance_and_outlives_the_row():
    book, _ = created(Book, author=make_author(), title="Short-lived")
    change(book, title="Shorter")
    expected = list(history_of(book))
    pk = book.pk
    deleted(book)

    by_pk = list(history_of(Book, pk))
    by_text_pk = list(history_of(Book, str(pk)))

    assert by_pk[1:] == expected
    assert by_pk[0].action == "Delete"
    assert by_text_pk == by_pk


def test_history_of_a_proxy_instance_is_the_history_of_its_concrete_row():
    from tests.testapp.models import ProxyBook

    book, _ = created(Book, author=make_author(), title="Proxied")
    proxy = ProxyBook.objects.get(pk=book.pk)
    change(proxy, title="Changed through the proxy")

    assert [delta.action for delta in history_of(proxy)] == ["Update", "Create"]
    assert list(history_of(ProxyBook, book.pk)) == list(history_of(book))


def test_history_of_rejects_a_model_without_pk_and_an_unsaved_instance():
    with pytest.raises(TypeError, match="primary key"):
        history_of(Book)
    with pytest.raises(ValueError, match="unsaved"):
        history_of(Book(title="never saved"))


def test_history_of_a_row_without_history_is_empty():
    book = make_book()  # created outside any context

    assert list(history_of(book)) == []


@pytest.fixture
def car_with_cylinder():
    with Context():
        car = Car.objects.create(manufacturer="Saab")
        engine = Engine.objects.create(car=car, num_cylinders=4)
        cylinder = Cylinder.objects.create(engine=engine, volume=500)
    return car, engine, cylinder


def test_a_cylinder_change_appears_in_the_aggregate_history_of_its_engine_and_car(
    car_with_cylinder,
):
    car, engine, cylinder = car_with_cylinder
    change(cylinder, volume=550)
    cylinder_update = last_delta_of(cylinder)

    engine_history = list(history_of(engine, aggregates=True))
    car_history = list(history_of(car, aggregates=True))

    assert cylinder_update in engine_history
    assert cylinder_update in car_history
    assert cylinder_update not in history_of(engine)
    assert cylinder_update not in history_of(car)
    assert [(d.event_type, d.action) for d in car_history] == [
        ("testapp.cylinder.updated", "Update"),
        ("testapp.cylinder.created", "Create"),
        ("testapp.engine.created", "Create"),
        ("testapp.car.created", "Create"),
    ]


def test_an_engine_change_appears_in_the_car_history_through_get_event_aggregates(
    car_with_cylinder,
):
    car, engine, _ = car_with_cylinder
    change(engine, num_cylinders=6)

    latest = history_of(car, aggregates=True).first()

    assert (latest.event_type, latest.content_id) == ("testapp.engine.updated", str(engine.pk))
    assert changed_fields(latest) == {"num_cylinders": (4, 6)}


def test_aggregate_history_of_a_model_and_pk_matches_the_instance(car_with_cylinder):
    car, _, cylinder = car_with_cylinder
    change(cylinder, volume=600)

    assert list(history_of(Car, car.pk, aggregates=True)) == list(history_of(car, aggregates=True))


def test_a_queryset_update_of_cylinders_appears_in_the_car_aggregate_history(
    car_with_cylinder,
):
    from django.db.models import F

    car, engine, cylinder = car_with_cylinder
    with Context():
        Cylinder.objects.filter(engine=engine).update(volume=F("volume") + 1)
    update = last_delta_of(cylinder)
    assert update.action == "Update"

    assert update in history_of(engine, aggregates=True)
    assert update in history_of(car, aggregates=True)


def test_for_aggregate_is_one_query_however_many_deltas(car_with_cylinder):
    car, engine, cylinder = car_with_cylinder
    with Context():
        for volume in range(501, 521):
            cylinder.volume = volume
            cylinder.save()
        Cylinder.objects.create(engine=engine, volume=450)

    with CaptureQueriesContext(connection) as queries:
        deltas = list(ObjectDelta.objects.for_aggregate(car))

    assert len(queries) == 1
    assert len(deltas) == 3 + 20 + 1


# snapshot ---------------------------------------------------------------------------------


def test_snapshot_at_a_revision_is_the_state_after_all_its_deltas(book_history):
    pk, revisions, _ = book_history

    at_creation = snapshot(Book, pk, revision=revisions["created"])
    at_retitle = snapshot(Book, pk, revision=revisions["retitled"])
    at_reprice = snapshot(Book, pk, revision=revisions["repriced"])

    assert (at_creation.title, at_creation.pages, at_creation.price) == ("Draft", 100, None)
    assert (at_retitle.title, at_retitle.pages) == ("The Left Hand of Darkness", 100)
    assert (at_reprice.price, at_reprice.pages) == (Decimal("12.50"), 304)
    assert at_reprice.pk == pk
    assert at_reprice._state.adding  # unsaved


def test_snapshot_at_the_revision_that_deleted_the_row_is_none(book_history):
    pk, revisions, _ = book_history

    assert snapshot(Book, pk, revision=revisions["deleted"]) is None


def test_snapshot_at_a_revision_that_did_not_touch_the_row_is_the_state_then():
    book, _ = created(Book, author=make_author(), title="Before")
    _, unrelated = created(Tag, name="meanwhile")
    change(book, title="After")

    assert snapshot(Book, book.pk, revision=unrelated).title == "Before"


def test_snapshot_at_a_delta_is_the_state_right_after_it(book_history):
    pk, _, _ = book_history
    create, retitle, reprice, _ = deltas_of(Book, pk)

    assert snapshot(Book, pk, delta=create).title == "Draft"
    assert snapshot(Book, pk, delta=retitle).title == "The Left Hand of Darkness"
    assert snapshot(Book, pk, delta=reprice).price == Decimal("12.50")


def test_snapshot_at_a_delete_delta_is_the_state_just_before_the_deletion(book_history):
    pk, _, _ = book_history
    delete = deltas_of(Book, pk)[-1]
    assert delete.action == "Delete"

    before_deletion = snapshot(Book, pk, delta=delete)

    assert (before_deletion.title, before_deletion.pages, before_deletion.price) == (
        "The Left Hand of Darkness",
        304,
        Decimal("12.50"),
    )


def test_snapshot_at_a_datetime_is_the_state_after_every_delta_up_to_it(book_history):
    pk, _, times = book_history

    assert snapshot(Book, pk, at=times["after_create"]).title == "Draft"
    assert snapshot(Book, pk, at=times["after_retitle"]).title == "The Left Hand of Darkness"
    assert snapshot(Book, pk, at=times["after_reprice"]).pages == 304


def test_snapshot_at_the_exact_created_at_of_a_delta_includes_it(book_history):
    pk, _, _ = book_history
    retitle = deltas_of(Book, pk)[1]

    assert snapshot(Book, pk, at=retitle.created_at).title == "The Left Hand of Darkness"


def test_snapshot_is_none_before_the_creation_and_after_the_deletion(book_history):
    pk, _, times = book_history

    assert snapshot(Book, pk, at=times["before"]) is None
    assert snapshot(Book, pk, at=times["after_delete"]) is None
    assert snapshot(Book, pk) is None  # latest: deleted


def test_snapshot_without_a_point_is_the_latest_recorded_state():
    book, _ = created(Book, author=make_author(), title="Now")
    change(book, title="Later")

    assert snapshot(Book, book.pk).title == "Later"


def test_snapshot_accepts_a_naive_datetime_in_the_current_time_zone(book_history):
    pk, _, times = book_history
    naive = times["after_retitle"].replace(tzinfo=None)  # settings.TIME_ZONE is UTC

    assert snapshot(Book, pk, at=naive).title == "The Left Hand of Darkness"


def test_snapshot_of_a_row_recreated_after_deletion_follows_each_life():
    book, _ = created(Book, author=make_author(), title="First life")
    pk = book.pk
    deleted(book)
    gap = moment()
    with Context():
        Book.objects.create(pk=pk, author=make_author(), title="Second life")

    assert snapshot(Book, pk, at=gap) is None
    assert snapshot(Book, pk).title == "Second life"


def test_snapshot_of_a_row_without_history_raises_history_not_found():
    book = make_book()  # outside any context

    with pytest.raises(HistoryNotFound, match=r"No history is recorded for testapp\.Book"):
        snapshot(Book, book.pk)
    with pytest.raises(LookupError):
        snapshot(Book, 987654)


def test_snapshot_with_an_invalid_pk_raises_history_not_found():
    with pytest.raises(HistoryNotFound, match="not a valid primary key"):
        snapshot(Book, "not-a-number")


def test_snapshot_with_two_points_raises_type_error(book_history):
    pk, revisions, times = book_history
    create = deltas_of(Book, pk)[0]

    with pytest.raises(TypeError, match="at most one"):
        snapshot(Book, pk, revision=revisions["created"], delta=create)
    with pytest.raises(TypeError, match="at most one"):
        snapshot(Book, pk, delta=create, at=times["after_create"])
    with pytest.raises(TypeError, match="at most one"):
        snapshot(Book, pk, revision=revisions["created"], at=times["after_create"])


def test_snapshot_with_a_point_of_the_wrong_kind_raises_type_error(book_history):
    pk, revisions, _ = book_history

    with pytest.raises(TypeError, match="revision= takes a revision"):
        snapshot(Book, pk, revision=revisions["created"].pk)
    with pytest.raises(TypeError, match="at= takes a datetime"):
        snapshot(Book, pk, at="2024-01-01")


def test_snapshot_at_a_delta_of_another_row_raises_history_not_found(book_history):
    pk, _, _ = book_history
    other, _ = created(Book, author=make_author(), title="Other")

    with pytest.raises(HistoryNotFound, match="not part of the history"):
        snapshot(Book, pk, delta=last_delta_of(other))


def test_snapshot_takes_a_constant_number_of_queries_whatever_the_history_length():
    book, _ = created(Book, author=make_author(), title="Long", pages=0)
    with Context():
        for pages in range(1, 101):
            book.pages = pages
            book.save()
    middle = deltas_of(book)[50]

    with CaptureQueriesContext(connection) as queries:
        state = snapshot(Book, book.pk, delta=middle)

    assert state.pages == 50
    assert len(queries) == 1


def test_snapshot_of_a_proxy_model_is_an_instance_of_the_proxy():
    from tests.testapp.models import ProxyBook

    book, _ = created(Book, author=make_author(), title="Proxied")

    state = snapshot(ProxyBook, book.pk)

    assert type(state) is ProxyBook
    assert state.title == "Proxied"


def test_snapshot_of_a_multi_table_child_holds_the_parent_fields():
    from tests.testapp.models import Restaurant

    restaurant, created_in = created(Restaurant, name="Chez Panisse", serves_pizza=True)
    change(restaurant, name="Chez Panisse Café")

    state = snapshot(Restaurant, restaurant.pk, revision=created_in)

    assert (state.name, state.serves_pizza, state.pk) == ("Chez Panisse", True, restaurant.pk)


# diff -------------------------------------------------------------------------------------


def test_diff_lists_only_the_changed_fields_with_stored_values(book_history):
    pk, revisions, _ = book_history

    changes = diff(Book, pk, since=revisions["created"], until=revisions["repriced"])

    assert changes == {
        "title": {"old": "Draft", "new": "The Left Hand of Darkness"},
        "pages": {"old": 100, "new": 304},
        "price": {"old": None, "new": "12.50"},
    }


def test_diff_between_the_same_point_twice_is_empty(book_history):
    pk, revisions, times = book_history
    retitle = deltas_of(Book, pk)[1]

    assert diff(Book, pk, since=revisions["retitled"], until=revisions["retitled"]) == {}
    assert diff(Book, pk, since=retitle, until=retitle) == {}
    assert diff(Book, pk, since=times["after_create"], until=times["after_create"]) == {}


def test_diff_mixes_deltas_and_datetimes_and_can_go_backwards(book_history):
    pk, _, times = book_history
    create, retitle, _, _ = deltas_of(Book, pk)

    assert diff(Book, pk, since=create, until=times["after_retitle"]) == {
        "title": {"old": "Draft", "new": "The Left Hand of Darkness"}
    }
    assert diff(Book, pk, since=retitle, until=create) == {
        "title": {"old": "The Left Hand of Darkness", "new": "Draft"}
    }


def test_diff_from_before_creation_lists_every_field_as_new(book_history):
    pk, revisions, times = book_history

    changes = diff(Book, pk, since=times["before"], until=revisions["created"])

    assert changes["title"] == {"old": None, "new": "Draft"}
    assert changes["id"] == {"old": None, "new": pk}
    assert set(changes) == {"id", "author_id", "title", "pages"}  # price, published: None


def test_diff_to_the_deletion_lists_every_field_as_gone(book_history):
    pk, revisions, _ = book_history

    changes = diff(Book, pk, since=revisions["repriced"], until=revisions["deleted"])

    assert changes["pages"] == {"old": 304, "new": None}
    assert changes["price"] == {"old": "12.50", "new": None}


def test_diff_with_until_none_compares_with_the_latest_state():
    book, created_in = created(Book, author=make_author(), title="A")
    change(book, title="B")

    assert diff(Book, book.pk, since=created_in, until=None) == {"title": {"old": "A", "new": "B"}}


def test_diff_never_compares_masked_or_excluded_fields():
    secret, created_in = created(Secret, name="vault", pin="1111", internal="x")
    change(secret, pin="2222", internal="y", name="safe")

    assert diff(Secret, secret.pk, since=created_in, until=None) == {
        "name": {"old": "vault", "new": "safe"}
    }


# rollback ---------------------------------------------------------------------------------


def test_rollback_restores_the_row_and_records_only_the_changed_fields():
    book, created_in = created(
        Book, author=make_author(), title="Draft", pages=100, price=Decimal("9.99")
    )
    change(book, title="Final", pages=300)
    change(book, published=datetime.date(2001, 1, 1))
    revisions = revision_count()

    restored = rollback(Book, book.pk, revision=created_in)

    stored = Book.objects.get(pk=book.pk)
    assert (stored.title, stored.pages, stored.published, stored.price) == (
        "Draft",
        100,
        None,
        Decimal("9.99"),
    )
    assert restored.pk == book.pk and not restored._state.adding
    assert revision_count() == revisions + 1
    delta = last_delta_of(book)
    assert (delta.action, delta.revision_id) == ("Update", last_revision().pk)
    assert changed_fields(delta) == {
        "title": ("Final", "Draft"),
        "pages": (300, 100),
        "published": ("2001-01-01", None),
    }


def test_rollback_to_a_datetime_and_to_a_delta():
    book, _ = created(Book, author=make_author(), title="v1")
    after_v1 = moment()
    change(book, title="v2")
    v2 = last_delta_of(book)
    change(book, title="v3")

    assert rollback(Book, book.pk, at=after_v1).title == "v1"
    assert Book.objects.get(pk=book.pk).title == "v1"
    assert rollback(Book, book.pk, delta=v2).title == "v2"
    assert Book.objects.get(pk=book.pk).title == "v2"


def test_rollback_recreates_a_deleted_row_with_its_pk_and_records_create(book_history):
    pk, revisions, _ = book_history

    restored = rollback(Book, pk, revision=revisions["retitled"])

    stored = Book.objects.get(pk=pk)
    assert restored.pk == pk
    assert (stored.title, stored.pages, stored.price) == ("The Left Hand of Darkness", 100, None)
    assert stored.author.name == "Le Guin"
    delta = last_delta_of(Book, pk)
    assert (delta.action, delta.event_type) == ("Create", "testapp.book.created")
    assert changed_fields(delta)["title"] == (None, "The Left Hand of Darkness")


def test_rollback_to_a_delete_delta_recreates_the_row_as_it_was_before_deletion(book_history):
    pk, _, _ = book_history
    delete = deltas_of(Book, pk)[-1]

    rollback(Book, pk, delta=delete)

    stored = Book.objects.get(pk=pk)
    assert (stored.title, stored.pages, stored.price) == (
        "The Left Hand of Darkness",
        304,
        Decimal("12.50"),
    )


def test_rollback_to_the_current_state_records_nothing():
    book, created_in = created(Book, author=make_author(), title="Same")
    change(book, title="Other")
    change(book, title="Same")
    revisions, deltas = revision_count(), ObjectDelta.objects.count()

    restored = rollback(Book, book.pk, revision=created_in)

    assert restored.title == "Same"
    assert (revision_count(), ObjectDelta.objects.count()) == (revisions, deltas)


def test_rollback_to_a_point_before_the_row_existed_raises_object_absent(book_history):
    pk, revisions, times = book_history

    with pytest.raises(ObjectAbsent, match=r"testapp\.Book with pk=.* did not exist"):
        rollback(Book, pk, at=times["before"])
    with pytest.raises(ObjectAbsent):
        rollback(Book, pk, revision=revisions["deleted"])
    assert not Book.objects.filter(pk=pk).exists()


def test_rollback_of_a_row_without_history_raises_history_not_found():
    book = make_book()

    with pytest.raises(HistoryNotFound):
        rollback(Book, book.pk, at=moment())


def test_rollback_needs_exactly_one_point(book_history):
    pk, revisions, times = book_history

    with pytest.raises(TypeError, match="needs a point"):
        rollback(Book, pk)
    with pytest.raises(TypeError, match="at most one"):
        rollback(Book, pk, revision=revisions["created"], at=times["after_create"])


def test_rollback_outside_any_context_opens_one_and_records_as_the_system():
    book, created_in = created(Book, author=make_author(), title="Before")
    change(book, title="After")
    assert Context.is_disabled()

    rollback(Book, book.pk, revision=created_in)

    delta = last_delta_of(book)
    assert (delta.action, delta.actor_id, delta.revision.description) == ("Update", None, "")
    assert changed_fields(delta) == {"title": ("After", "Before")}


def test_rollback_inside_a_context_records_its_actor_and_revision_description(user):
    book, created_in = created(Book, author=make_author(), title="Before")
    change(book, title="After")

    with Context(actor=user, revision_description="Undo the vandalism"):
        rollback(Book, book.pk, revision=created_in)
        book.refresh_from_db()
        book.pages = 7
        book.save()

    rollback_delta, page_delta = deltas_of(book)[-2:]
    assert rollback_delta.revision_id == page_delta.revision_id  # one revision per context
    assert rollback_delta.actor == user
    assert rollback_delta.revision.description == "Undo the vandalism"


def test_rollback_inside_a_disabled_context_changes_the_row_but_records_nothing():
    book, created_in = created(Book, author=make_author(), title="Before")
    change(book, title="After")
    deltas = ObjectDelta.objects.count()

    with Context.as_disabled():
        rollback(Book, book.pk, revision=created_in)

    assert Book.objects.get(pk=book.pk).title == "Before"
    assert ObjectDelta.objects.count() == deltas


def test_rollback_keeps_the_current_value_of_masked_and_excluded_fields():
    secret, created_in = created(Secret, name="vault", pin="1111", internal="first")
    change(secret, name="safe", pin="2222", internal="second")

    rollback(Secret, secret.pk, revision=created_in)

    stored = Secret.objects.get(pk=secret.pk)
    assert (stored.name, stored.pin, stored.internal) == ("vault", "2222", "second")
    assert changed_fields(last_delta_of(secret)) == {"name": ("safe", "vault")}


def test_rollback_of_a_user_keeps_the_current_password(user):
    with Context():
        user.first_name = "Alice"
        user.save()
    first = last_revision()
    with Context():
        user.set_password("n3w-Secret")
        user.first_name = "Mallory"
        user.save()

    rollback(User, user.pk, revision=first)

    stored = User.objects.get(pk=user.pk)
    assert stored.first_name == "Alice"
    assert stored.check_password("n3w-Secret")
    assert "**" not in stored.password


def test_rollback_recreating_a_row_never_writes_the_mask():
    secret, created_in = created(Secret, name="vault", pin="1111")
    pk = secret.pk
    deleted(secret)

    rollback(Secret, pk, revision=created_in)

    stored = Secret.objects.get(pk=pk)
    assert (stored.name, stored.pin) == ("vault", "")


def test_rollback_of_a_stamped_row_restores_json_binary_and_duration():
    stamped, created_in = created(
        Stamped,
        label="v1",
        payload={"a": [1, 2]},
        blob=b"\x00\x01",
        duration=datetime.timedelta(minutes=5, microseconds=7),
    )
    change(stamped, label="v2", payload={"b": None}, blob=b"\xff", duration=None)

    rollback(Stamped, stamped.pk, revision=created_in)

    stored = Stamped.objects.get(pk=stamped.pk)
    assert (stored.label, stored.payload, bytes(stored.blob), stored.duration) == (
        "v1",
        {"a": [1, 2]},
        b"\x00\x01",
        datetime.timedelta(minutes=5, microseconds=7),
    )


# revert -----------------------------------------------------------------------------------


def test_revert_of_an_update_sets_the_old_values_back_as_a_new_revision():
    book, _ = created(Book, author=make_author(), title="Old", pages=10)
    retitled = change(book, title="New", pages=20)

    revision = revert(retitled)

    stored = Book.objects.get(pk=book.pk)
    assert (stored.title, stored.pages) == ("Old", 10)
    assert revision.pk not in (None, retitled.pk)
    assert revision == last_revision()
    delta = revision.get_object_deltas().get()
    assert delta.action == "Update"
    assert changed_fields(delta) == {"title": ("New", "Old"), "pages": (20, 10)}


def test_revert_of_a_creation_deletes_the_row_and_records_delete():
    book, created_in = created(Book, author=make_author(), title="Mistake")

    revision = revert(created_in)

    assert not Book.objects.filter(pk=book.pk).exists()
    delta = revision.get_object_deltas().get()
    assert (delta.action, delta.content_id) == ("Delete", str(book.pk))


def test_revert_of_a_deletion_recreates_the_row_and_its_cascaded_rows():
    author = make_author(name="Cascading")
    books = [make_book(author=author, title=f"Volume {n}") for n in (1, 2)]
    author_pk = author.pk
    removed = deleted(author)
    assert not Book.objects.filter(pk__in=[b.pk for b in books]).exists()

    revision = revert(removed)

    assert Author.objects.get(pk=author_pk).name == "Cascading"
    assert sorted(Book.objects.filter(author_id=author_pk).values_list("title", flat=True)) == [
        "Volume 1",
        "Volume 2",
    ]
    assert sorted(revision.get_object_deltas().values_list("action", "event_type")) == [
        ("Create", "testapp.author.created"),
        ("Create", "testapp.book.created"),
        ("Create", "testapp.book.created"),
    ]


def test_revert_of_a_mixed_revision_undoes_every_delta():
    kept, _ = created(Book, author=make_author(), title="Kept", pages=1)
    doomed, _ = created(Book, author=make_author(), title="Doomed")
    doomed_pk = doomed.pk
    with Context():
        kept.pages = 2
        kept.save()
        doomed.delete()
        new = Book.objects.create(author=kept.author, title="New")
    mixed = last_revision()

    revert(mixed)

    assert Book.objects.get(pk=kept.pk).pages == 1
    assert Book.objects.get(pk=doomed_pk).title == "Doomed"
    assert not Book.objects.filter(pk=new.pk).exists()


def test_revert_of_several_saves_of_one_row_restores_the_first_old_value():
    book, _ = created(Book, author=make_author(), title="Original")
    with Context():
        for title in ("Second", "Third", "Fourth"):
            book.title = title
            book.save()
    saves = last_revision()

    revert(saves)

    assert Book.objects.get(pk=book.pk).title == "Original"


def test_revert_with_a_later_change_of_the_same_field_raises_and_changes_nothing():
    book, _ = created(Book, author=make_author(), title="One")
    second = change(book, title="Two")
    third = change(book, title="Three")
    revisions, deltas = revision_count(), ObjectDelta.objects.count()

    with pytest.raises(RevisionConflict) as caught:
        revert(second)

    conflict = caught.value
    assert conflict.revision == second
    later = AttributeDelta.objects.get(revision=third, field_name="title")
    assert conflict.conflicts == [later]
    assert f"testapp.book#{book.pk}.title in revision {third.pk}" in str(conflict)
    assert "force=True" in str(conflict)
    assert Book.objects.get(pk=book.pk).title == "Three"
    assert (revision_count(), ObjectDelta.objects.count()) == (revisions, deltas)


def test_revert_with_force_undoes_despite_later_changes():
    book, _ = created(Book, author=make_author(), title="One")
    second = change(book, title="Two")
    change(book, title="Three")

    revert(second, force=True)

    assert Book.objects.get(pk=book.pk).title == "One"


def test_revert_after_later_changes_of_other_fields_is_not_a_conflict():
    book, _ = created(Book, author=make_author(), title="One", pages=1)
    retitled = change(book, title="Two")
    change(book, pages=2)

    revert(retitled)

    stored = Book.objects.get(pk=book.pk)
    assert (stored.title, stored.pages) == ("One", 2)


def test_revert_of_a_creation_conflicts_with_a_later_update_of_the_row():
    book, created_in = created(Book, author=make_author(), title="New")
    change(book, pages=5)
    update = last_delta_of(book)

    with pytest.raises(RevisionConflict) as caught:
        revert(created_in)

    assert caught.value.conflicts == [update]
    assert Book.objects.filter(pk=book.pk).exists()


def test_revert_of_an_update_conflicts_with_a_later_deletion_of_the_row():
    book, _ = created(Book, author=make_author(), title="One")
    retitled = change(book, title="Two")
    pk = book.pk
    deleted(book)

    with pytest.raises(RevisionConflict) as caught:
        revert(retitled)

    assert [delta.action for delta in caught.value.conflicts] == ["Delete"]
    assert not Book.objects.filter(pk=pk).exists()


def test_revert_of_a_deletion_conflicts_with_a_later_recreation():
    book, _ = created(Book, author=make_author(), title="One")
    pk = book.pk
    removed = deleted(book)
    with Context():
        Book.objects.create(pk=pk, author=make_author(), title="Squatter")

    with pytest.raises(RevisionConflict):
        revert(removed)
    assert Book.objects.get(pk=pk).title == "Squatter"


def test_revert_is_atomic_when_one_undo_fails():
    tag, _ = created(Tag, name="unique")
    book, _ = created(Book, author=make_author(), title="Before")
    with Context():
        tag.delete()
        book.title = "After"
        book.save()
    mixed = last_revision()
    with Context():
        Tag.objects.create(name="unique")  # another row takes the name back
    revisions = revision_count()

    with pytest.raises(IntegrityError):
        revert(mixed)

    assert Book.objects.get(pk=book.pk).title == "After"
    assert revision_count() == revisions


def test_revert_never_restores_a_masked_value():
    secret, _ = created(Secret, name="vault", pin="1111")
    changed = change(secret, name="safe", pin="2222")

    revert(changed)

    stored = Secret.objects.get(pk=secret.pk)
    assert (stored.name, stored.pin) == ("vault", "2222")


def test_revert_inside_a_context_records_in_its_revision(user):
    book, _ = created(Book, author=make_author(), title="One")
    retitled = change(book, title="Two")

    with Context(actor=user, revision_description="Reverting"):
        revision = revert(retitled)

    assert revision.description == "Reverting"
    assert revision.get_object_deltas().get().actor == user


def test_revert_of_a_revision_with_only_events_does_nothing():
    book, _ = created(Book, author=make_author(), title="One")
    with Context():
        record_event(book, "testapp.book.reviewed")
    events_only = last_revision()
    revisions = revision_count()

    assert revert(events_only) is None
    assert revision_count() == revisions


def test_reverting_a_revert_restores_the_reverted_change():
    book, _ = created(Book, author=make_author(), title="One")
    retitled = change(book, title="Two")
    undo = revert(retitled)

    revert(undo)

    assert Book.objects.get(pk=book.pk).title == "Two"


# Schema changes ---------------------------------------------------------------------------


def test_snapshot_skips_a_recorded_field_the_model_no_longer_has():
    book, created_in = created(Book, author=make_author(), title="Old schema")
    create = last_delta_of(book)
    ObjectDelta.objects.filter(pk=create.pk).update(
        data={**create.data, "subtitle": "a field since removed"}
    )

    state = snapshot(Book, book.pk, revision=created_in)

    assert state.title == "Old schema"
    assert not hasattr(state, "subtitle")


def test_snapshot_gives_a_field_missing_from_the_data_its_default():
    book, created_in = created(Book, author=make_author(), title="Old schema", pages=99)
    create = last_delta_of(book)
    data = dict(create.data)
    del data["pages"]  # recorded before `pages` was added
    ObjectDelta.objects.filter(pk=create.pk).update(data=data)

    assert snapshot(Book, book.pk, revision=created_in).pages == 0


def test_object_snapshot_tolerates_schema_changes_too():
    from revy.contrib.django.models import ObjectSnapshot

    book, _ = created(Book, author=make_author(), title="Old schema", pages=99)
    create = last_delta_of(book)
    data = {**create.data, "subtitle": "gone"}
    del data["pages"]
    ObjectDelta.objects.filter(pk=create.pk).update(data=data)

    state = history_of(book).annotate(snapshot=ObjectSnapshot(Book)).get().snapshot

    assert (state.title, state.pages) == ("Old schema", 0)


def test_rollback_across_a_schema_change_skips_removed_and_defaults_added_fields():
    book, created_in = created(Book, author=make_author(), title="Old schema", pages=99)
    change(book, title="New schema", pages=300)
    create = deltas_of(book)[0]
    data = {**create.data, "subtitle": "gone"}
    del data["pages"]
    ObjectDelta.objects.filter(pk=create.pk).update(data=data)

    rollback(Book, book.pk, revision=created_in)

    stored = Book.objects.get(pk=book.pk)
    assert (stored.title, stored.pages) == ("Old schema", 0)


def test_rollback_recreating_a_row_across_a_schema_change():
    book, created_in = created(Book, author=make_author(), title="Old schema", pages=99)
    pk = book.pk
    deleted(book)
    create = deltas_of(Book, pk)[0]
    data = {**create.data, "subtitle": "gone"}
    del data["pages"]
    ObjectDelta.objects.filter(pk=create.pk).update(data=data)

    rollback(Book, pk, revision=created_in)

    stored = Book.objects.get(pk=pk)
    assert (stored.title, stored.pages) == ("Old schema", 0)


def test_revert_skips_an_attribute_delta_of_a_field_the_model_no_longer_has():
    book, _ = created(Book, author=make_author(), title="One", pages=1)
    changed = change(book, title="Two", pages=2)
    AttributeDelta.objects.filter(revision=changed, field_name="pages").update(
        field_name="page_count"  # the field was renamed since
    )

    revert(changed)

    stored = Book.objects.get(pk=book.pk)
    assert (stored.title, stored.pages) == ("One", 2)


def test_revert_of_a_deletion_across_a_schema_change():
    book, _ = created(Book, author=make_author(), title="Old schema", pages=99)
    pk = book.pk
    removed = deleted(book)
    delete = last_delta_of(Book, pk)
    data = {**delete.data, "subtitle": "gone"}
    del data["pages"]
    ObjectDelta.objects.filter(pk=delete.pk).update(data=data)

    revert(removed)

    stored = Book.objects.get(pk=pk)
    assert (stored.title, stored.pages) == ("Old schema", 0)


def test_diff_across_a_schema_change_compares_added_fields_with_their_default():
    book, created_in = created(Book, author=make_author(), title="Old schema", pages=99)
    change(book, title="New schema")
    create = deltas_of(book)[0]
    data = {**create.data, "subtitle": "gone"}
    del data["pages"]
    ObjectDelta.objects.filter(pk=create.pk).update(data=data)

    assert diff(Book, book.pk, since=created_in, until=None) == {
        "title": {"old": "Old schema", "new": "New schema"},
        "pages": {"old": 0, "new": 99},
    }


# Rows that existed before tracking began ----------------------------------------------------


@pytest.fixture
def pre_tracking_book():
    """A book created and edited outside any context, then deleted inside one."""
    author = make_author(name="Untracked author")
    book = make_book(author=author, title="Before tracking", pages=12)
    book.price = Decimal("3.30")
    book.save()
    pk = book.pk
    with Context():
        Book.objects.get(pk=pk).delete()
    return pk


def test_the_deletion_of_a_pre_tracking_row_records_its_full_state(pre_tracking_book):
    (delete,) = deltas_of(Book, pre_tracking_book)

    state = snapshot(Book, pre_tracking_book, delta=delete)

    assert delete.action == "Delete"
    assert (state.title, state.pages, state.price) == ("Before tracking", 12, Decimal("3.30"))


def test_rollback_of_the_deletion_of_a_pre_tracking_row_recreates_it(pre_tracking_book):
    (delete,) = deltas_of(Book, pre_tracking_book)

    rollback(Book, pre_tracking_book, delta=delete)

    stored = Book.objects.get(pk=pre_tracking_book)
    assert (stored.title, stored.pages, stored.price) == ("Before tracking", 12, Decimal("3.30"))
    assert [delta.action for delta in deltas_of(Book, pre_tracking_book)] == ["Delete", "Create"]


def test_the_state_of_a_pre_tracking_row_before_its_first_delta_is_unknown(pre_tracking_book):
    earlier = deltas_of(Book, pre_tracking_book)[0].created_at - datetime.timedelta(seconds=1)

    with pytest.raises(HistoryNotFound, match="existed before revy recorded it"):
        snapshot(Book, pre_tracking_book, at=earlier)
    with pytest.raises(HistoryNotFound):
        rollback(Book, pre_tracking_book, at=earlier)


def test_cascaded_deletion_of_pre_tracking_rows_is_reconstructible():
    author = make_author(name="Untracked")
    books = [make_book(author=author, title=f"Tome {n}", pages=n) for n in (1, 2, 3)]
    with Context():
        Author.objects.get(pk=author.pk).delete()

    for book in books:
        (delete,) = deltas_of(book)
        state = snapshot(Book, book.pk, delta=delete)
        assert (state.title, state.pages, state.author_id) == (book.title, book.pages, author.pk)


def test_an_update_of_a_pre_tracking_row_records_its_full_state():
    book = make_book(title="Untracked", pages=5)
    change(book, title="Tracked")
    (update,) = deltas_of(book)

    state = snapshot(Book, book.pk, delta=update)

    assert (state.title, state.pages, state.author_id) == ("Tracked", 5, book.author_id)
    with pytest.raises(HistoryNotFound):
        snapshot(Book, book.pk, at=update.created_at - datetime.timedelta(seconds=1))


# The read side over every write path --------------------------------------------------------


def test_the_deletion_of_an_instance_with_unsaved_changes_records_the_stored_state():
    book, _ = created(Book, author=make_author(), title="Stored", pages=1)
    pk = book.pk
    with Context():
        book.title = "Never saved"
        book.delete()

    assert snapshot(Book, pk, delta=last_delta_of(Book, pk)).title == "Stored"


def test_a_save_with_update_fields_records_the_stored_state_of_the_other_fields():
    book, _ = created(Book, author=make_author(), title="One", pages=1)
    with Context():
        book.title = "Two"
        book.pages = 999  # assigned but not saved
        book.save(update_fields=["title"])

    state = snapshot(Book, book.pk)

    assert (state.title, state.pages) == ("Two", 1)
    assert Book.objects.get(pk=book.pk).pages == 1


def test_snapshot_after_a_queryset_update_with_an_f_expression_holds_the_new_value():
    from django.db.models import F

    book, created_in = created(Book, author=make_author(), title="Counter", pages=10)
    with Context():
        Book.objects.filter(pk=book.pk).update(pages=F("pages") + 5)

    assert snapshot(Book, book.pk).pages == 15
    assert diff(Book, book.pk, since=created_in, until=None) == {"pages": {"old": 10, "new": 15}}
    rollback(Book, book.pk, revision=created_in)
    assert Book.objects.get(pk=book.pk).pages == 10


def test_snapshot_of_rows_made_by_bulk_create_and_bulk_update():
    author = make_author()
    with Context():
        books = Book.objects.bulk_create(
            [Book(author=author, title=f"Bulk {n}", pages=n) for n in range(3)]
        )
    created_in = last_revision()
    for book in books:
        book.pages += 100
    with Context():
        Book.objects.bulk_update(books, ["pages"])

    for n, book in enumerate(books):
        assert snapshot(Book, book.pk, revision=created_in).pages == n
        assert snapshot(Book, book.pk).pages == n + 100


def test_revert_of_a_tag_added_to_a_book_removes_the_link():
    book, _ = created(Book, author=make_author(), title="Tagged")
    tag, _ = created(Tag, name="classic")
    with Context():
        book.tags.add(tag)
    tagged = last_revision()

    revert(tagged)

    assert list(book.tags.all()) == []
    delete = last_revision().get_object_deltas().get()
    assert (delete.action, delete.event_type) == ("Delete", "testapp.book_tags.deleted")


def test_revert_of_a_deletion_that_set_foreign_keys_to_null_restores_them():
    from tests.testapp.models import Note

    author = make_author(name="Referenced")
    note, _ = created(Note, text="Kept", author=author)
    author_pk = author.pk
    removed = deleted(author)
    assert Note.objects.get(pk=note.pk).author_id is None
    assert snapshot(Note, note.pk).author_id is None

    revert(removed)

    assert Author.objects.get(pk=author_pk).name == "Referenced"
    assert Note.objects.get(pk=note.pk).author_id == author_pk


def test_history_of_a_uuid_row_accepts_the_pk_in_any_spelling():
    stamped, _ = created(Stamped, label="spelled")
    spellings = [stamped.pk, str(stamped.pk), str(stamped.pk).upper(), stamped.pk.hex]

    histories = [list(history_of(Stamped, pk)) for pk in spellings]

    assert all(history == histories[0] for history in histories)
    assert len(histories[0]) == 1
    assert snapshot(Stamped, stamped.pk.hex).label == "spelled"


def test_revert_of_a_row_created_and_deleted_in_one_revision_changes_nothing():
    author = make_author()
    with Context():
        book = Book.objects.create(author=author, title="Ephemeral")
        pk = book.pk
        book.delete()
    ephemeral = last_revision()
    revisions = revision_count()

    assert revert(ephemeral) is None

    assert not Book.objects.filter(pk=pk).exists()
    assert revision_count() == revisions


def test_revert_of_a_row_deleted_and_recreated_in_one_revision_restores_the_first_state():
    book, _ = created(Book, author=make_author(), title="Original", pages=1)
    pk = book.pk
    with Context():
        book.delete()
        Book.objects.create(pk=pk, author=book.author, title="Replacement", pages=2)
    replaced = last_revision()

    revert(replaced)

    stored = Book.objects.get(pk=pk)
    assert (stored.title, stored.pages) == ("Original", 1)


def test_a_baseline_recorded_after_a_revision_does_not_conflict_with_its_revert():
    from django.core.management import call_command

    book, _ = created(Book, author=make_author(), title="One")
    retitled = change(book, title="Two")
    call_command("revy_baseline", "testapp.Book", skip_existing=False, verbosity=0)

    revert(retitled)

    assert Book.objects.get(pk=book.pk).title == "One"


def test_revert_and_rollback_of_a_multi_table_child_recreate_parent_and_child():
    from tests.testapp.models import Place, Restaurant

    restaurant, created_in = created(Restaurant, name="Trattoria", serves_pizza=True)
    pk = restaurant.pk
    removed = deleted(restaurant)
    assert not Place.objects.filter(pk=pk).exists()

    revert(removed)

    stored = Restaurant.objects.get(pk=pk)
    assert (stored.name, stored.serves_pizza) == ("Trattoria", True)

    deleted(stored)
    rollback(Restaurant, pk, revision=created_in)

    assert Restaurant.objects.get(pk=pk).name == "Trattoria"


def test_revert_of_a_revision_of_many_rows_checks_conflicts_in_a_few_queries():
    from django.db.models import F

    from revy.contrib.django.history import find_conflicts

    author = make_author()
    Book.objects.bulk_create(Book(author=author, title=f"Book {n}", pages=n) for n in range(1200))
    with Context():
        Book.objects.update(pages=F("pages") + 1000)
    bulk = last_revision()
    assert bulk.object_deltas.count() == 1200
    one = Book.objects.get(title="Book 7")
    change(one, pages=5)

    with CaptureQueriesContext(connection) as queries:
        conflicts = find_conflicts(bulk)

    assert len(queries) <= 10  # deltas, their children, later deltas: chunks of 500 rows
    assert [(c.content_id, c.field_name) for c in conflicts] == [(str(one.pk), "pages")]
    with pytest.raises(RevisionConflict):
        revert(bulk)

    revert(bulk, force=True)

    assert sorted(Book.objects.values_list("pages", flat=True)) == list(range(1200))


def test_recreating_a_row_keeps_its_auto_now_add_value_and_sets_auto_now():
    stamped, _ = created(Stamped, label="timestamps")
    original = Stamped.objects.get(pk=stamped.pk)
    pk = stamped.pk
    removed = deleted(stamped)
    before_restore = moment()

    rollback(Stamped, pk, revision=last_revision_before(removed))

    restored = Stamped.objects.get(pk=pk)
    assert restored.created == original.created
    assert restored.updated >= before_restore
    create = last_delta_of(Stamped, pk)
    assert create.action == "Create"
    assert snapshot(Stamped, pk, delta=create).created == original.created

    deleted(restored)
    revert(last_revision())

    assert Stamped.objects.get(pk=pk).created == original.created


def last_revision_before(revision):
    from tests.history_models import Revision

    return Revision.objects.filter(pk__lt=revision.pk).order_by("-pk").first()


def test_a_recreated_row_is_saved_raw_like_a_fixture_and_an_updated_one_normally():
    from django.db.models.signals import post_save

    stamped, created_in = created(Stamped, label="one")
    change(stamped, label="two")
    pk = stamped.pk
    seen = []

    def receiver(sender, instance, created, raw, **kwargs):
        seen.append((instance.label, created, raw))

    post_save.connect(receiver, sender=Stamped)
    try:
        rollback(Stamped, pk, revision=created_in)
        deleted(Stamped.objects.get(pk=pk))
        rollback(Stamped, pk, revision=created_in)
    finally:
        post_save.disconnect(receiver, sender=Stamped)

    assert seen == [("one", False, False), ("one", True, True)]
