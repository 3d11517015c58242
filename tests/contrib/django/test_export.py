"""History exports: `revy.contrib.django.export` and `manage.py revy_export`."""

from __future__ import annotations

import csv
import datetime
import importlib
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from revy import Context
from revy.contrib.django import export
from tests.conftest import count_queries
from tests.factories import make_author, make_book
from tests.history_models import AttributeDelta, ObjectDelta, Revision
from tests.testapp.models import Author

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("revy_export", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def jsonl(*args: str) -> list[dict]:
    return [json.loads(line) for line in run("--format", "jsonl", *args)[0].splitlines()]


@pytest.fixture
def history(user, other_user):
    with Context(actor=user, revision_description="first"):
        author = make_author(name="Ann")
    with Context(actor=other_user):
        author.name = "Anne"
        author.save()
        make_book(author=author, title="=HYPERLINK()")
    pk = author.pk
    with Context():
        author.delete()
    return pk


def test_jsonl_has_one_object_delta_per_line_oldest_first(history, user):
    records = jsonl()
    assert [r["id"] for r in records] == list(
        ObjectDelta.objects.order_by("id").values_list("id", flat=True)
    )
    created = records[0]
    assert set(created) == {
        "id",
        "revision",
        "action",
        "event_type",
        "description",
        "created_at",
        "actor",
        "content",
        "changes",
    }
    assert created["actor"] == {"type": "auth.user", "id": str(user.pk)}
    assert created["content"] == {"type": "testapp.author", "id": str(history)}
    assert {"field": "name", "action": "Set", "old": None, "new": "Ann"} in [
        {k: c[k] for k in ("field", "action", "old", "new")} for c in created["changes"]
    ]
    assert records[-1]["action"] == "Delete" and records[-1]["actor"] is None
    assert datetime.datetime.fromisoformat(created["created_at"]).tzinfo is not None


def test_csv_has_a_row_per_field_change_and_one_per_delta_without_changes(history):
    out, _ = run("--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == export.CSV_COLUMNS
    changes = AttributeDelta.objects.count()
    without = ObjectDelta.objects.filter(children__isnull=True).count()
    assert len(rows) == changes + without
    renamed = next(r for r in rows if r["action"] == "Update")
    assert (renamed["field"], renamed["old"], renamed["new"]) == ("name", '"Ann"', '"Anne"')
    deleted = next(r for r in rows if r["action"] == "Delete")
    assert deleted["field"] == "" and deleted["actor_type"] == ""


def test_csv_text_that_a_spreadsheet_would_run_is_quoted_as_text():
    with Context(revision_description="x", object_delta_description="=1+2"):
        make_author()
    out, _ = run("--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["description"] for r in rows} == {"'=1+2"}


def test_filters_since_until_model_and_actor(history, user, other_user):
    assert {r["content"]["type"] for r in jsonl("--model", "testapp.book")} == {"testapp.book"}
    by_user = jsonl("--actor", f"auth.user:{user.pk}")
    assert [r["action"] for r in by_user] == ["Create"]
    # Keys the database assigned are the system's, but make it no actor of a creation.
    by_system = jsonl("--actor", "system")
    assert [r["action"] for r in by_system] == ["Delete", "Delete"]  # the book by cascade
    ObjectDelta.objects.filter(action="Create").update(
        created_at=timezone.now() - datetime.timedelta(days=10)
    )
    recent = jsonl("--since", (timezone.now() - datetime.timedelta(days=1)).isoformat())
    assert {r["action"] for r in recent} == {"Update", "Delete"}
    old = jsonl("--until", (timezone.now() - datetime.timedelta(days=5)).date().isoformat())
    assert {r["action"] for r in old} == {"Create"}


def test_output_to_a_file_with_progress_on_stderr(history, tmp_path):
    target = tmp_path / "history.jsonl"
    out, err = run("--format", "jsonl", "--output", str(target))
    assert out == ""
    assert len(target.read_text().splitlines()) == ObjectDelta.objects.count()
    assert f"Exported {ObjectDelta.objects.count()} object deltas" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "jsonl", "--since", "yesterday"], "--since must be an ISO date"),
        (["--format", "jsonl", "--model", "nope.model"], "no installed model"),
        (["--format", "jsonl", "--actor", "auth.user"], "names no row"),
        (["--format", "jsonl", "--actor", "auth.user:x"], "not a primary key"),
        (["--format", "jsonl", "--chunk-size", "0"], "at least 1"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_the_queries_grow_with_chunks_not_rows():
    with Context():
        for _ in range(12):
            make_author()

    def cost(chunk_size: int) -> int:
        with count_queries() as queries:
            items = list(export.records(ObjectDelta.objects.all(), chunk_size=chunk_size))
        assert len(items) == 12
        return len(queries)

    # Per chunk: the deltas and their changes; then one query that finds no more.
    assert cost(12) == 3
    assert cost(5) == 2 * 3 + 1


def test_newest_first_visits_the_same_deltas_backwards():
    with Context():
        for _ in range(7):
            make_author()
    forward = [r["id"] for r in export.records(ObjectDelta.objects.all(), chunk_size=3)]
    backward = [
        r["id"] for r in export.records(ObjectDelta.objects.all(), chunk_size=3, newest_first=True)
    ]
    assert backward == forward[::-1]


def test_an_unknown_format_is_a_value_error():
    with pytest.raises(ValueError, match="Unknown export format"):
        export.lines("xml", [])


# Any text a database stores (PostgreSQL's text holds no NUL character).
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


@settings(max_examples=40, deadline=None)
@given(name=text, description=text)
def test_every_value_survives_the_round_trip_through_both_formats(name, description):
    ObjectDelta.objects.all().delete()
    Revision.objects.all().delete()
    with Context(object_delta_description=description, attribute_delta_description=description):
        Author.objects.create(name=name)
    (record,) = export.records(ObjectDelta.objects.all())
    assert json.loads(next(export.jsonl_lines([record]))) == record
    rows = list(csv.DictReader(io.StringIO("".join(export.csv_lines([record])))))
    named = next(r for r in rows if r["field"] == "name")
    assert json.loads(named["new"]) == name
    shown = named["change_description"]
    assert shown == description or (shown == "'" + description and description[:1] in "=+-@\t\r")


# The actor and time-window conditions take one of two query shapes each, chosen by how many
# rows the actor or the window has (`DENSE_ACTOR_ROWS`, `SMALL_WINDOW_ROWS`): both shapes
# must select the same deltas for every history.

ACTORS = ("u1", "u2", None)  # None: the system
delta_shapes = st.lists(
    st.tuples(
        st.sampled_from(ACTORS),  # the object delta's actor
        st.lists(st.tuples(st.sampled_from(ACTORS), st.booleans()), max_size=3),  # fields
        st.integers(0, 20),  # minutes after the start
    ),
    max_size=12,
)


def _write_history(shapes, users) -> dict[int, tuple]:
    """Write object and attribute deltas as given; return {delta id: shape}."""
    start = timezone.now() - datetime.timedelta(days=1)
    content_type = ContentType.objects.get_for_model(Author)
    revision = Revision.objects.create()
    written = {}
    for number, (actor, fields, minutes) in enumerate(shapes):
        user = users.get(actor)
        delta = ObjectDelta.objects.create(
            revision=revision,
            actor=user,
            action="Update",
            event_type="testapp.author.updated",
            content_type=content_type,
            content_id=str(number),
            created_at=start + datetime.timedelta(minutes=minutes),
        )
        for field_number, (field_actor, automatic) in enumerate(fields):
            field_user = users.get(field_actor)
            AttributeDelta.objects.create(
                revision=revision,
                parent=delta,
                actor=field_user,
                action="Set",
                content_type=content_type,
                content_id=str(number),
                field_name=f"f{field_number}",
                automatic=automatic,
            )
        written[delta.pk] = (actor, fields, minutes, delta.created_at)
    return written


@settings(max_examples=30, deadline=None)
@given(shapes=delta_shapes)
def test_both_shapes_of_the_actor_condition_select_what_the_rule_says(shapes):
    ObjectDelta.objects.all().delete()
    Revision.objects.all().delete()
    users = {
        name: get_user_model().objects.get_or_create(username=name)[0] for name in ("u1", "u2")
    }
    idle = get_user_model().objects.get_or_create(username="idle")[0]
    written = _write_history(shapes, users)
    type_id = ContentType.objects.get_for_model(get_user_model()).pk
    for name, user in [*users.items(), (None, None), ("idle", idle)]:
        key = (None, None) if user is None else (type_id, user.pk)
        expected = {
            pk
            for pk, (actor, fields, _, _) in written.items()
            if actor == name or any(who == name and not auto for who, auto in fields)
        }
        for dense_over in (0, 1, 10_000):  # every shape: a probe per delta, or the union
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(export, "DENSE_ACTOR_ROWS", dense_over)
                found = set(
                    export.by_actor(ObjectDelta.objects.all(), *key).values_list("pk", flat=True)
                )
            assert found == expected, (name, dense_over)


@settings(max_examples=30, deadline=None)
@given(shapes=delta_shapes, bounds=st.tuples(st.integers(-1, 21), st.integers(-1, 21)))
def test_both_shapes_of_the_window_condition_select_the_window(shapes, bounds):
    ObjectDelta.objects.all().delete()
    Revision.objects.all().delete()
    written = _write_history(shapes, {})
    start = min((at for *_, at in written.values()), default=timezone.now())
    since, until = (
        None if minutes < 0 else start + datetime.timedelta(minutes=minutes) for minutes in bounds
    )
    expected = {
        pk
        for pk, (*_, at) in written.items()
        if (since is None or at >= since) and (until is None or at <= until)
    }
    for small_under in (0, 1, 10_000):  # the plain range, or the ids from the index
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(export, "SMALL_WINDOW_ROWS", small_under)
            condition = export.window_condition(since, until)
        found = set(ObjectDelta.objects.filter(condition).values_list("pk", flat=True))
        assert found == expected, (since, until, small_under)


@settings(max_examples=30, deadline=None)
@given(
    deltas=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20)), max_size=12),
    bounds=st.tuples(st.integers(-1, 21), st.integers(-1, 21)),
)
def test_both_shapes_of_the_revision_window_select_the_revisions_with_a_delta_in_it(deltas, bounds):
    ObjectDelta.objects.all().delete()
    Revision.objects.all().delete()
    start = timezone.now() - datetime.timedelta(days=1)
    revisions = [Revision.objects.create() for _ in range(4)]
    content_type = ContentType.objects.get_for_model(Author)
    for number, (revision, minutes) in enumerate(deltas):
        ObjectDelta.objects.create(
            revision=revisions[revision],
            action="Update",
            content_type=content_type,
            content_id=str(number),
            created_at=start + datetime.timedelta(minutes=minutes),
        )
    since, until = (
        None if minutes < 0 else start + datetime.timedelta(minutes=minutes) for minutes in bounds
    )
    expected = {
        revisions[revision].pk
        for revision, minutes in deltas
        if (since is None or minutes >= bounds[0]) and (until is None or minutes <= bounds[1])
    }
    for small_under in (0, 1, 10_000):  # no narrowing, or the window's revisions from the index
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(export, "SMALL_WINDOW_ROWS", small_under)
            on_deltas, on_revisions = export.revision_window_conditions(since, until)
        in_window = ObjectDelta.objects.filter(on_deltas, revision=OuterRef("pk"))
        found = Revision.objects.filter(on_revisions, Exists(in_window))
        assert set(found.values_list("pk", flat=True)) == expected, (since, until, small_under)


