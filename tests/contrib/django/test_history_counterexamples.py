"""Bugs the model-based history test reaches, each shrunk to a plain example.

Each test is the smallest sequence of public API calls that showed one bug of the state
machine in test_history_model_based.py. While the bug is open the test is a strict xfail and
the machine steps around its path (`KNOWN_BUGS` there names the test); once the bug is fixed
the marker and the switch go, and the test stays as its regression test.
"""

from __future__ import annotations

import json
import pickle

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Lower

from revy import Context
from revy.contrib.django import registry
from revy.contrib.django.history import diff, history_of, revert, rollback, snapshot
from tests.contrib.django.helpers import change, changed_fields, created, deleted, last_revision
from tests.factories import object_deltas
from tests.trustapp.models import Doc, Group, Item, Membership, Place, ProxyItem, Shop, Stock, Tag

pytestmark = pytest.mark.django_db


def fields_of(instance) -> dict:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def test_a_composite_primary_key_model_is_tracked():
    with Context():
        stock = Stock.objects.create(shop_code="s1", sku=1, quantity=2)

    assert fields_of(snapshot(Stock, stock.pk)) == {"shop_code": "s1", "sku": 1, "quantity": 2}


def test_a_json_value_mutated_in_place_is_recorded():
    item, _ = created(Item, code="a", data={"list": [1]})
    with Context():
        item = Item.objects.get(pk=item.pk)
        item.data["list"].append(2)
        item.save()

    assert snapshot(Item, item.pk).data == {"list": [1, 2]}


def test_an_instance_loaded_in_a_context_pickles():
    item, _ = created(Item, code="a")
    with Context():
        loaded = Item.objects.get(pk=item.pk)
        copy = pickle.loads(pickle.dumps(loaded))
        copy.count = 5
        copy.save()

    assert snapshot(Item, item.pk).count == 5


def test_a_decimal_given_as_an_integer_is_recorded_in_its_saved_form():
    item, creation = created(Item, code="a")  # amount: the default, the integer 1
    renaming = change(Item.objects.get(pk=item.pk), code="b")

    assert diff(Item, item.pk, since=creation, until=renaming) == {"code": {"old": "a", "new": "b"}}


def test_creating_a_child_records_its_parent_row():
    shop, _ = created(Shop, name="corner")

    assert fields_of(snapshot(Place, shop.pk)) == {"id": shop.pk, "name": "corner", "rating": 0}
    assert history_of(Place, shop.pk).count() == 1


def test_ignore_conflicts_records_nothing_for_a_row_not_inserted():
    created(Tag, slug="a", label="kept")
    with Context():
        Tag.objects.bulk_create([Tag(slug="a", label="ignored")], ignore_conflicts=True)

    assert snapshot(Tag, "a").label == "kept"
    assert [delta.action for delta in history_of(Tag, "a")] == ["Create"]


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


def test_refresh_from_db_of_a_relation_works():
    item, _ = created(Item, code="a")
    with Context():
        item = Item.objects.get(pk=item.pk)
        item.refresh_from_db(fields=["tags"])
        item.count = 3
        item.save()

    assert snapshot(Item, item.pk).count == 3


def test_bulk_update_records_the_value_an_expression_stored():
    item, _ = created(Item, code="a", count=1)
    with Context():
        item = Item.objects.get(pk=item.pk)
        item.count = F("count") + 1
        Item.objects.bulk_update([item], ["count"])

    assert snapshot(Item, item.pk).count == 2


def test_bulk_create_records_the_value_an_expression_stored():
    with Context():
        Item.objects.bulk_create([Item(code=Lower(Value("A")))])

    item = Item.objects.get()
    assert snapshot(Item, item.pk).code == "a"


def test_an_add_through_a_custom_through_model_records_one_creation():
    item, _ = created(Item, code="a")
    group, _ = created(Group, name="g")
    with Context():
        group.members.add(item, through_defaults={"role": "lead"})

    membership = Membership.objects.get()
    assert [delta.action for delta in history_of(membership)] == ["Create"]


def test_a_symmetrical_add_records_both_through_rows():
    created(Tag, slug="a")
    created(Tag, slug="b")
    with Context():
        Tag.objects.get(slug="a").related.add(Tag.objects.get(slug="b"))

    links = Tag.related.through.objects.order_by("from_tag_id")
    assert [(link.from_tag_id, link.to_tag_id) for link in links] == [("a", "b"), ("b", "a")]
    for link in links:
        assert [delta.action for delta in history_of(link)] == ["Create"]


