"""Counterexamples found by the model-based history test, each shrunk to a plain example.

Each test is the smallest sequence the state machine (test_history_model_based.py) found for
one bug. While the bug is open the test is a strict xfail, and the machine steps around its
path (its `KNOWN_BUGS` names the test); once main fixes it, the test passes and both go.
"""

from __future__ import annotations

import pickle

import pytest

from revy import Context
from revy.contrib.django.history import diff, history_of, snapshot
from tests.contrib.django.helpers import change, created
from tests.trustapp.models import Item, Place, Shop, Stock, Tag

pytestmark = pytest.mark.django_db


def fields_of(instance) -> dict:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


@pytest.mark.xfail(strict=True, reason="Core: ModelConfig needs the pk among concrete fields")
def test_a_composite_primary_key_model_is_tracked():
    with Context():
        stock = Stock.objects.create(shop_code="s1", sku=1, quantity=2)

    assert fields_of(snapshot(Stock, stock.pk)) == {"shop_code": "s1", "sku": 1, "quantity": 2}


@pytest.mark.xfail(strict=True, reason="Core: in-place JSON mutation is compared by identity")
def test_a_json_value_mutated_in_place_is_recorded():
    item, _ = created(Item, code="a", data={"list": [1]})
    with Context():
        item = Item.objects.get(pk=item.pk)
        item.data["list"].append(2)
        item.save()

    assert snapshot(Item, item.pk).data == {"list": [1, 2]}


@pytest.mark.xfail(strict=True, reason="Core: instances loaded in a context hold a weakref")
def test_an_instance_loaded_in_a_context_pickles():
    item, _ = created(Item, code="a")
    with Context():
        loaded = Item.objects.get(pk=item.pk)
        copy = pickle.loads(pickle.dumps(loaded))
        copy.count = 5
        copy.save()

    assert snapshot(Item, item.pk).count == 5


@pytest.mark.xfail(strict=True, reason="Core: values are recorded as given, not as saved")
def test_a_decimal_given_as_an_integer_is_recorded_in_its_saved_form():
    item, creation = created(Item, code="a")  # amount: the default, the integer 1
    renaming = change(Item.objects.get(pk=item.pk), code="b")

    assert diff(Item, item.pk, since=creation, until=renaming) == {"code": {"old": "a", "new": "b"}}


@pytest.mark.xfail(strict=True, reason="Core: a child's save records nothing for its parent row")
def test_creating_a_child_records_its_parent_row():
    shop, _ = created(Shop, name="corner")

    assert fields_of(snapshot(Place, shop.pk)) == {"id": shop.pk, "name": "corner", "rating": 0}
    assert history_of(Place, shop.pk).count() == 1


@pytest.mark.xfail(strict=True, reason="Core: ignore_conflicts records every row as created")
def test_ignore_conflicts_records_nothing_for_a_row_not_inserted():
    created(Tag, slug="a", label="kept")
    with Context():
        Tag.objects.bulk_create([Tag(slug="a", label="ignored")], ignore_conflicts=True)

    assert snapshot(Tag, "a").label == "kept"
    assert [delta.action for delta in history_of(Tag, "a")] == ["Create"]


@pytest.mark.xfail(strict=True, reason="Core: an upsert records the existing row as a Create")
def test_update_conflicts_records_an_update_of_the_existing_row():
    item, _ = created(Item, code="a", count=1)
    with Context():
        Item.objects.bulk_create(
            [Item(code="a", count=5)],
            update_conflicts=True,
            unique_fields=["code"],
            update_fields=["count"],
        )

    assert [delta.action for delta in history_of(Item, item.pk)] == ["Update", "Create"]
    assert snapshot(Item, item.pk).count == 5
