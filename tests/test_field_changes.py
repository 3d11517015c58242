"""`revy_api.field_changes`: a page's field changes in one query, as plain rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from revy import Context
from revy.contrib.django.events import record_event
from revy_api.field_changes import field_changes, load_field_changes, loaded_field_changes
from tests.factories import attribute_deltas, make_author, make_book, object_deltas

pytestmark = pytest.mark.django_db


def _rows(changes) -> list[tuple]:
    """What the APIs show of each field change (a `FieldChange` or an attribute delta)."""
    return [
        (
            change.pk,
            change.field_name,
            change.action,
            change.old_value,
            change.new_value,
            change.actor_type_id,
            change.actor_id,
            change.description,
            change.created_at,
        )
        for change in changes
    ]


def test_a_page_reads_the_field_changes_of_all_its_deltas_in_one_query(user):
    with Context.via_actor(user):
        book = make_book(title="One")
        book.title = "Two"
        book.save()
        record_event(book, "book.read")  # an event: no field changes
    deltas = object_deltas(book)
    assert [delta.action for delta in deltas] == ["Create", "Update", "Event"]

    with CaptureQueriesContext(connection) as queries:
        load_field_changes(deltas)
        load_field_changes(deltas)  # loaded already: nothing more
    assert len(queries) == 1

    for delta in deltas:
        loaded = loaded_field_changes(delta)
        assert loaded is not None
        assert _rows(loaded) == _rows(attribute_deltas(delta))
        assert all(change.parent is delta for change in loaded)
    (update,) = loaded_field_changes(deltas[1]) or ()
    assert (update.field_name, update.old_value, update.new_value) == ("title", "One", "Two")
    assert update.actor_id == str(user.pk)
    assert loaded_field_changes(deltas[2]) == []


def test_a_delta_on_its_own_reads_its_field_changes_when_asked():
    with Context():
        author = make_author(name="Ann")
    (delta,) = object_deltas(author)
    assert loaded_field_changes(delta) is None
    with CaptureQueriesContext(connection) as queries:
        first = field_changes(delta)
        again = field_changes(delta)
    assert len(queries) == 1
    assert first is again
    assert _rows(first) == _rows(attribute_deltas(delta))
    assert [change.pk for change in first] == sorted(change.pk for change in first)


def test_a_row_twice_in_a_page_gets_its_field_changes_both_times():
    with Context():
        author = make_author(name="Ann")
    (delta,) = object_deltas(author)
    (twin,) = object_deltas(author)
    load_field_changes([delta, twin])
    assert _rows(loaded_field_changes(delta) or ()) == _rows(attribute_deltas(delta))
    assert _rows(loaded_field_changes(twin) or ()) == _rows(attribute_deltas(delta))
