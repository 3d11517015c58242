"""What revy keeps of an instance always matches what the database holds.

Values changed in place (JSON), instances pickled or copied, rows changed behind an instance's
back by bulk writes later rolled back, and values given in another form than the one the
database stores: the recorded state equals the row.
"""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import transaction

from revy import Context
from revy.contrib.django.history import diff, history_of, snapshot
from tests.contrib.django.helpers import changed_fields
from tests.factories import make_author, make_book, make_ledger, object_deltas
from tests.testapp.models import Author, Book, Ledger, Measured, Size, Stamped

pytestmark = pytest.mark.django_db


def changes(delta) -> dict:
    """{field: (old, new)} of a delta, without the auto_now field every save sets."""
    found = changed_fields(delta)
    found.pop("updated", None)
    return found


def assert_history_matches_database(instance) -> None:
    model = type(instance)
    recorded = snapshot(model, instance.pk)
    stored = model._base_manager.get(pk=instance.pk)
    for field in model._meta.concrete_fields:
        assert getattr(recorded, field.attname) == getattr(stored, field.attname), field.attname


# JSON values changed in place ----------------------------------------------------------------


def test_a_json_value_mutated_in_place_after_loading_is_recorded(user):
    with Context():
        stamped = Stamped.objects.create(label="s", payload={"a": 1, "list": [1]})
    with Context(actor=user):
        stamped = Stamped.objects.get(pk=stamped.pk)
        stamped.payload["a"] = 2
        stamped.payload["list"].append(2)
        stamped.save()
    assert changes(object_deltas(stamped)[-1]) == {
        "payload": ({"a": 1, "list": [1]}, {"a": 2, "list": [1, 2]})
    }
    assert_history_matches_database(stamped)


def test_a_json_value_mutated_in_place_after_a_save_is_recorded_at_the_next_save():
    with Context():
        stamped = Stamped.objects.create(label="s", payload={"n": 0})
        for n in range(1, 4):
            stamped.payload["n"] = n
            stamped.save()
    updates = [changes(delta) for delta in object_deltas(stamped)[1:]]
    assert updates == [{"payload": ({"n": n - 1}, {"n": n})} for n in range(1, 4)]
    assert_history_matches_database(stamped)


def test_in_place_changes_by_two_actors_are_attributed_to_each(user, other_user):
    with Context():
        stamped = Stamped.objects.create(label="s", payload={})
    with Context(actor=user):
        stamped = Stamped.objects.get(pk=stamped.pk)
        stamped.payload["by"] = "alice"
        with Context.via_actor(other_user):
            stamped.payload["also"] = "bob"
        stamped.save()
    delta = object_deltas(stamped)[-1]
    values = [
        (a.actor_id, a.old_value, a.new_value)
        for a in delta.children.order_by("id")
        if a.field_name == "payload"
    ]
    assert values == [
        (str(user.pk), {}, {"by": "alice"}),
        (str(other_user.pk), {"by": "alice"}, {"by": "alice", "also": "bob"}),
    ]


# Pickled and copied instances ----------------------------------------------------------------


def test_an_instance_loaded_inside_a_context_pickles_and_records_after_unpickling(user):
    author = make_author(name="before")
    with Context(actor=user):
        loaded = Author.objects.get(pk=author.pk)
        restored = pickle.loads(pickle.dumps(loaded))
        restored.name = "after"
        restored.save()
    assert changes(object_deltas(author)[-1]) == {"name": ("before", "after")}
    assert_history_matches_database(author)


def test_an_instance_loaded_inside_a_context_can_be_cached_and_deep_copied():
    author = make_author(name="before")
    with Context():
        loaded = Author.objects.get(pk=author.pk)
        cache.set("author", loaded)
        copied = copy.deepcopy(loaded)
        copied.name = "copied"
        copied.save()
        cached = cache.get("author")
        cached.name = "cached"
        cached.save()
    assert [changes(delta) for delta in object_deltas(author)] == [
        {"name": ("before", "copied")},
        {"name": ("copied", "cached")},
    ]


# Bulk writes rolled back with their savepoint ------------------------------------------------


def test_an_update_rolled_back_with_its_savepoint_leaves_no_stale_base():
    author = make_author(name="a")
    with Context(), transaction.atomic():
        loaded = Author.objects.get(pk=author.pk)
        try:
            with transaction.atomic():
                Author.objects.filter(pk=author.pk).update(name="b")
                raise RuntimeError
        except RuntimeError:
            pass
        loaded.name = "b"  # what the rolled-back update had written
        loaded.save()
    assert Author.objects.get(pk=author.pk).name == "b"
    assert changes(object_deltas(author)[-1]) == {"name": ("a", "b")}
    assert_history_matches_database(author)