def test_the_actor_condition_costs_at_most_two_small_queries(user, django_assert_num_queries):
    type_id = ContentType.objects.get_for_model(user).pk
    with django_assert_num_queries(2):  # the capped counts of both tables
        condition = export.actor_condition(type_id, user.pk)
    with django_assert_num_queries(1):
        list(ObjectDelta.objects.filter(condition))


# Search ------------------------------------------------------------------------------------

# Case variants, LIKE's wildcards and escape, and letters whose case folding differs between
# Python and the databases: the condition must agree with the database's own `icontains`.
search_text = st.text(alphabet="abAB._%\\éÉßK ", max_size=4)


@settings(max_examples=40, deadline=None)
@given(
    revisions=st.lists(
        st.tuples(search_text, st.lists(st.tuples(search_text, search_text), max_size=3)),
        max_size=6,
    ),
    text=search_text.filter(bool),
)
def test_every_shape_of_the_search_condition_selects_what_icontains_selects(revisions, text):
    ObjectDelta.objects.all().delete()
    Revision.objects.all().delete()
    content_type = ContentType.objects.get_for_model(Author)
    for description, deltas in revisions:
        revision = Revision.objects.create(description=description)
        for number, (delta_description, event_type) in enumerate(deltas):
            ObjectDelta.objects.create(
                revision=revision,
                action="Event",
                event_type=event_type,
                description=delta_description,
                content_type=content_type,
                content_id=str(number),
            )
    plain = (
        Q(description__icontains=text)
        | Q(event_type__icontains=text)
        | Q(revision__description__icontains=text)
    )
    expected = set(ObjectDelta.objects.filter(plain).values_list("pk", flat=True))
    for dense_over in (0, 1, 10_000):  # the revisions' ids, or their description per delta
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(export, "DENSE_SEARCH_REVISIONS", dense_over)
            condition = export.search_condition(text)
        found = set(ObjectDelta.objects.filter(condition).values_list("pk", flat=True))
        assert found == expected, (text, dense_over)


