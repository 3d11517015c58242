"""Baselines written by the database (`revy.contrib.django.baselines`) are the rows the Python
path writes: same object deltas, same JSON state, same attribute deltas, same aggregates.

Every tracked model of `tests.testapp` (every field type it has) is written both ways and the
history compared row by row; a property test searches for values the SQL encoding gets wrong.
"""

from __future__ import annotations

import datetime
import io
import os
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revy import Context
from revy.contrib.django import events, recorder, registry
from revy.contrib.django.baselines import SetBasedBaseline
from revy.contrib.django.management.commands.revy_baseline import Command
from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.revisions import current_revision_id
from tests.factories import make_author, make_book
from tests.history_models import AttributeDelta, ObjectDelta, Revision
from tests.testapp.models import (
    Author,
    Book,
    Car,
    Club,
    Cylinder,
    Engine,
    Enrollment,
    Ledger,
    Measured,
    Membership,
    Note,
    Organization,
    Person,
    Restaurant,
    Review,
    Secret,
    Size,
    Stamped,
    Tag,
)

pytestmark = pytest.mark.django_db

User = get_user_model()
UTC = datetime.UTC


def tracked_models() -> list[type]:
    """Every tracked concrete model of tests.testapp, automatic many-to-many tables included."""
    models = apps.get_app_config("testapp").get_models(include_auto_created=True)
    return [model for model in models if registry.is_tracked(model) and not model._meta.proxy]


def history_of_model(model: type) -> list[tuple]:
    """What history holds about `model`'s rows, without ids, revisions and times."""
    content_type = ContentType.objects.get_for_model(model)
    deltas = ObjectDelta.objects.filter(content_type=content_type).order_by("id")
    found = []
    for delta in deltas:
        attributes = [
            (
                attribute.field_name,
                attribute.action,
                attribute.old_value,
                attribute.new_value,
                attribute.actor_type_id,
                attribute.actor_id,
                attribute.description,
                attribute.automatic,
                attribute.content_type_id,
                attribute.content_id,
                attribute.revision_id == delta.revision_id,
            )
            for attribute in AttributeDelta.objects.filter(parent=delta).order_by("id")
        ]
        aggregates = sorted(
            ObjectDeltaAggregate.objects.filter(delta_id=delta.pk).values_list(
                "content_type_id", "content_id"
            )
        )
        found.append(
            (
                delta.action,
                delta.event_type,
                delta.description,
                delta.actor_type_id,
                delta.actor_id,
                delta.content_id,
                delta.data,
                attributes,
                aggregates,
            )
        )
    return found


def forget_history() -> None:
    ObjectDeltaAggregate.objects.all().delete()
    AttributeDelta.objects.all().delete()
    ObjectDelta.objects.all().delete()
    Revision.objects.all().delete()


def written_in_sql(model: type) -> list[tuple]:
    config = registry.config_for(model)
    plan = SetBasedBaseline.build(config, "default")
    assert not isinstance(plan, str), f"{model._meta.label}: {plan}"
    with Context(), transaction.atomic():
        plan.write(current_revision_id("default"), None, None, skip_existing=False)
    written = history_of_model(model)
    forget_history()
    return written


def written_in_python(model: type) -> list[tuple]:
    config = registry.config_for(model)
    rows = model._base_manager.order_by(config.pk_attname).values_list(*config.attnames)
    command = Command(stdout=io.StringIO())
    with Context(), transaction.atomic():
        recorder.write("default", [command.change(config, row) for row in rows])
    written = history_of_model(model)
    forget_history()
    return written


def every_kind_of_row() -> None:
    """Rows of every tracked model of tests.testapp, with unusual values where there are any."""
    user = User.objects.create_user("baseline-user", password="secret", email="u@example.com")
    author = make_author(name="Zoë 'quoted' \"double\" \\ back", email="z@example.com", user=user)
    make_author(name="", email="")
    book = make_book(
        author=author,
        title="Ünïcode ✓ 100% %s",
        pages=-7,
        price=Decimal("-0.01"),
        published=datetime.date(1, 1, 1),
    )
    make_book(author=author, title="x", price=None, published=datetime.date(9999, 12, 31))
    tag = Tag.objects.create(name="tag")
    book.tags.add(tag)
    Review.objects.create(book=book, text="line\nbreak\ttab")
    Note.objects.create(text="note", author=author, editor=None, reviewer=author)
    Ledger.objects.create(
        amount=Decimal("1234567890.12"), exchange_rate=Decimal("0.0001"), memo="m"
    )
    Ledger.objects.create(amount=Decimal("0"), exchange_rate=Decimal("-12345678.9999"))
    Stamped.objects.create(
        id=uuid.UUID("00000000-0000-4000-8000-0000000000ff"),
        label="with everything",
        payload={"a": [1, 2.5, None, True, "é"], "b": {"": ""}, "n": -(10**15)},
        blob=bytes(range(256)) * 2,
        duration=datetime.timedelta(days=-3, seconds=5, microseconds=7),
    )
    Stamped.objects.create(label="", payload=[], blob=b"", duration=datetime.timedelta(0))
    Stamped.objects.create(label="str", payload="", blob=None, duration=None)
    Secret.objects.create(name="vault", pin="1234", internal="ops")
    Secret.objects.create(name="empty", pin="", internal="")
    car = Car.objects.create(manufacturer="Saab")
    engine = Engine.objects.create(car=car, num_cylinders=6)
    Cylinder.objects.create(engine=engine, volume=333)
    Restaurant.objects.create(name="Pizzeria", serves_pizza=True)
    organization = Organization.objects.create(slug="acme", name="Acme")
    organization.members.add(user)
    club = Club.objects.create(name="Chess")
    Membership.objects.create(club=club, author=author, role="chair")
    ada, bob = Person.objects.create(name="Ada"), Person.objects.create(name="Bob")
    ada.friends.add(bob)
    Measured.objects.create(size=Size(3, 4))
    Enrollment.objects.create(club=club, seat="A1", note="front")