def test_a_bulk_update_rolled_back_with_its_savepoint_leaves_no_stale_base():
    author = make_author(name="a")
    with Context(), transaction.atomic():
        loaded = Author.objects.get(pk=author.pk)
        try:
            with transaction.atomic():
                loaded.name = "b"
                Author.objects.bulk_update([loaded], ["name"])
                raise RuntimeError
        except RuntimeError:
            pass
        loaded.save()
    assert changes(object_deltas(author)[-1]) == {"name": ("a", "b")}
    assert_history_matches_database(author)


# Values in the form the database stores ------------------------------------------------------


def test_a_decimal_default_given_as_an_integer_is_not_a_change():
    with Context():
        ledger = make_ledger(amount=Decimal("10.00"))  # exchange_rate=1 (the default)
    assert snapshot(Ledger, ledger.pk).exchange_rate == Decimal("1.0000")
    with Context():
        loaded = Ledger.objects.get(pk=ledger.pk)
        loaded.memo = "memo"
        loaded.save()
    created = history_of(ledger).order_by("id").first()
    assert diff(Ledger, ledger.pk, since=created, until=None) == {
        "memo": {"old": "", "new": "memo"}
    }
    assert_history_matches_database(ledger)


def test_values_given_in_another_type_are_recorded_as_stored():
    with Context():
        author = Author.objects.create(name=123)  # a CharField given an int
        ledger = Ledger.objects.create(amount="7.5", exchange_rate=2)
    assert object_deltas(author)[0].data["name"] == "123"
    assert object_deltas(ledger)[0].data["amount"] == "7.50"
    assert object_deltas(ledger)[0].data["exchange_rate"] == "2.0000"
    with Context():
        loaded = Author.objects.get(pk=author.pk)
        loaded.name = "123"
        loaded.save()
    assert len(object_deltas(author)) == 1  # nothing changed


def test_expressions_in_bulk_create_and_bulk_update_are_recorded_as_stored():
    from django.db.models import F, Value
    from django.db.models.functions import Lower, Upper

    with Context():
        (author,) = Author.objects.bulk_create([Author(name=Lower(Value("ABC")))])
        books = [Book(author=author, title="t", pages=1)]
        (book,) = Book.objects.bulk_create(books)
        book.pages = F("pages") + 1
        book.title = Upper(Value("x"))
        Book.objects.bulk_update([book], ["pages", "title"])
    assert object_deltas(author)[0].data["name"] == "abc"
    assert changes(object_deltas(book)[-1]) == {"pages": (1, 2), "title": ("t", "X")}
    assert_history_matches_database(author)
    assert_history_matches_database(Book.objects.get(pk=book.pk))


def test_a_custom_field_type_is_recorded_and_read_back():
    with Context():
        thing = Measured.objects.create(size=Size(3, 4))
        thing.size = Size(5, 6)
        thing.save()
    assert snapshot(Measured, thing.pk).size == Size(5, 6)
    assert changes(object_deltas(thing)[-1]) == {"size": ("3x4", "5x6")}


def test_a_model_instance_assigned_to_a_foreign_keys_attname_is_recorded_by_its_key():
    book = make_book()
    first, other = book.author_id, make_author()
    with Context():
        book.author_id = other
        book.save()
    assert changes(object_deltas(book)[-1]) == {"author_id": (first, other.pk)}


# Actors ---------------------------------------------------------------------------------------


def test_values_django_assigns_by_itself_do_not_make_the_system_an_actor(user):
    with Context(actor=user):
        Stamped.objects.create(label="s")  # uuid pk, auto_now and auto_now_add
        make_author()  # an auto-incremented pk
    revision = object_deltas(Stamped)[0].revision
    assert revision.get_actors() == [user]
    pk = next(a for a in object_deltas(Stamped)[0].children.all() if a.field_name == "id")
    assert (pk.actor_id, pk.automatic) == (None, True)


def test_a_system_correction_makes_the_system_an_actor(user):
    with Context(actor=user):
        ledger = make_ledger()
        with Context.via_actor(None):
            ledger.memo = "corrected"
        ledger.save()
    assert object_deltas(ledger)[-1].revision.get_actors() == [None, user]
