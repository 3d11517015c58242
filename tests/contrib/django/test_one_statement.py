"""One statement per tracked single-row save on PostgreSQL (`REVY_ONE_STATEMENT`).

Statements are counted where the database sees them (`benchmarks.harness.StatementCounter`:
libpq's protocol trace on PostgreSQL, SQLite's trace callback), transaction control included.
The history written must be the history today's path writes: the same operations are run
with the setting off and on, and their history rows compared.
"""

from __future__ import annotations

import datetime
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness import StatementCounter
from revy import Context
from revy.contrib.django import recorder, registry
from revy.contrib.django.tracking import select_row
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)
from tests.factories import history_counts, make_author
from tests.strategies import json_values, texts
from tests.testapp.models import Author, Book, Ledger, Review, Secret, Stamped

POSTGRES = connection.vendor == "postgresql"
ONE_STATEMENT = override_settings(REVY_ONE_STATEMENT=True)


def counted(operation) -> tuple[int, int]:
    """(statements, transaction control) the database ran for `operation`."""
    with StatementCounter() as counter:
        operation()
    return counter.statements, counter.transaction_control


OBJECT_DELTA = (
    "actor_type_id",
    "actor_id",
    "action",
    "event_type",
    "description",
    "content_type_id",
    "content_id",
    "data",
)
ATTRIBUTE_DELTA = (
    "actor_type_id",
    "actor_id",
    "action",
    "description",
    "content_type_id",
    "content_id",
    "field_name",
    "old_value",
    "new_value",
    "automatic",
)


def history() -> list[tuple]:
    """Every history row, without ids and times (revisions and parents by position)."""
    revisions = get_revision_model().objects.order_by("id").values_list("id", flat=True)
    revision = {pk: number for number, pk in enumerate(revisions)}
    parents = get_object_delta_model().objects.order_by("id").values_list("id", flat=True)
    parent = {pk: number for number, pk in enumerate(parents)}
    objects = [
        (revision[row[0]], *row[1:])
        for row in get_object_delta_model()
        .objects.order_by("id")
        .values_list("revision_id", *OBJECT_DELTA)
    ]
    attributes = [
        (revision[row[0]], parent[row[1]], *row[2:])
        for row in get_attribute_delta_model()
        .objects.order_by("parent_id", "field_name", "id")
        .values_list("revision_id", "parent_id", *ATTRIBUTE_DELTA)
    ]
    return [*objects, *attributes]


def normalized(rows: list[tuple]) -> list[tuple]:
    """`history()` with the keys of Books and Reviews replaced by the order they first appear
    in, so that two runs (whose sequences hand out different keys) compare equal."""
    book, review = (ContentType.objects.get_for_model(model).pk for model in (Book, Review))
    seen: dict[tuple, str] = {}

    def key(content_type: int, value):
        if value is None:
            return None
        return seen.setdefault((content_type, str(value)), f"#{len(seen)}")

    # What each key-holding field refers to, by the content type of the row holding it.
    refers = {(book, "id"): book, (review, "id"): review, (review, "book_id"): book}
    result = []
    for row in rows:
        content_type = row[6]
        if content_type not in (book, review):
            result.append(row)
        elif len(row) == 9:  # an object delta: its content id and the keys in its state
            data = {
                name: key(refers[content_type, name], value)
                if (content_type, name) in refers
                else value
                for name, value in row[8].items()
            }
            result.append((*row[:7], key(content_type, row[7]), data))
        else:  # an attribute delta: its content id, and its values if it holds a key
            values = list(row)
            values[7] = key(content_type, row[7])
            target = refers.get((content_type, row[8]))
            if target is not None:
                values[9:11] = [key(target, value) for value in row[9:11]]
            result.append(tuple(values))
    return result


def run(scenario, user, one_statement: bool) -> list[tuple]:
    """Run `scenario(user, keys)` with the setting as given; return its normalized history
    and remove the history and the rows it wrote."""
    get_attribute_delta_model().objects.all().delete()
    get_object_delta_model().objects.all().delete()
    get_revision_model().objects.all().delete()
    keys: list = []
    with override_settings(REVY_ONE_STATEMENT=one_statement):
        scenario(user, keys)
    rows = normalized(history())
    Review.objects.filter(book__in=keys).delete()
    Book.objects.filter(pk__in=keys).delete()
    return rows


# Scenarios: each writes Books of one author inside contexts, appending their keys to `keys`.


