"""`QuerySet.update()` recorded in its own statement on PostgreSQL (`sqlwrites.SetBasedUpdate`).

The set-based path must record exactly what the Python path records for the same update of
the same rows: a property test updates two identical sets of rows, one through each path, and
compares the deltas. It costs one statement whatever the number of rows, with no transaction
control of its own.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.harness import StatementCounter
from revy import Context
from revy.contrib.django import bulk
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.registry import config_for
from revy.contrib.django.sqlwrites import SetBasedUpdate
from revy.contrib.django.utils import get_object_delta_model
from tests.factories import changes, history_counts, make_author, object_deltas
from tests.testapp.models import Book, Engine, Ledger, Place, Secret, Stamped

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
    return sorted(
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
    )


def both_paths(model, make_rows, update, actor=None) -> tuple[list, list]:
    """Run `update(queryset)` on two identical sets of rows, set-based then in Python."""
    results = []
    for set_based in (True, False):
        try:
            with transaction.atomic():  # a database error leaves the next example a usable one
                results.append(_one_path(model, make_rows, update, actor, set_based))
        except DatabaseError as error:  # both paths must refuse the same update the same way
            results.append(type(error).__name__)
    return results[0], results[1]


def _one_path(model, make_rows, update, actor, set_based: bool) -> list:
    rows = make_rows()
    since = last_delta_id()
    bulk.SET_BASED_UPDATES = set_based
    try:
        with Context(actor=actor, object_delta_description="bulk"):
            update(model.objects.filter(pk__in=[row.pk for row in rows]))
    finally:
        bulk.SET_BASED_UPDATES = True
    return recorded(model, since, rows)


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


def test_a_failing_update_writes_nothing_and_raises_what_django_raises():
    from tests.testapp.models import Tag

    Tag.objects.create(name="a")
    Tag.objects.create(name="b")
    before = history_counts()
    with Context(), pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.update(name="same")
    assert history_counts() == before


# The same history as the Python path --------------------------------------------------------

texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
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


json_values = st.recursive(
    st.none() | st.integers(-(2**53), 2**53) | texts | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
).filter(lambda value: value is not None)  # None is SQL NULL, which the column refuses


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
