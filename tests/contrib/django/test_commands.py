"""`manage.py revy_baseline`: the current state of existing rows as the start of their history."""

from __future__ import annotations

import datetime
import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models.signals import pre_init
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from revy import Context
from revy.contrib.django.history import history_of, rollback, snapshot
from revy.contrib.django.models import ObjectSnapshot
from revy.contrib.django.settings import MASK
from tests.contrib.django.helpers import (
    change,
    deltas_of,
    last_revision,
    moment,
    revision_count,
)
from tests.factories import make_author, make_book
from tests.history_models import AttributeDelta, ObjectDelta, Revision
from tests.testapp.models import Author, Book, Secret, Stamped, Untracked

pytestmark = pytest.mark.django_db

User = get_user_model()


def baseline(*labels: str, **options) -> str:
    out = io.StringIO()
    call_command("revy_baseline", *labels, stdout=out, **options)
    return out.getvalue()


def insert_statements(queries, table: str) -> list[str]:
    """The INSERT statements into `table` (an executemany counts as one statement)."""
    prefix = f"INSERT INTO {connection.ops.quote_name(table)} "
    return [
        query["sql"]
        for query in queries.captured_queries
        if re.sub(r"^\d+ times: ", "", query["sql"]).startswith(prefix)
    ]


def bulk_books(count: int) -> list[Book]:
    author = make_author()
    return Book.objects.bulk_create(
        Book(author=author, title=f"Book {number}", pages=number) for number in range(count)
    )


def test_baseline_records_one_baseline_delta_per_row_with_a_set_per_field():
    author = make_author(name="Existing")
    book = make_book(author=author, title="Old", pages=7, price=Decimal("4.20"))

    baseline("testapp.Book")

    (delta,) = deltas_of(book)
    assert (delta.action, delta.event_type) == ("Baseline", "testapp.book.baseline")
    assert delta.data == {
        "id": book.pk,
        "author_id": author.pk,
        "title": "Old",
        "pages": 7,
        "price": "4.20",
        "published": None,
    }
    assert delta.actor_id is None
    attributes = AttributeDelta.objects.filter(parent=delta).order_by("id")
    assert [(a.field_name, a.action, a.old_value, a.new_value) for a in attributes] == [
        ("id", "Set", None, book.pk),
        ("author_id", "Set", None, author.pk),
        ("title", "Set", None, "Old"),
        ("pages", "Set", None, 7),
        ("price", "Set", None, "4.20"),
        ("published", "Set", None, None),
    ]
    assert deltas_of(author) == []  # only the named model


def test_baseline_records_everything_in_one_revision_described_baseline():
    make_book()
    make_book()
    make_author()

    baseline("testapp.Book", "testapp.Author")

    (revision,) = Revision.objects.all()
    assert revision.description == "Baseline"
    assert revision.object_deltas.count() == 2 + 3  # two books, their two authors and one more
    assert set(revision.object_deltas.values_list("action", flat=True)) == {"Baseline"}


def test_baseline_description_can_be_given():
    make_book()

    baseline("testapp.Book", description="Import of the legacy catalogue")

    assert last_revision().description == "Import of the legacy catalogue"


@override_settings(REVY_BATCH_SIZE=2)
def test_baseline_writes_one_insert_per_batch_and_table_and_never_builds_instances():
    bulk_books(5)
    built = []

    def count_instances(sender, **kwargs):
        built.append(sender)

    pre_init.connect(count_instances, sender=Book)
    try:
        with CaptureQueriesContext(connection) as queries:
            output = baseline("testapp.Book")
    finally:
        pre_init.disconnect(count_instances, sender=Book)

    assert built == []
    object_inserts = insert_statements(queries, ObjectDelta._meta.db_table)
    assert len(object_inserts) == 3  # batches of 2, 2 and 1 rows
    fields = len(Book._meta.concrete_fields)
    # Attribute deltas: a few statements per batch (never one per row or per field value).
    attribute_inserts = insert_statements(queries, AttributeDelta._meta.db_table)
    assert 3 <= len(attribute_inserts) <= 3 * fields
    assert ObjectDelta.objects.filter(action="Baseline").count() == 5
    assert AttributeDelta.objects.count() == 5 * fields
    assert output.splitlines()[:3] == [
        "testapp.Book: 2/5 rows",
        "testapp.Book: 4/5 rows",
        "testapp.Book: 5/5 rows",
    ]