def create_then_update(user, keys):
    author = Author.objects.get(name="Writer")
    with Context.via_actor(user):
        book = Book(author=author, title="A", pages=1)
        book.save()
        keys.append(book.pk)
        book.title = "B"
        book.pages = 2
        book.save()
        book.save()  # nothing changed: nothing recorded
        book.price = "3.50"
        book.save(update_fields=["price"])


def two_actors(user, keys):
    author = Author.objects.get(name="Writer")
    other = Author.objects.get(name="Other actor")
    with Context.via_actor(user):
        book = Book(author=author, title="A")
        book.title = "A2"
        Context.set_actor(other)
        book.pages = 5
        book.save()
        keys.append(book.pk)


def loaded_before_the_context(user, keys):
    author = Author.objects.get(name="Writer")
    book = Book.objects.create(author=author, title="Outside")
    keys.append(book.pk)
    loaded = Book.objects.get(pk=book.pk)
    with Context.via_actor(user):
        loaded.title = "Inside"
        loaded.save()
    with Context.via_actor(user):
        again = Book.objects.get(pk=book.pk)
        again.pages = 7
        again.save()


def given_keys_and_forced_inserts(user, keys):
    author = Author.objects.get(name="Writer")
    with Context.via_actor(user):
        book = Book(author=author, title="Given", pk=900_001)
        book.save(force_insert=True)
        keys.append(book.pk)
        book.title = "Forced update"
        book.save(force_update=True)
        other = Book(author=author, title="Given, no force", pk=900_002)
        other.save()
        keys.append(other.pk)


def rolled_back_revision(user, keys):
    author = Author.objects.get(name="Writer")
    with Context.via_actor(user):
        try:
            with transaction.atomic():
                book = Book.objects.create(author=author, title="Rolled back")
                raise RuntimeError
        except RuntimeError:
            pass
        book = Book.objects.create(author=author, title="Kept")
        keys.append(book.pk)


def deletions(user, keys):
    author = Author.objects.get(name="Writer")
    book = Book.objects.create(author=author, title="Reviewed")
    keys.append(book.pk)
    loaded = Review.objects.create(book=book, text="Loaded before")
    with Context.via_actor(user):
        review = Review.objects.create(book=book, text="Short-lived")
        review.delete()
        loaded.delete()
        Review.objects.create(book=book, text="Kept")
        book.title = "Reviewed, again"
        book.save()


SCENARIOS = pytest.mark.parametrize(
    "scenario",
    [
        deletions,
        create_then_update,
        two_actors,
        loaded_before_the_context,
        given_keys_and_forced_inserts,
        rolled_back_revision,
    ],
)


@pytest.mark.django_db(transaction=True)
@SCENARIOS
def test_the_history_is_the_same_in_autocommit(user, scenario):
    make_author(name="Writer")
    make_author(name="Other actor")
    assert run(scenario, user, True) == run(scenario, user, False)


@pytest.mark.django_db
@SCENARIOS
def test_the_history_is_the_same_in_a_transaction(user, scenario):
    make_author(name="Writer")
    make_author(name="Other actor")
    assert run(scenario, user, True) == run(scenario, user, False)


# Statement counts ------------------------------------------------------------------------------


def saves(user) -> list[tuple[int, int]]:
    """(statements, transaction control) of: a create, a second create, an update of an
    instance loaded in the context, an update with update_fields, the deletion of a row with
    no dependent rows, all in one context."""
    author = make_author()
    # Content types are looked up once per process (a flush by an earlier test empties them).
    for model in (Book, Review, type(user)):
        registry.content_type_id(model)
    with Context.via_actor(user):
        first = counted(lambda: Book.objects.create(author=author, title="First"))
        second = counted(lambda: Book.objects.create(author=author, title="Second"))
        book = Book.objects.get(title="First")
        book.title = "First, again"
        update = counted(book.save)
        book.pages = 3
        partial = counted(lambda: book.save(update_fields=["pages"]))
        review = Review.objects.create(book=book, text="Deleted")
        deletion = counted(review.delete)
    return [first, second, update, partial, deletion]


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@ONE_STATEMENT
def test_a_tracked_save_is_one_statement_in_autocommit(user):
    assert saves(user) == [(1, 0)] * 5
    assert history_counts() == (1, 6, 12 + 1 + 1 + 3)


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db
@ONE_STATEMENT
def test_a_tracked_save_is_one_statement_in_a_transaction(user):
    assert saves(user) == [(1, 0)] * 5
    assert history_counts() == (1, 6, 12 + 1 + 1 + 3)