def test_the_search_condition_costs_two_small_queries(history, django_assert_num_queries):
    with django_assert_num_queries(2):  # the matching revisions (capped), the event types
        condition = export.search_condition("book")
    with django_assert_num_queries(1):
        assert ObjectDelta.objects.filter(condition).exists()


_search_migration = importlib.import_module("revy.contrib.django.migrations.0006_search_indexes")
needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's"
)


@needs_postgresql
def test_the_migration_builds_the_trigram_indexes_of_the_descriptions(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
            [[name for _, name in _search_migration.INDEXES]],
        )
        found = dict(cursor.fetchall())
    assert set(found) == {"revy_revision_search_idx", "revy_delta_search_idx"}
    assert all("gin (upper(description) gin_trgm_ops)" in sql for sql in found.values())


@needs_postgresql
def test_without_the_extension_the_migration_logs_why_and_goes_on(db, caplog):
    with connection.schema_editor() as schema_editor:
        assert not _search_migration.enable_extension(schema_editor, "revy_no_such_extension")
        assert _search_migration.enable_extension(schema_editor)  # pg_trgm: installed
    assert "the revy_no_such_extension extension could not be created" in caplog.text
    # The refusal was rolled back to its savepoint: the transaction goes on.
    assert Revision.objects.count() == 0