def test_a_sliced_update_leaves_the_atomic_block_usable():
    with Context(), transaction.atomic():
        with pytest.raises(TypeError):
            Item.objects.all()[:1].update(count=1)
        Item.objects.create(code="a")

    assert Item.objects.count() == 1


def test_bulk_create_of_a_child_model_leaves_the_atomic_block_usable():
    with Context(), transaction.atomic():
        with pytest.raises(ValueError):
            Shop.objects.bulk_create([Shop(name="corner")])
        Item.objects.create(code="a")

    assert Item.objects.count() == 1


def test_an_update_of_a_joined_field_raises_django_s_own_error():
    with pytest.raises(FieldDoesNotExist):  # Django's answer, from its get_field()
        Doc.objects.update(owner__code="x")


def test_a_save_that_only_moves_auto_now_is_recorded():
    item, _ = created(Item, code="a")
    doc, _ = created(Doc, owner=item, title="t")
    with Context():
        doc = Doc.objects.get(pk=doc.pk)
        doc.save()  # Django sets `touched` to now: the row changed

    assert snapshot(Doc, doc.pk).touched == Doc.objects.get(pk=doc.pk).touched


class _Rollback(Exception):
    pass


def test_an_update_rolled_back_by_a_savepoint_leaves_no_stale_base():
    item, _ = created(Item, code="a", count=0)
    with Context():
        item = Item.objects.get(pk=item.pk)
        with pytest.raises(_Rollback), transaction.atomic():
            Item.objects.filter(pk=item.pk).update(count=5)
            raise _Rollback
        item.count = 5
        item.save()

    assert snapshot(Item, item.pk).count == Item.objects.get(pk=item.pk).count == 5


def forget_content_type(model) -> None:
    """Make `model`'s content type missing, as in a process that never used it."""
    ContentType.objects.filter(
        app_label=model._meta.app_label, model=model._meta.model_name
    ).delete()
    ContentType.objects.clear_cache()
    registry.clear()  # revy keeps content type ids as long as Django's cache does


@pytest.mark.django_db(transaction=True)  # the content type must really be rolled back
def test_a_content_type_rolled_back_with_the_user_s_transaction_is_not_kept():
    item, _ = created(Item, code="a")
    tag, _ = created(Tag, slug="t")
    forget_content_type(Item.tags.through)
    with pytest.raises(_Rollback), Context(), transaction.atomic():
        item.tags.add(tag)
        raise _Rollback

    with Context():
        item.tags.add(tag)  # failed at commit: the cached content type id was rolled back

    link = Item.tags.through.objects.get()
    assert [delta.action for delta in history_of(link)] == ["Create"]


def test_an_expression_left_out_by_update_fields_is_recorded_when_saved():
    item, _ = created(Item, code="a", count=0)
    with Context():
        item = Item.objects.get(pk=item.pk)
        item.count = F("count") + 2
        item.save(update_fields=["data"])  # count is not written
        item.save()  # now it is

    assert Item.objects.get(pk=item.pk).count == 2
    assert snapshot(Item, item.pk).count == 2


def test_the_system_is_no_co_author_of_the_values_django_sets(user):
    with Context(actor=user):
        item = Item.objects.create(code="a")  # the auto primary key: the system's
    assert last_revision().get_actors() == [user]

    with Context(actor=user):
        doc = Doc.objects.create(owner=item, title="t")
    with Context(actor=user):
        doc.title = "u"
        doc.save()  # `touched`, auto_now: the system's

    assert last_revision().get_actors() == [user]


def test_bulk_create_through_a_proxy_model_is_recorded():
    with Context():
        ProxyItem.objects.bulk_create([ProxyItem(code="a")])

    item = Item.objects.get()
    assert snapshot(Item, item.pk).code == "a"


def test_reverting_the_deletion_of_a_child_creates_its_parent_row_once():
    shop, _ = created(Shop, name="corner")
    deletion = deleted(Shop.objects.get(pk=shop.pk))

    revert(deletion)

    place_type = ContentType.objects.get_for_model(Place)
    actions = history_of(Place, shop.pk).filter(content_type=place_type).order_by("pk")
    assert list(actions.values_list("action", flat=True)) == ["Create", "Delete", "Create"]