@pytest.mark.skipif(not POSTGRES, reason="today's path, for comparison")
@pytest.mark.django_db(transaction=True)
@override_settings(REVY_ONE_STATEMENT=False)
def test_without_the_setting_a_save_has_a_transaction_and_history_statements(user):
    assert saves(user) == [(4, 2), (3, 2), (3, 2), (3, 2), (2, 2)]


@pytest.mark.skipif(POSTGRES, reason="SQLite keeps today's path")
@pytest.mark.django_db(transaction=True)
def test_the_setting_changes_nothing_on_sqlite(user):
    with override_settings(REVY_ONE_STATEMENT=False):
        before = saves(user)
    with ONE_STATEMENT:
        assert saves(user) == before


# Django's behaviour, kept --------------------------------------------------------------------


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@ONE_STATEMENT
def test_a_failed_insert_raises_as_django_does_and_records_nothing(user):
    author = make_author()
    book = Book.objects.create(author=author, title="Taken")
    before = history_counts()
    with Context.via_actor(user):
        with pytest.raises(IntegrityError):
            Book(author=author, title="Again", pk=book.pk).save(force_insert=True)
        # Autocommit: the connection is usable, as after Django's own failed INSERT.
        Book.objects.create(author=author, title="Next")
    assert history_counts()[1:] == (before[1] + 1, before[2] + 6)


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db
@ONE_STATEMENT
def test_a_failed_insert_in_a_block_marks_it_for_rollback(user):
    author = make_author()
    book = Book.objects.create(author=author, title="Taken")
    with Context.via_actor(user):
        with pytest.raises(IntegrityError), transaction.atomic():
            Book(author=author, title="Again", pk=book.pk).save(force_insert=True)
        assert not connection.needs_rollback
        Book.objects.create(author=author, title="Next")
    assert [d.action for d in get_object_delta_model().objects.all()] == ["Create"]


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@ONE_STATEMENT
def test_a_raising_post_save_receiver_keeps_the_row_and_its_history(user):
    author = make_author()

    def refuse(sender, instance, **kwargs):
        raise ValueError("post_save")

    post_save.connect(refuse, sender=Book)
    try:
        with Context.via_actor(user), pytest.raises(ValueError):
            Book.objects.create(author=author, title="Saved")
    finally:
        post_save.disconnect(refuse, sender=Book)
    book = Book.objects.get(title="Saved")
    assert [d.action for d in get_object_delta_model().objects.filter(content_id=str(book.pk))] == [
        "Create"
    ]


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@ONE_STATEMENT
def test_a_save_inside_a_signal_of_a_save_records_both(user):
    author = make_author()

    def also_save(sender, instance, created, **kwargs):
        if created and instance.title == "Outer":
            Book.objects.create(author=author, title="Inner")

    post_save.connect(also_save, sender=Book)
    try:
        with Context.via_actor(user):
            outer = Book.objects.create(author=author, title="Outer")
    finally:
        post_save.disconnect(also_save, sender=Book)
    inner = Book.objects.get(title="Inner")
    deltas = get_object_delta_model().objects.order_by("id")
    assert [(d.content_id, d.data["title"]) for d in deltas] == [
        (str(outer.pk), "Outer"),
        (str(inner.pk), "Inner"),
    ]
    assert len({d.revision_id for d in deltas}) == 1


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@override_settings(REVY_ONE_STATEMENT=True, REVY_TRACK_OUTSIDE_CONTEXT=True)
def test_outside_a_context_every_write_is_one_statement_and_its_own_revision():
    author = make_author()
    registry.content_type_id(Book)  # once per process (a flush by an earlier test empties it)
    book = Book(author=author, title="Outside")
    assert counted(book.save) == (1, 0)
    book.title = "Still outside"
    assert counted(book.save) == (1, 0)
    book_type = ContentType.objects.get_for_model(Book)
    deltas = get_object_delta_model().objects.filter(content_type=book_type).order_by("id")
    assert [(d.action, d.actor_id) for d in deltas] == [("Create", None), ("Update", None)]
    assert len({d.revision_id for d in deltas}) == 2


# Rows whose state is not known -----------------------------------------------------------------
#
# An instance loaded before its context (or in another one) does not know whether its row
# changed since: its deletion builds the Delete delta's state from the row the DELETE returns,
# in the same statement, where the default path reads the row first. The state must be the
# one the Python path encodes (`recorder.state_json`) for every value.


