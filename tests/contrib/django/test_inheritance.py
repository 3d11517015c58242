"""Multi-table inheritance: a change through either model keeps both histories true."""

from __future__ import annotations

import pytest

from revy import Context
from revy.contrib.django.history import history_of, revert, rollback, snapshot
from tests.factories import object_deltas
from tests.testapp.models import Place, Restaurant

pytestmark = pytest.mark.django_db


def assert_both_histories_match_the_database(pk) -> None:
    for model in (Place, Restaurant):
        stored = model._base_manager.filter(pk=pk).first()
        if stored is None:
            assert not history_of(model, pk).exists() or snapshot(model, pk) is None
            continue
        recorded = snapshot(model, pk)
        for field in model._meta.concrete_fields:
            assert getattr(recorded, field.attname) == getattr(stored, field.attname)


def test_creating_a_child_records_the_parent_row_too():
    with Context():
        restaurant = Restaurant.objects.create(name="Chez", serves_pizza=True)
    assert [delta.action for delta in object_deltas(Place, restaurant.pk)] == ["Create"]
    assert_both_histories_match_the_database(restaurant.pk)


def test_a_change_through_the_parent_model_updates_the_childs_history():
    with Context():
        restaurant = Restaurant.objects.create(name="Chez", serves_pizza=True)
    with Context():
        place = Place.objects.get(pk=restaurant.pk)
        place.name = "Chez Nous"
        place.save()
    assert [d.action for d in object_deltas(Restaurant, restaurant.pk)] == ["Create", "Update"]
    assert_both_histories_match_the_database(restaurant.pk)


def test_a_change_through_the_child_model_updates_the_parents_history():
    with Context():
        restaurant = Restaurant.objects.create(name="Chez", serves_pizza=False)
    with Context():
        restaurant.name = "Renamed"
        restaurant.serves_pizza = True
        restaurant.save()
    (update,) = [d for d in object_deltas(Place, restaurant.pk) if d.action == "Update"]
    assert {child.field_name for child in update.children.all()} == {"name"}
    assert_both_histories_match_the_database(restaurant.pk)


def test_a_change_of_the_childs_own_fields_records_nothing_for_the_parent():
    with Context():
        restaurant = Restaurant.objects.create(name="Chez")
        restaurant.serves_pizza = True
        restaurant.save()
    assert [d.action for d in object_deltas(Place, restaurant.pk)] == ["Create"]


def test_queryset_updates_through_either_model_keep_both_histories():
    with Context():
        restaurant = Restaurant.objects.create(name="a")
        Place.objects.filter(pk=restaurant.pk).update(name="b")
        Restaurant.objects.filter(pk=restaurant.pk).update(name="c", serves_pizza=True)
        Place.objects.bulk_update([Place(pk=restaurant.pk, name="d")], ["name"])
    assert_both_histories_match_the_database(restaurant.pk)
    assert snapshot(Restaurant, restaurant.pk).name == "d"


def test_plain_parent_rows_record_no_child_history():
    with Context():
        place = Place.objects.create(name="park")
        place.name = "big park"
        place.save()
    assert object_deltas(Restaurant, place.pk) == []
    assert_both_histories_match_the_database(place.pk)


def test_an_instance_of_the_other_model_saved_later_records_the_rows_real_old_values():
    with Context():
        restaurant = Restaurant.objects.create(name="a")
    with Context():
        loaded = Restaurant.objects.get(pk=restaurant.pk)
        place = Place.objects.get(pk=restaurant.pk)
        place.name = "b"
        place.save()
        loaded.serves_pizza = True
        loaded.save()  # writes name="a" back: a real change of the row
    assert Place.objects.get(pk=restaurant.pk).name == "a"
    assert_both_histories_match_the_database(restaurant.pk)


def test_deleting_either_model_and_rolling_back_keep_both_histories():
    with Context():
        restaurant = Restaurant.objects.create(name="a")
    created = history_of(restaurant).last()
    with Context():
        Place.objects.get(pk=restaurant.pk).delete()
    assert_both_histories_match_the_database(restaurant.pk)
    rollback(Restaurant, restaurant.pk, delta=created)
    assert_both_histories_match_the_database(restaurant.pk)
    revert(object_deltas(Restaurant, restaurant.pk)[-1].revision)
    assert_both_histories_match_the_database(restaurant.pk)
