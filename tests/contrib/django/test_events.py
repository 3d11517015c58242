"""Event types, listeners (after commit only), custom events and aggregates."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from revy import Context
from revy.contrib.django import registry
from revy.contrib.django.events import (
    event_listener,
    model_event_listener,
    record_event,
    remove_listener,
)
from revy.contrib.django.history import history_of
from tests.conftest import count_queries
from tests.factories import make_author, make_book, object_deltas
from tests.history_models import ObjectDelta
from tests.testapp.models import Book, Car, Cylinder, Engine


@pytest.fixture
def listen():
    """Register listeners for one test: `calls = listen("testapp.book.created")`."""
    registered = []

    def register(*event_types, model=None):
        calls = []

        def listener(delta):
            calls.append((delta.event_type, delta.content_id))

        if model is not None:
            model_event_listener(model, event_types)(listener)
        else:
            event_listener(*event_types)(listener)
        registered.append(listener)
        return calls

    yield register
    for listener in registered:
        remove_listener(listener)


# Event types --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_automatic_deltas_carry_app_model_action_event_types():
    with Context():
        book = make_book()
        book.title = "Changed"
        book.save()
        book.delete()
    assert [delta.event_type for delta in object_deltas(Book)] == [
        "testapp.book.created",
        "testapp.book.updated",
        "testapp.book.deleted",
    ]


@pytest.mark.django_db
def test_record_event_adds_a_custom_event_to_the_current_revision(user):
    with Context.via_actor(user):
        book = make_book()
        delta = record_event(book, "testapp.book/reviewed@v2", {"stars": 5})
    assert delta.action == ObjectDelta.ACTION_EVENT
    assert delta.event_type == "testapp.book/reviewed@v2"
    assert delta.data == {"stars": 5}
    assert delta.actor == user
    assert delta.revision_id == object_deltas(Book)[0].revision_id


@pytest.mark.django_db
def test_record_event_outside_a_context_opens_one_and_inside_a_disabled_one_records_nothing():
    book = make_book()
    assert record_event(book, "custom.ping") is not None
    with Context.as_disabled():
        assert record_event(book, "custom.ping") is None
    assert [delta.event_type for delta in object_deltas(Book)] == ["custom.ping"]


@pytest.mark.parametrize("event_type", ["", "has space", "semi;colon", "ümlaut", None])
def test_invalid_custom_event_types_raise_value_error(event_type):
    with pytest.raises(ValueError, match="Invalid event type"):
        record_event(Book(pk=1), event_type)
    with pytest.raises(ValueError, match="Invalid event type"):
        event_listener(event_type)


# Listeners ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_listeners_run_after_commit_with_the_delta(listen):
    calls = listen("testapp.book.created", "testapp.book.deleted")
    with transaction.atomic(), Context():
        book = make_book()
        assert calls == []  # not before the transaction commits
    assert calls == [("testapp.book.created", str(book.pk))]


@pytest.mark.django_db(transaction=True)
def test_listeners_never_run_for_a_rolled_back_change(listen):
    calls = listen("testapp.book.created")
    with pytest.raises(RuntimeError), transaction.atomic(), Context():
        make_book()
        raise RuntimeError("roll back")
    assert calls == []
    assert Book.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_model_event_listener_uses_the_model_label(listen):
    calls = listen("created", "updated", model=Book)
    with Context():
        book = make_book()
        book.pages = 7
        book.save()
    assert [event for event, _ in calls] == ["testapp.book.created", "testapp.book.updated"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_listener_is_logged_and_does_not_undo_the_change(listen, caplog):
    @event_listener("testapp.author.created")
    def broken(delta):
        raise ValueError("listener bug")

    calls = listen("testapp.author.created")
    try:
        with caplog.at_level(logging.ERROR, logger="revy.events"), Context():
            author = make_author()
    finally:
        remove_listener(broken)
    assert "listener bug" in caplog.text
    assert calls == [("testapp.author.created", str(author.pk))]  # later listeners still run
    assert object_deltas(author)


@pytest.mark.django_db(transaction=True)
def test_custom_events_reach_their_listeners(listen):
    calls = listen("shipping.label-printed")
    book = make_book()
    with Context():
        record_event(book, "shipping.label-printed")
    assert calls == [("shipping.label-printed", str(book.pk))]


# Aggregates ---------------------------------------------------------------------------------


@pytest.fixture
def car_with_engine(db):
    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        engine = Engine.objects.create(car=car, num_cylinders=2)
        cylinders = [Cylinder.objects.create(engine=engine, volume=400) for _ in range(2)]
    return car, engine, cylinders


def test_a_cylinder_change_appears_in_its_engine_and_car_aggregates(car_with_engine):
    car, engine, (cylinder, _) = car_with_engine
    with Context():
        cylinder.volume = 450
        cylinder.save()
    change = object_deltas(cylinder)[-1]

    assert change in ObjectDelta.objects.for_aggregate(engine)
    assert change in ObjectDelta.objects.for_aggregate(car)
    assert change in history_of(car, aggregates=True)
    assert change not in history_of(car)
    # The car's own deltas are part of its aggregate history too.
    assert object_deltas(car)[0] in ObjectDelta.objects.for_aggregate(car)


def test_for_aggregate_is_one_query(car_with_engine):
    car, _, _ = car_with_engine
    with count_queries() as queries:
        deltas = list(ObjectDelta.objects.for_aggregate(car))
    assert len(queries) == 1
    # car + engine + two cylinders
    assert len(deltas) == 4


def test_deleting_a_car_records_its_cascade_under_the_car_aggregate(car_with_engine):
    car, engine, cylinders = car_with_engine
    with Context():
        Car.objects.get(pk=car.pk).delete()
    deletes = ObjectDelta.objects.for_aggregate(car).filter(action="Delete")
    assert {(d.content_type.model, d.content_id) for d in deletes} == {
        ("car", str(car.pk)),
        ("engine", str(engine.pk)),
        *(("cylinder", str(c.pk)) for c in cylinders),
    }


@pytest.mark.django_db
def test_aggregate_cycles_are_safe(monkeypatch):
    with Context():
        car = Car.objects.create(manufacturer="Saab")
        engine = Engine.objects.create(car=car)
    # A cycle: the car names its engine, the engine names its car.
    monkeypatch.setattr(Car, "get_event_aggregates", lambda self: (self.engine,), raising=False)
    registry.clear()  # models' aggregate support is read once per model
    with Context():
        car.manufacturer = "Saab AB"
        car.save()
    change = object_deltas(car)[-1]
    assert change in ObjectDelta.objects.for_aggregate(engine)
    assert list(change.aggregates.values_list("content_id", flat=True)) == [str(engine.pk)]


@pytest.mark.django_db(transaction=True)
def test_a_removed_listener_costs_later_writes_nothing():
    # A removed listener left its event type behind: every later write of that type, in
    # autocommit, read its deltas back for listeners that were gone.
    def listener(delta):
        pass

    make_author()  # content types looked up
    with Context(), count_queries() as before:
        make_author()
    event_listener("testapp.author.created")(listener)
    remove_listener(listener)
    with Context(), count_queries() as after:
        make_author()
    assert len(after) == len(before)