def deleted_state(instance, user) -> tuple[dict, dict]:
    """(state the delete recorded, state the Python path encodes from the row) of deleting
    `instance`, loaded outside the context, in one statement."""
    model = type(instance)
    config = registry.config_for(model)
    loaded = model.objects.get(pk=instance.pk)
    expected = json.loads(recorder.state_json(config, select_row(config, "default", instance.pk)))
    registry.content_type_id(model)
    with Context.via_actor(user):
        assert counted(loaded.delete) == (1, 0)
    delta = get_object_delta_model().objects.order_by("-id").first()
    assert (delta.action, delta.content_id) == ("Delete", str(instance.pk))
    return delta.data, expected


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    label=texts,
    payload=json_values,
    blob=st.none() | st.binary(max_size=20),
    duration=st.none()
    | st.timedeltas(
        min_value=datetime.timedelta(days=-9999), max_value=datetime.timedelta(days=9999)
    ),
)
def test_a_deletion_builds_the_state_the_python_path_records(label, payload, blob, duration):
    user = get_user_model().objects.get_or_create(username="deleting")[0]
    stamped = Stamped.objects.create(label=label, payload=payload, blob=blob, duration=duration)
    recorded, expected = deleted_state(stamped, user)
    assert recorded == expected


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount=st.decimals(min_value=-(10**9), max_value=10**9, places=2),
    rate=st.decimals(min_value=-(10**7), max_value=10**7, places=4),
    memo=texts,
)
def test_a_deletion_builds_the_state_of_decimals(amount, rate, memo):
    user = get_user_model().objects.get_or_create(username="deleting")[0]
    ledger = Ledger.objects.create(amount=amount, exchange_rate=rate, memo=memo)
    recorded, expected = deleted_state(ledger, user)
    assert recorded == expected


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_deletion_builds_a_state_without_masked_and_excluded_fields(user):
    secret = Secret.objects.create(name="n", pin="1234", internal="i")
    recorded, expected = deleted_state(secret, user)
    assert recorded == expected == {"id": secret.pk, "name": "n"}


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_deleting_a_row_already_gone_records_nothing(user):
    review = Review.objects.create(book=Book.objects.create(author=make_author()), text="x")
    loaded = Review.objects.get(pk=review.pk)
    Review.objects.filter(pk=review.pk).delete()
    before = history_counts()
    with Context.via_actor(user):
        loaded.delete()
    assert history_counts() == before


# An update of an instance loaded before its context reads the old row in its own statement
# and records what the read-then-write path records: the same fields, old and new values,
# actors (the system's, automatic, for what Django sets during the save, such as auto_now).


# Values that differ between two runs of the same save.
TIMES_AND_KEYS = ("id", "created", "updated")


def saved_history(model, create: dict, assign: dict, meanwhile: dict, user, one: bool):
    """Create a row, load it outside any context, let `meanwhile` change the row behind the
    instance's back, assign `assign` and save in a context; return the save's history (the
    row's last object delta and its attribute deltas, without ids and times) and its
    (statements, transaction control)."""
    row = model.objects.create(**create)
    loaded = model.objects.get(pk=row.pk)
    if meanwhile:
        model.objects.filter(pk=row.pk).update(**meanwhile)
    for name, value in assign.items():
        setattr(loaded, name, value)
    last = get_object_delta_model().objects.order_by("-id").values_list("id", flat=True).first()
    registry.content_type_id(model)
    described = Context(
        actor=user, object_delta_description="saved", attribute_delta_description="set"
    )
    with override_settings(REVY_ONE_STATEMENT=one), described:
        cost = counted(loaded.save)
    deltas = get_object_delta_model().objects.filter(id__gt=last or 0).order_by("id")
    recorded = []
    for delta in deltas:
        attributes = get_attribute_delta_model().objects.filter(parent=delta).order_by("id")
        recorded.append(
            (
                delta.action,
                delta.actor_id,
                delta.description,
                {k: v for k, v in delta.data.items() if k not in TIMES_AND_KEYS},
                [
                    (
                        a.field_name,
                        a.action,
                        a.old_value if a.field_name not in TIMES_AND_KEYS else "t",
                        a.new_value if a.field_name not in TIMES_AND_KEYS else "t",
                        a.actor_id,
                        a.automatic,
                        a.description,
                    )
                    for a in attributes
                ],
            )
        )
    return recorded, cost