def test_baseline_reports_progress_in_batches_of_the_default_size():
    bulk_books(2500)

    with CaptureQueriesContext(connection) as queries:
        output = baseline("testapp.Book")

    assert len(insert_statements(queries, ObjectDelta._meta.db_table)) == 3
    fields = len(Book._meta.concrete_fields)
    assert 3 <= len(insert_statements(queries, AttributeDelta._meta.db_table)) <= 3 * fields
    lines = output.splitlines()
    assert lines[:3] == [
        "testapp.Book: 1000/2500 rows",
        "testapp.Book: 2000/2500 rows",
        "testapp.Book: 2500/2500 rows",
    ]
    assert "testapp.Book: recorded 2500 of 2500 rows" in lines
    assert ObjectDelta.objects.filter(action="Baseline").count() == 2500


def test_baseline_skips_rows_that_already_have_their_state_in_history_by_default():
    untracked = make_book(title="Untracked")
    with Context():
        tracked = Book.objects.create(author=untracked.author, title="Tracked")

    output = baseline("testapp.Book")

    assert [d.action for d in deltas_of(untracked)] == ["Baseline"]
    assert [d.action for d in deltas_of(tracked)] == ["Create"]
    assert "testapp.Book: recorded 1 of 2 rows (1 already in history)" in output


def test_baseline_records_a_row_recreated_outside_any_context_after_its_deletion():
    with Context():
        book = Book.objects.create(author=make_author(), title="Phoenix")
        pk = book.pk
        book.delete()
    Book.objects.create(pk=pk, author=make_author(), title="Phoenix again")  # untracked

    baseline("testapp.Book")

    assert [d.action for d in deltas_of(Book, pk)] == ["Create", "Delete", "Baseline"]
    assert snapshot(Book, pk).title == "Phoenix again"


def test_baseline_without_skip_existing_records_every_row():
    make_book(title="Untracked")
    with Context():
        tracked = Book.objects.create(author=make_author(), title="Tracked")

    baseline("testapp.Book", skip_existing=False)

    assert [d.action for d in deltas_of(tracked)] == ["Create", "Baseline"]
    assert ObjectDelta.objects.filter(action="Baseline").count() == 2


def test_baseline_command_line_flags_parse():
    make_book()

    output = io.StringIO()
    call_command("revy_baseline", "testapp.Book", "--no-skip-existing", "--dry-run", stdout=output)

    assert "would record 1 of 1 rows" in output.getvalue()


def test_baseline_run_twice_records_nothing_the_second_time():
    make_book()
    baseline("testapp.Book")
    revisions, deltas = revision_count(), ObjectDelta.objects.count()

    output = baseline("testapp.Book")

    assert (revision_count(), ObjectDelta.objects.count()) == (revisions, deltas)
    assert "Nothing to record" in output


def test_baseline_dry_run_counts_and_writes_nothing():
    make_book()
    make_book()

    output = baseline("testapp.Book", dry_run=True)

    assert (revision_count(), ObjectDelta.objects.count()) == (0, 0)
    assert "testapp.Book: would record 2 of 2 rows" in output
    assert "Dry run: would record 2 rows" in output


def test_baseline_of_every_tracked_model_by_default(user):
    make_book()
    Untracked.objects.create(name="never")
    Secret.objects.create(name="vault", pin="1234")

    output = baseline()

    recorded = set(
        ObjectDelta.objects.filter(action="Baseline").values_list("event_type", flat=True)
    )
    assert {
        "auth.user.baseline",
        "testapp.book.baseline",
        "testapp.author.baseline",
        "testapp.secret.baseline",
    } <= recorded
    assert not any(event_type.startswith("testapp.untracked") for event_type in recorded)
    assert not any(event_type.startswith("revy.") for event_type in recorded)
    assert "testapp.proxybook" not in output.lower()  # proxies share their concrete model


