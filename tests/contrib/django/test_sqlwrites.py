"""`QuerySet.update()`, `bulk_update()` and `QuerySet.delete()` recorded in their own statements
on PostgreSQL (`sqlwrites.SetBasedUpdate`, `sqlwrites.SetBasedDelete`).

The set-based paths must record exactly what the Python paths record for the same write of
the same rows: property tests write two identical sets of rows, one through each path, and
compare the deltas. An update or a delete costs one statement whatever the number of rows,
with no transaction control of revy's; a bulk_update() one statement per batch Django sends.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from django.core.exceptions import FieldError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, F, Value
from django.db.models.functions import Concat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness import StatementCounter
from revy import Context
from revy.contrib.django import bulk
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.attribution import known_base, state_of
from revy.contrib.django.registry import config_for
from revy.contrib.django.sqlwrites import SetBasedDelete, SetBasedUpdate
from revy.contrib.django.utils import get_object_delta_model
from tests.conftest import count_queries
from tests.factories import changes, history_counts, make_author, object_deltas
from tests.strategies import json_values, texts
from tests.testapp.models import Book, Cylinder, Engine, Ledger, Place, Review, Secret, Stamped

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="set-based on PostgreSQL only"),
]

NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


def last_delta_id() -> int:
    last = get_object_delta_model().objects.order_by("-id").first()
    return last.pk if last else 0


def recorded(model, since: int, rows: list) -> list[tuple]:
    """The deltas of `model` after `since`, with each row named by its position in `rows`
    and the keys that differ between two copies of the same rows left out."""
    position = {str(row.pk): number for number, row in enumerate(rows)}
    own = {model._meta.pk.attname, "author_id", "created"}
    deltas = [
        (
            delta.action,
            position[delta.content_id],
            {key: value for key, value in delta.data.items() if key not in own},
            {
                field: entries
                for field, entries in changes(delta).items()
                if field not in own or field == "author_id"
            },
            (delta.actor_type_id, delta.actor_id, delta.description),
        )
        for delta in object_deltas(model)
        if delta.pk > since
    ]
    return sorted(deltas, key=repr)  # a row may have several deltas of one action


def both_paths(model, make_rows, update, actor=None, set_based=True) -> tuple[list, list]:
    """Run `update(queryset)` on two identical sets of rows, set-based then in Python.

    `set_based`: whether the first run is expected to take the set-based path (checked by
    its statements: the Python path sends none of the set-based `WITH old AS ... deltas AS`;
    a single-row save's own statement names its object delta `od`).
    """
    results = []
    for path in (True, False):
        try:
            with transaction.atomic():  # a database error leaves the next example a usable one
                deltas, statements = _one_path(model, make_rows, update, actor, path)
                taken = any(
                    sql.startswith("WITH old AS (") and " deltas AS (" in sql for sql in statements
                )
                assert taken == (path and set_based), statements
                results.append(deltas)
        except DatabaseError as error:  # both paths must refuse the same update the same way
            results.append(type(error).__name__)
    return results[0], results[1]


def _one_path(model, make_rows, update, actor, set_based: bool) -> tuple[list, list[str]]:
    rows = make_rows()
    since = last_delta_id()
    bulk.SET_BASED_UPDATES = bulk.SET_BASED_DELETES = set_based
    try:
        with Context(actor=actor, object_delta_description="bulk"), count_queries() as queries:
            update(model.objects.filter(pk__in=[row.pk for row in rows]))
    finally:
        bulk.SET_BASED_UPDATES = bulk.SET_BASED_DELETES = True
    return recorded(model, since, rows), queries.statements


# Which models -------------------------------------------------------------------------------


def test_models_the_set_based_path_refuses_name_the_reason():
    assert SetBasedUpdate.unsupported(config_for(Book), "default") is None
    assert SetBasedUpdate.unsupported(config_for(Stamped), "default") is None
    assert "aggregates" in SetBasedUpdate.unsupported(config_for(Engine), "default")
    assert "inheritance" in SetBasedUpdate.unsupported(config_for(Place), "default")


# Statements ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rows", [1, 50])
def test_an_update_in_autocommit_is_one_statement_without_transaction_control(rows):
    author = make_author()
    Book.objects.bulk_create([Book(author=author, title=f"b{n}") for n in range(rows)])
    with Context(), StatementCounter() as counter:
        assert Book.objects.update(title="Renamed") == rows
    assert (counter.statements, counter.transaction_control) == (1, 0)
    assert len(object_deltas(Book)) == rows


def test_an_update_after_other_writes_joins_their_revision_in_one_statement():
    author = make_author()
    Book.objects.create(author=author, title="a")
    with Context():
        Book.objects.create(author=author, title="b")
        with StatementCounter() as counter:
            Book.objects.update(pages=7)
        Book.objects.create(author=author, title="c")
    assert counter.statements == 1
    deltas = object_deltas(Book)
    assert len({delta.revision_id for delta in deltas[1:]}) == 1


def test_an_update_that_changes_nothing_creates_no_revision():
    author = make_author()
    Book.objects.create(author=author, title="same")
    before = history_counts()
    with Context():
        assert Book.objects.update(title="same") == 1
        assert Book.objects.filter(pk=-1).update(title="none") == 0
    assert history_counts() == before


def test_an_update_of_an_empty_filter_runs_nothing():
    with Context(), StatementCounter() as counter:
        assert Book.objects.filter(pk__in=[]).update(title="none") == 0
    assert counter.statements == 0


def test_django_refuses_what_it_refuses_without_revy():
    # Found by Django's own test suite: ordering by an aggregate is refused by update().
    Book.objects.create(author=make_author(), title="a")
    with Context(), pytest.raises(FieldError, match="ordering by an aggregate"):
        Book.objects.annotate(n=Count("tags")).order_by("n").update(title="b")
    with Context(), pytest.raises(TypeError, match="slice"):
        Book.objects.all()[:1].update(title="b")


def test_annotations_referenced_by_the_values_are_inlined_as_django_does():
    book = Book.objects.create(author=make_author(), title="a", pages=2)
    with Context():
        Book.objects.annotate(double=F("pages") * 2).update(pages=F("double"))
    book.refresh_from_db()
    assert book.pages == 4
    assert changes(object_deltas(book)[-1])["pages"][0][1:3] == (2, 4)


def test_a_failing_update_writes_nothing_and_raises_what_django_raises():
    from tests.testapp.models import Tag

    Tag.objects.create(name="a")
    Tag.objects.create(name="b")
    before = history_counts()
    with Context(), pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.update(name="same")
    assert history_counts() == before


# The same history as the Python path --------------------------------------------------------

decimals = st.decimals(
    min_value=-999999, max_value=999999, places=2, allow_nan=False, allow_infinity=False
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(
        st.tuples(texts, st.integers(-(2**31), 2**31 - 1), st.none() | decimals),
        min_size=1,
        max_size=4,
    ),
    title=st.none() | texts,
    pages=st.none() | st.integers(-(2**31), 2**31 - 1) | st.just(F("pages") + 1),
    price=st.none() | st.just(None) | decimals,
    published=st.none() | st.dates(min_value=datetime.date(1, 1, 1)),
)
def test_book_updates_record_what_the_python_path_records(initial, title, pages, price, published):
    values = {
        name: value
        for name, value in {"title": title, "pages": pages, "published": published}.items()
        if value is not None
    }
    if price is not None or not values:
        values["price"] = price
    author = make_author()

    def make_rows():
        return Book.objects.bulk_create(
            [Book(author=author, title=t, pages=p, price=c) for t, p, c in initial]
        )

    set_based, python = both_paths(Book, make_rows, lambda rows: rows.update(**values))
    assert set_based == python


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(json_values, min_size=1, max_size=3),
    payload=json_values,
    blob=st.none() | st.binary(max_size=20),
    duration=st.none()
    | st.timedeltas(
        min_value=datetime.timedelta(days=-9999), max_value=datetime.timedelta(days=9999)
    ),
    updated=st.datetimes(
        min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)
    ),
)
def test_stamped_updates_record_what_the_python_path_records(
    payloads, payload, blob, duration, updated
):
    def make_rows():
        rows = [Stamped(id=uuid.uuid4(), label="x", payload=p) for p in payloads]
        Stamped.objects.bulk_create(rows)
        Stamped.objects.filter(pk__in=[row.pk for row in rows]).update(created=NOW, updated=NOW)
        return rows

    values = {
        "payload": payload,
        "blob": blob,
        "duration": duration,
        "updated": updated.replace(tzinfo=datetime.UTC),
        "label": Concat(F("label"), Value("!")),
    }
    set_based, python = both_paths(Stamped, make_rows, lambda rows: rows.update(**values))
    assert set_based == python


def test_masked_excluded_and_decimal_fields_record_what_the_python_path_records(user):
    def make_secrets():
        return [Secret.objects.create(name="n", pin="1234", internal="i") for _ in range(2)]

    set_based, python = both_paths(
        Secret, make_secrets, lambda rows: rows.update(pin="9999", internal="j", name=""), user
    )
    assert set_based == python
    (pin,) = set_based[0][3]["pin"]
    assert pin[1:3] == (revy_settings.MASK, revy_settings.MASK)
    assert "internal" not in set_based[0][3]

    def make_ledgers():
        return [
            Ledger.objects.create(amount=decimal.Decimal("1.10"), exchange_rate=2) for _ in range(2)
        ]

    set_based, python = both_paths(
        Ledger,
        make_ledgers,
        lambda rows: rows.update(exchange_rate=decimal.Decimal("1.2345"), memo="m"),
        user,
    )
    assert set_based == python


def test_an_instance_loaded_before_the_update_saves_against_the_new_values():
    author = make_author()
    book = Book.objects.create(author=author, title="t", pages=1)
    with Context():
        loaded = Book.objects.get(pk=book.pk)
        Book.objects.filter(pk=book.pk).update(pages=99)
        loaded.title = "Saved"
        loaded.save()  # writes its own pages (1) over the 99: a change from 99
    last = object_deltas(book)[-1]
    assert last.data["pages"] == 1
    assert {
        field: [entry[1:3] for entry in entries] for field, entries in changes(last).items()
    } == {
        "title": [("t", "Saved")],
        "pages": [(99, 1)],
    }


# bulk_update() ------------------------------------------------------------------------------


def _load_and_bulk_update(fields, assign, order="pk", save=True):
    """The operation of `both_paths`: load the rows in the context (in creation order: by
    `order`), assign and bulk_update() them, then (`save`) change and save() the first one,
    which must diff against its new base."""

    def operation(queryset):
        loaded = list(queryset.order_by(order))
        for number, obj in enumerate(loaded):
            assign(number, obj)
        queryset.model.objects.bulk_update(loaded, fields)
        if save and loaded:
            first = loaded[0]
            for name in fields:
                if hasattr(getattr(first, name), "resolve_expression"):
                    first.refresh_from_db(fields=[name])
            setattr(first, fields[0], getattr(loaded[-1], fields[0]))
            first.save()

    return operation


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rows", [1, 1000])
def test_a_bulk_update_in_autocommit_is_django_s_statements_and_no_more(rows):
    author = make_author()
    Book.objects.bulk_create([Book(author=author, title=f"b{n}") for n in range(rows)])
    untracked = list(Book.objects.order_by("pk"))
    for book in untracked:
        book.title += "!"
    with StatementCounter() as django_alone:
        Book.objects.bulk_update(untracked, ["title"])
    with Context():
        loaded = list(Book.objects.order_by("pk"))
        for book in loaded:
            book.title += "?"
        with StatementCounter() as counter:
            assert Book.objects.bulk_update(loaded, ["title"]) == rows
        last = loaded[-1]
        assert known_base(state_of(last), config_for(Book), last.pk, "default")[2] == (
            f"b{rows - 1}!?"
        )
        # The bases are the new rows: a save of an unchanged instance records nothing.
        with StatementCounter() as saving:
            loaded[0].save(update_fields=["title"])
    # One UPDATE in Django's own transaction (BEGIN, COMMIT), history written inside it.
    assert (counter.statements, counter.transaction_control) == (1, 2)
    assert (django_alone.statements, django_alone.transaction_control) == (1, 2)
    assert len([d for d in object_deltas(Book) if d.action == "Update"]) == rows
    assert saving.statements == 1


def test_a_bulk_update_of_expressions_reads_back_the_rows_it_computed():
    author = make_author()
    books = Book.objects.bulk_create([Book(author=author, title="t", pages=n) for n in range(3)])
    with Context():
        loaded = list(Book.objects.order_by("pk"))
        for book in loaded:
            book.pages = F("pages") + 10
        with count_queries() as queries:
            Book.objects.bulk_update(loaded, ["pages"])
        base = known_base(state_of(loaded[0]), config_for(Book), loaded[0].pk, "default")
    assert [sql.split()[0] for sql in queries.statements] == ["WITH", "SELECT"]
    assert base[3] == 10
    assert [changes(object_deltas(book)[-1])["pages"][0][1:3] for book in books] == [
        (0, 10),
        (1, 11),
        (2, 12),
    ]


def test_a_bulk_update_of_changes_by_another_actor_keeps_their_attribution(user, other_user):
    author = make_author()
    Book.objects.bulk_create([Book(author=author, title="t", pages=1) for _ in range(2)])
    with Context(actor=user), count_queries() as queries:
        loaded = list(Book.objects.order_by("pk"))
        loaded[0].title = "by alice"
        Context.set_actor(other_user)
        loaded[1].title = "by bob"
        Book.objects.bulk_update(loaded, ["title"])
    assert not any(sql.startswith("WITH old AS") for sql in queries.statements)
    first, second = (changes(object_deltas(book)[-1])["title"] for book in loaded)
    assert first[0][3] != second[0][3]


texts_or_empty = texts | st.just("")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(
        st.tuples(texts, st.integers(-(2**31), 2**31 - 1), st.none() | decimals),
        min_size=1,
        max_size=4,
    ),
    new=st.lists(
        st.tuples(
            texts_or_empty,
            st.integers(-(2**31), 2**31 - 1) | st.just(F("pages") + 1),
            st.none() | decimals,
            st.none() | st.dates(min_value=datetime.date(1, 1, 1)),
        ),
        min_size=4,
        max_size=4,
    ),
    fields=st.lists(
        st.sampled_from(["title", "pages", "price", "published"]), min_size=1, unique=True
    ),
)
def test_book_bulk_updates_record_what_the_python_path_records(initial, new, fields):
    author = make_author()

    def make_rows():
        return Book.objects.bulk_create(
            [Book(author=author, title=t, pages=p, price=c) for t, p, c in initial]
        )

    def assign(number, book):
        book.title, book.pages, book.price, book.published = new[number]

    operation = _load_and_bulk_update(fields, assign)
    set_based, python = both_paths(Book, make_rows, operation)
    assert set_based == python


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    new=st.lists(
        st.tuples(
            json_values,
            st.none() | st.binary(max_size=20),
            st.none()
            | st.timedeltas(
                min_value=datetime.timedelta(days=-9999), max_value=datetime.timedelta(days=9999)
            ),
        ),
        min_size=3,
        max_size=3,
    ),
    fields=st.lists(
        st.sampled_from(["payload", "blob", "duration", "label"]), min_size=1, unique=True
    ),
    in_context=st.booleans(),
)
def test_stamped_bulk_updates_record_what_the_python_path_records(new, fields, in_context):
    def make_rows():
        rows = [Stamped(id=uuid.uuid4(), label=f"x{n}", payload={"n": n}) for n in range(3)]
        Stamped.objects.bulk_create(rows)
        Stamped.objects.filter(pk__in=[row.pk for row in rows]).update(created=NOW, updated=NOW)
        return rows

    def assign(number, stamped):
        stamped.payload, stamped.blob, stamped.duration = new[number]
        stamped.label = Concat(F("label"), Value(str(number)))

    if in_context:
        # (No save after: `updated` is auto_now, a different time in each path.)
        operation = _load_and_bulk_update(fields, assign, order="label", save=False)
    else:
        # Instances revy has not seen loaded: no base, their old values are the database's.
        loaded = []

        def operation(queryset):
            for number, obj in enumerate(loaded):
                assign(number, obj)
            Stamped.objects.bulk_update(loaded, fields)

        def make_rows(make=make_rows):
            rows = make()
            loaded[:] = Stamped.objects.filter(pk__in=[r.pk for r in rows]).order_by("label")
            return rows

    set_based, python = both_paths(Stamped, make_rows, operation)
    assert set_based == python


def test_masked_and_decimal_bulk_updates_record_what_the_python_path_records(user):
    def make_ledgers():
        return [
            Ledger.objects.create(amount=decimal.Decimal("1.10"), exchange_rate=2) for _ in range(2)
        ]

    def assign(number, ledger):
        ledger.exchange_rate = decimal.Decimal("1.2345") * (number + 1)
        ledger.memo = "" if number else "m"

    operation = _load_and_bulk_update(["exchange_rate", "memo"], assign)
    set_based, python = both_paths(Ledger, make_ledgers, operation, user)
    assert set_based == python

    def make_secrets():
        return [Secret.objects.create(name="n", pin="1234", internal="i") for _ in range(2)]

    def reveal(number, secret):
        secret.pin, secret.internal, secret.name = ("", "j", "") if number else ("99", "k", "m")

    operation = _load_and_bulk_update(["pin", "internal", "name"], reveal)
    set_based, python = both_paths(Secret, make_secrets, operation, user)
    assert set_based == python


# QuerySet.delete() --------------------------------------------------------------------------


def make_reviews(count: int, book: Book | None = None) -> list[Review]:
    book = book or Book.objects.create(author=make_author(), title="t")
    return Review.objects.bulk_create([Review(book=book, text=f"r{n}") for n in range(count)])


def deletion_writer(queryset) -> SetBasedDelete | str:
    """What `SetBasedDelete.build` says of Django's collector for `queryset.delete()`."""
    from django.db.models.deletion import Collector

    collector = Collector(using="default", origin=queryset)
    collector.collect(queryset)
    return SetBasedDelete.build(collector)


def test_deletions_the_set_based_path_refuses_name_the_reason():
    make_reviews(1)
    with Context():
        assert isinstance(deletion_writer(Review.objects.all()), SetBasedDelete)
        assert "cascades" in deletion_writer(Book.objects.all())  # to its reviews
        assert "aggregates" in deletion_writer(Cylinder.objects.all())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rows", [1, 1000])
def test_a_delete_in_autocommit_is_one_statement_without_transaction_control(rows):
    make_reviews(rows)
    with Context(), StatementCounter() as counter:
        assert Review.objects.all().delete() == (rows, {"testapp.Review": rows})
    assert (counter.statements, counter.transaction_control) == (1, 0)
    deltas = object_deltas(Review)
    assert [delta.action for delta in deltas] == ["Delete"] * rows
    assert len({delta.revision_id for delta in deltas}) == 1


def test_a_delete_after_other_writes_joins_their_revision_in_one_statement():
    (review,) = make_reviews(1)
    with Context():
        Review.objects.create(book=review.book, text="x")
        with StatementCounter() as counter:
            Review.objects.filter(pk=review.pk).delete()
    assert counter.statements == 1
    create, delete = object_deltas(Review)[-2:]
    assert (create.action, delete.action) == ("Create", "Delete")
    assert create.revision_id == delete.revision_id


def test_a_delete_of_nothing_creates_no_revision():
    before = history_counts()
    with Context(), StatementCounter() as counter:
        assert Review.objects.filter(pk__in=[]).delete() == (0, {})
        assert Review.objects.filter(pk=-1).delete() == (0, {})
    assert counter.statements == 1
    assert history_counts() == before


def test_an_instance_whose_row_a_delete_removed_forgets_its_base():
    (review,) = make_reviews(1)
    with Context():
        loaded = Review.objects.get(pk=review.pk)
        Review.objects.filter(pk=review.pk).delete()
        assert known_base(state_of(loaded), config_for(Review), loaded.pk, "default") is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(json_values, min_size=1, max_size=4),
    blobs=st.lists(st.none() | st.binary(max_size=20), min_size=4, max_size=4),
    keep=st.integers(0, 4),
)
def test_stamped_deletes_record_what_the_python_path_records(payloads, blobs, keep):
    def make_rows():
        rows = [
            Stamped(id=uuid.uuid4(), label=f"x{n}", payload=p, blob=b, duration=NOW - NOW)
            for n, (p, b) in enumerate(zip(payloads, blobs, strict=False))
        ]
        Stamped.objects.bulk_create(rows)
        Stamped.objects.filter(pk__in=[row.pk for row in rows]).update(created=NOW, updated=NOW)
        return rows

    def delete(queryset):
        pks = list(queryset.order_by("label").values_list("pk", flat=True))  # creation order
        return queryset.filter(pk__in=pks[min(keep, len(pks) - 1) :]).delete()

    set_based, python = both_paths(Stamped, make_rows, delete)
    assert set_based == python


def test_masked_and_decimal_deletes_record_what_the_python_path_records(user):
    def make_secrets():
        return [Secret.objects.create(name="n", pin="1234", internal="i") for _ in range(2)]

    set_based, python = both_paths(Secret, make_secrets, lambda rows: rows.delete(), user)
    assert set_based == python
    assert "pin" not in set_based[0][2] and "internal" not in set_based[0][2]

    def make_ledgers():
        return [Ledger.objects.create(amount=decimal.Decimal("1.10")) for _ in range(2)]

    set_based, python = both_paths(Ledger, make_ledgers, lambda rows: rows.delete(), user)
    assert set_based == python


def test_a_delete_then_a_save_of_a_loaded_instance_records_what_the_python_path_records():
    book = Book.objects.create(author=make_author(), title="t")

    def make_rows():
        return make_reviews(2, book)

    def delete_then_save(queryset):
        loaded = list(queryset.order_by("pk"))
        queryset.delete()
        loaded[0].text = "saved again"
        loaded[0].save()

    set_based, python = both_paths(Review, make_rows, delete_then_save)
    assert set_based == python