def both_saves(model, create, assign, meanwhile=None) -> None:
    user = get_user_model().objects.get_or_create(username="saving")[0]
    one, cost = saved_history(model, create, assign, meanwhile or {}, user, True)
    default, _ = saved_history(model, create, assign, meanwhile or {}, user, False)
    assert one == default
    assert cost == (1, 0)


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    label=texts,
    payload=json_values,
    new_label=st.none() | texts,
    new_payload=st.none() | json_values,
    blob=st.none() | st.binary(max_size=20),
    behind=st.none() | texts,
    touched=st.booleans(),
    touched_behind=st.booleans(),
)
def test_an_update_reads_the_old_row_in_its_statement(
    label, payload, new_label, new_payload, blob, behind, touched, touched_behind
):
    # `updated` is auto_now: Django sets it during the save, over what was assigned.
    assign: dict = {"blob": blob}
    if new_label is not None:
        assign["label"] = new_label
    if new_payload is not None:
        assign["payload"] = new_payload
    if touched:
        assign["updated"] = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    meanwhile: dict = {"label": behind} if behind is not None else {}
    if touched_behind:
        meanwhile["updated"] = datetime.datetime(2002, 1, 1, tzinfo=datetime.UTC)
    both_saves(Stamped, {"label": label, "payload": payload}, assign, meanwhile)


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount=st.decimals(min_value=-(10**9), max_value=10**9, places=2),
    new_amount=st.none() | st.decimals(min_value=-(10**9), max_value=10**9, places=2),
    rate=st.none() | st.decimals(min_value=-(10**7), max_value=10**7, places=4),
    memo=st.none() | texts,
    behind=st.none() | st.decimals(min_value=-(10**9), max_value=10**9, places=2),
)
def test_an_update_of_decimals_reads_the_old_row_in_its_statement(
    amount, new_amount, rate, memo, behind
):
    assign = {
        name: value
        for name, value in {"amount": new_amount, "exchange_rate": rate, "memo": memo}.items()
        if value is not None
    }
    meanwhile = {"amount": behind} if behind is not None else None
    both_saves(Ledger, {"amount": amount}, assign, meanwhile)


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_an_update_of_masked_and_excluded_fields_reads_the_old_row_in_its_statement():
    both_saves(
        Secret, {"name": "n", "pin": "1234", "internal": "i"}, {"pin": "9999", "internal": "j"}
    )
    both_saves(Secret, {"name": "n", "pin": "1234"}, {"pin": "", "name": ""})


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_an_update_that_changes_nothing_records_nothing_and_creates_no_revision(user):
    book = Book.objects.create(author=make_author(), title="Same")
    loaded = Book.objects.get(pk=book.pk)
    before = history_counts()
    with Context.via_actor(user):
        assert counted(loaded.save) == (1, 0)
    assert history_counts() == before


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_an_update_of_a_row_deleted_meanwhile_records_its_creation(user):
    # Django's UPDATE finds no row and inserts it: a Create, as on the read-then-write path.
    book = Book.objects.create(author=make_author(), title="Gone")
    loaded = Book.objects.get(pk=book.pk)
    Book.objects.filter(pk=book.pk).delete()
    with Context.via_actor(user):
        loaded.title = "Back"
        loaded.save()
    delta = get_object_delta_model().objects.order_by("-id").first()
    assert (delta.action, delta.data["title"]) == ("Create", "Back")


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_second_save_after_the_statement_read_the_row_knows_it(user):
    book = Book.objects.create(author=make_author(), title="First")
    loaded = Book.objects.get(pk=book.pk)
    with Context.via_actor(user):
        loaded.title = "Second"
        assert counted(loaded.save) == (1, 0)
        loaded.title = "Third"
        assert counted(loaded.save) == (1, 0)
    titles = [
        (d.action, d.data["title"])
        for d in get_object_delta_model().objects.filter(content_id=str(book.pk)).order_by("id")
    ]
    assert titles == [("Update", "Second"), ("Update", "Third")]


@pytest.mark.skipif(not POSTGRES, reason="the one-statement form is PostgreSQL's")
@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_a_deferred_instance_saved_to_another_database_is_recorded(user):
    # Django loads the deferred fields during such a save: the values are not known before
    # it (as in Django's multiple_database.tests.RouterTestCase.test_deferred_models).
    author = Author.objects.using("other").create(name="Writer")
    Author.objects.using("default").create(pk=author.pk, name="Writer")
    published = datetime.date(2009, 5, 4)
    book = Book.objects.using("other").create(author=author, title="Dive", published=published)
    deferred = Book.objects.using("other").only("title").get(pk=book.pk)
    with Context.via_actor(user):
        deferred.save(using="default")
    assert Book.objects.using("default").get(pk=book.pk).published == published
    delta = get_object_delta_model().objects.using("default").get(content_id=str(book.pk))
    assert (delta.action, delta.data["published"]) == ("Create", "2009-05-04")