def test_every_field_type_of_the_test_app_is_encoded_in_sql_as_in_python():
    every_kind_of_row()
    by_sql = 0
    for model in [*tracked_models(), User]:
        config = registry.config_for(model)
        plan = SetBasedBaseline.build(config, "default")
        if isinstance(plan, str):
            continue
        assert model._base_manager.exists(), model
        assert written_in_sql(model) == written_in_python(model), model._meta.label
        by_sql += 1
    # Only the custom field type and the composite key are left to Python.
    assert by_sql == len(tracked_models()) + 1 - 2


def test_models_without_a_sql_encoding_say_why():
    assert SetBasedBaseline.build(registry.config_for(Measured), "default") == (
        "size: SizeField has no SQL encoding"
    )
    assert SetBasedBaseline.build(registry.config_for(Enrollment), "default") == (
        "a composite primary key"
    )


def test_the_command_records_models_without_a_sql_encoding_in_python_and_says_so():
    Measured.objects.create(size=Size(3, 4))
    out = io.StringIO()

    call_command("revy_baseline", "testapp.Measured", "testapp.Enrollment", stdout=out)

    lines = out.getvalue().splitlines()
    assert (
        "testapp.Measured: recorded row by row in Python (size: SizeField has no SQL encoding)"
        in lines
    )
    assert "testapp.Enrollment: recorded row by row in Python (a composite primary key)" in lines
    (delta,) = ObjectDelta.objects.filter(action="Baseline")
    assert delta.data == {"id": delta.data["id"], "size": "3x4"}


def test_a_model_whose_baseline_events_have_listeners_is_recorded_in_python():
    heard = []
    listener = events.event_listener("testapp.tag.baseline")(heard.append)
    try:
        assert SetBasedBaseline.build(registry.config_for(Tag), "default") == (
            "listeners wait for testapp.tag.baseline events"
        )
    finally:
        events.remove_listener(listener)
    assert not isinstance(SetBasedBaseline.build(registry.config_for(Tag), "default"), str)


@pytest.mark.django_db(transaction=True)
def test_one_statement_per_batch_on_postgresql_and_at_most_three_on_sqlite(settings):
    from django.test.utils import CaptureQueriesContext

    settings.REVY_BATCH_SIZE = 2
    for number in range(5):
        make_book(title=f"Book {number}")
    with CaptureQueriesContext(connection) as queries:
        call_command("revy_baseline", "testapp.Book", stdout=io.StringIO())
    history = ObjectDelta._meta.db_table
    writes = [
        query["sql"] for query in queries.captured_queries if f'INTO "{history}"' in query["sql"]
    ]
    assert len(writes) == 3  # batches of 2, 2 and 1 rows
    per_batch = 1 if connection.vendor == "postgresql" else 2
    attribute_table = AttributeDelta._meta.db_table
    attribute_writes = [
        query["sql"]
        for query in queries.captured_queries
        if f'INTO "{attribute_table}"' in query["sql"]
    ]
    assert len(attribute_writes) == 3
    assert len({*writes, *attribute_writes}) == 3 * per_batch


# Property: any values the fields hold -------------------------------------------------------

_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)
_moments = st.datetimes(
    min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)
).map(lambda moment: moment.replace(tzinfo=UTC))


def _decimal(digits: int, places: int):
    limit = Decimal(10) ** (digits - places) - Decimal(1).scaleb(-places)
    return st.decimals(
        min_value=-limit, max_value=limit, places=places, allow_nan=False, allow_infinity=False
    )


@settings(
    max_examples=int(os.environ.get("REVY_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    label=_text,
    payload=_json.filter(lambda value: value is not None),
    blob=st.none() | st.binary(max_size=40),
    duration=st.none()
    | st.timedeltas(
        min_value=datetime.timedelta(days=-99_999), max_value=datetime.timedelta(days=99_999)
    ),
    created=_moments,
    title=_text,
    pages=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    price=st.none() | _decimal(8, 2),
    published=st.none() | st.dates(),
    amount=_decimal(12, 2),
    rate=_decimal(12, 4),
    pin=st.sampled_from(["", "0", "1234"]) | _text.filter(lambda text: len(text) <= 10),
)
def test_any_values_are_encoded_in_sql_as_in_python(
    label, payload, blob, duration, created, title, pages, price, published, amount, rate, pin
):
    # Each example in a block rolled back at its end: the next one starts empty.
    with transaction.atomic():
        stamped = Stamped.objects.create(label=label, payload=payload, blob=blob, duration=duration)
        Stamped.objects.filter(pk=stamped.pk).update(created=created, updated=created)
        make_book(title=title, pages=pages, price=price, published=published)
        Ledger.objects.create(amount=amount, exchange_rate=rate, local_amount=amount)
        Secret.objects.create(name=title[:50], pin=pin[:10])
        for model in (Stamped, Book, Author, Ledger, Secret):
            assert written_in_sql(model) == written_in_python(model), model._meta.label
        transaction.set_rollback(True)