def test_baseline_of_a_whole_app():
    make_book()

    baseline("testapp")

    assert set(ObjectDelta.objects.values_list("event_type", flat=True)) == {
        "testapp.author.baseline",
        "testapp.book.baseline",
    }


def test_baseline_masks_masked_fields_and_leaves_out_excluded_ones(user):
    secret = Secret.objects.create(name="vault", pin="1234", internal="ops")

    baseline("testapp.Secret", "auth.User")

    (delta,) = deltas_of(secret)
    assert "pin" not in delta.data and "internal" not in delta.data
    pin = AttributeDelta.objects.get(parent=delta, field_name="pin")
    assert pin.new_value == MASK
    assert not AttributeDelta.objects.filter(parent=delta, field_name="internal").exists()
    (user_delta,) = deltas_of(user)
    assert "password" not in user_delta.data
    assert AttributeDelta.objects.get(parent=user_delta, field_name="password").new_value == MASK


def test_baseline_with_an_unknown_model_raises_command_error():
    with pytest.raises(CommandError, match=r"Unknown model 'testapp\.Nope'"):
        baseline("testapp.Nope")
    with pytest.raises(CommandError, match=r"Unknown model 'nodot\.'"):
        baseline("nodot.")
    with pytest.raises(CommandError, match="Unknown app 'nope'"):
        baseline("nope")
    assert revision_count() == 0


def test_baseline_of_an_untracked_model_raises_command_error():
    Untracked.objects.create(name="never")

    with pytest.raises(CommandError, match=r"testapp\.Untracked is not tracked"):
        baseline("testapp.Untracked")


def test_after_a_baseline_a_pre_tracking_row_can_be_snapshotted_and_rolled_back():
    book = make_book(title="Legacy", pages=10, published=datetime.date(1999, 12, 31))
    baseline("testapp.Book")
    baselined = last_revision()
    before_edit = moment()
    change(book, title="Edited", pages=11)

    assert snapshot(Book, book.pk, at=before_edit).title == "Legacy"
    assert snapshot(Book, book.pk, revision=baselined).pages == 10
    rollback(Book, book.pk, revision=baselined)

    stored = Book.objects.get(pk=book.pk)
    assert (stored.title, stored.pages, stored.published) == (
        "Legacy",
        10,
        datetime.date(1999, 12, 31),
    )


def test_after_a_baseline_a_deleted_pre_tracking_row_can_be_recreated():
    book = make_book(title="Legacy")
    pk = book.pk
    baseline("testapp.Book")
    with Context():
        book.delete()

    rollback(Book, pk, revision=Revision.objects.get(description="Baseline"))

    assert Book.objects.get(pk=pk).title == "Legacy"


def test_baseline_round_trips_uuid_json_binary_and_duration():
    stamped = Stamped.objects.create(
        label="legacy",
        payload={"a": [1, {"b": None}]},
        blob=b"\x00\xfe",
        duration=datetime.timedelta(hours=1, microseconds=3),
    )
    stored = Stamped.objects.get(pk=stamped.pk)

    baseline("testapp.Stamped")

    state = history_of(stamped).annotate(snapshot=ObjectSnapshot(Stamped)).get().snapshot
    assert (state.pk, state.label, state.payload) == (stored.pk, "legacy", {"a": [1, {"b": None}]})
    assert (bytes(state.blob), state.duration) == (b"\x00\xfe", stored.duration)
    assert (state.created, state.updated) == (stored.created, stored.updated)


def test_baseline_of_a_model_with_no_rows_creates_no_revision():
    output = baseline("testapp.Author")

    assert revision_count() == 0
    assert "testapp.Author: recorded 0 of 0 rows" in output
    assert Author.objects.count() == 0


def test_baseline_inside_an_open_context_uses_its_revision(user):
    make_book()
    with Context(actor=user, revision_description="Go-live"):
        user.first_name = "Alice"
        user.save()
        baseline("testapp.Book")

    (revision,) = Revision.objects.all()
    assert sorted(revision.object_deltas.values_list("action", flat=True)) == [
        "Baseline",
        "Update",
    ]