def test_rolling_back_a_child_whose_parent_row_exists_records_no_parent_creation():
    shop, creation = created(Shop, name="corner")
    deleted(Shop.objects.get(pk=shop.pk))
    rollback(Place, shop.pk, revision=creation)  # the parent row alone

    rollback(Shop, shop.pk, revision=creation)  # the child row, onto the existing parent

    place_type = ContentType.objects.get_for_model(Place)
    actions = history_of(Place, shop.pk).filter(content_type=place_type).order_by("pk")
    assert list(actions.values_list("action", flat=True)) == ["Create", "Delete", "Create"]
    assert snapshot(Shop, shop.pk).name == "corner"


def _deletion_rolled_back(instance) -> None:
    """Delete in a transaction that rolls back: Django still clears the instance's key."""
    with pytest.raises(RuntimeError), transaction.atomic(), Context():
        instance.delete()
        raise RuntimeError("roll back")


def test_a_row_whose_deletion_rolled_back_is_saved_as_an_update():
    # The instance is left without its key: a CharField key's save() takes its default "",
    # and Django UPDATEs the row that has that key.
    Tag.objects.create(slug="", label="a")
    tag, _ = created(Tag, slug="t1", label="b")
    _deletion_rolled_back(tag)

    change(tag, label="c")

    actions = history_of(Tag, "").order_by("pk").values_list("action", flat=True)
    assert list(actions) == ["Update"]
    assert Tag.objects.get(slug="").label == "c"


def test_a_child_whose_deletion_rolled_back_is_saved_as_an_update():
    # delete() clears only the child's link; Django saves the parent under its own key first
    # and the link takes it, so both rows are UPDATEd.
    shop, _ = created(Shop, name="p")
    _deletion_rolled_back(shop)

    change(shop, name="q")

    for model in (Shop, Place):
        own = ContentType.objects.get_for_model(model)
        deltas = history_of(model, shop.id).filter(content_type=own).order_by("pk")
        assert list(deltas.values_list("action", flat=True)) == ["Create", "Update"]
        assert changed_fields(deltas.last()) == {"name": ("p", "q")}


def test_ignore_conflicts_on_a_model_with_a_json_field_is_recorded():
    with Context():
        Item.objects.bulk_create([Item(code="a")], ignore_conflicts=True)  # data={}
        Item.objects.create(code="b", data={"z": 1, "a": [2, {"k": None}]})
    with Context():
        Item.objects.bulk_create(
            [
                Item(code="b", data={"other": True}),  # a conflict: nothing recorded
                Item(code="c", data={"z": 1, "a": [2, {"k": None}]}),
            ],
            ignore_conflicts=True,
        )

    assert snapshot(Item, Item.objects.get(code="a").pk).code == "a"
    b, c = Item.objects.get(code="b"), Item.objects.get(code="c")
    assert [delta.action for delta in history_of(Item, b.pk)] == ["Create"]
    assert snapshot(Item, c.pk).data == c.data == {"z": 1, "a": [2, {"k": None}]}


def test_an_expression_saved_without_effect_is_not_kept_as_the_value_history_compares_with():
    # F("count") + 0 changes nothing, and the instance still holds the expression afterwards:
    # the next save's old value was that expression (recorded as its repr), not the count.
    item = Item.objects.create(code="f0", count=5)
    with Context():
        item.count = F("count") + 0
        item.save(update_fields=["code", "count"])
        item.count = F("count") + 2
        item.save()

    last = object_deltas(item)[-1]
    assert changed_fields(last) == {"count": (5, 7)}


JSON_CHANGES = [(0, False), (1, True), ({"a": 0}, {"a": False}), ([1], [True])]


@pytest.mark.parametrize(("old", "new"), JSON_CHANGES)
def test_a_json_value_python_finds_equal_to_the_old_one_is_recorded_by_save(old, new):
    # 0 == False and 1 == True in Python; in JSON they are different values, and the
    # database stores the new one.
    item = Item.objects.create(code="j0", data=old)
    with Context():
        item.data = new
        item.save()

    last = object_deltas(item)[-1]
    assert last.action == "Update"
    assert json.dumps(last.data["data"]) == json.dumps(new)
    assert json.dumps(changed_fields(last)["data"]) == json.dumps([old, new])


@pytest.mark.parametrize(("old", "new"), JSON_CHANGES)
def test_a_json_value_python_finds_equal_to_the_old_one_is_recorded_by_update(old, new):
    item = Item.objects.create(code="j1", data=old)
    with Context():
        Item.objects.filter(pk=item.pk).update(data=new)

    last = object_deltas(item)[-1]
    assert last.action == "Update"
    assert json.dumps(changed_fields(last)["data"]) == json.dumps([old, new])
