"""Erasure: `revy.contrib.django.history.erase` and `manage.py revy_erase`."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from revy import Context
from revy.contrib.django import history
from revy.contrib.django.erasure import ERASED, ERASURE_EVENT
from tests.factories import (
    actor_ref,
    attribute_deltas,
    history_counts,
    make_author,
    object_deltas,
    only,
)
from tests.history_models import AttributeDelta, ObjectDelta, Revision
from tests.testapp.models import Author

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("revy_erase", *args, stdout=out)
    return out.getvalue()


def tables() -> list[tuple]:
    """Everything erasure may change, to prove a dry run or an error changed nothing."""
    return [
        *Revision.objects.order_by("id").values_list("id", "description", "metadata"),
        *ObjectDelta.objects.order_by("id").values_list("id", "actor_type", "actor_id", "data"),
        *AttributeDelta.objects.order_by("id").values_list(
            "id", "actor_type", "actor_id", "old_value", "new_value"
        ),
    ]


@pytest.fixture
def ann(user, other_user):
    """Ann, created by `user`, renamed by `other_user`, then deleted by `user`."""
    with Context(actor=user, revision_description="hired"):
        ann = make_author(name="Ann", email="ann@example.com")
    with Context(actor=other_user):
        ann.name = "Anne"
        ann.save()
    pk = ann.pk
    with Context(actor=user):
        ann.delete()
    return pk


def test_erasing_an_object_keeps_its_deltas_and_drops_its_values(ann, other_user):
    with Context():
        bob = make_author(name="Bob", email="bob@example.com")
    before = history_counts()
    deltas_before = [(d.id, d.action, d.created_at) for d in object_deltas(Author, ann)]
    fields_before = [
        (a.id, a.field_name, a.action)
        for d in object_deltas(Author, ann)
        for a in attribute_deltas(d)
    ]

    (result,) = history.erase(obj=(Author, ann), reason="GDPR request 17")

    assert (result.subject, result.type, result.id) == ("object", "testapp.author", str(ann))
    assert (result.object_deltas, result.revisions) == (3, 3)
    assert result.attribute_deltas == len(fields_before)
    deltas = object_deltas(Author, ann)
    # Same deltas, same fields changed, in the same order; one more: the erasure itself.
    assert [(d.id, d.action, d.created_at) for d in deltas[:-1]] == deltas_before
    assert [
        (a.id, a.field_name, a.action) for d in deltas[:-1] for a in attribute_deltas(d)
    ] == fields_before
    assert all(d.data == {"id": ann} for d in deltas[:-1])
    values = {
        value
        for d in deltas[:-1]
        for a in attribute_deltas(d)
        for value in (a.old_value, a.new_value)
    }
    assert values <= {ERASED, None}
    assert "Ann" not in str(list(ObjectDelta.objects.values_list("data", flat=True)))
    assert history_counts() == (before[0] + 1, before[1] + 1, before[2])
    # Bob's history is untouched.
    assert only(object_deltas(bob)).data["email"] == "bob@example.com"


def test_the_erasure_is_recorded_with_who_and_why_never_the_values(ann, other_user):
    with Context(actor=other_user):
        history.erase(obj=(Author, ann), reason="GDPR request 17")
    record = ObjectDelta.objects.get(event_type=ERASURE_EVENT)
    assert record.action == "Event"
    assert (record.content_id, record.actor_id) == (str(ann), str(other_user.pk))
    assert record.data == {
        "erased": "object",
        "reason": "GDPR request 17",
        "object_deltas": 3,
        "attribute_deltas": record.data["attribute_deltas"],
        "revisions": 3,
    }
    assert record.revision.object_deltas.count() == 1  # a revision of its own


def test_snapshots_and_diffs_still_work_on_an_erased_row(ann):
    author = make_author(name="Cy", email="cy@example.com")
    with Context():
        author.name = "Cyd"
        author.save()
    first = object_deltas(author)[0]
    history.erase(obj=author)
    state = history.snapshot(Author, author.pk, delta=first)
    assert (state.pk, state.name, state.email) == (author.pk, "", "")
    assert history.diff(Author, author.pk, since=first, until=None) == {}
    # The live row is not history: it stays.
    author.refresh_from_db()
    assert author.name == "Cyd"


def test_erasing_an_actor_unlinks_it_and_redacts_its_requests(ann, user, other_user):
    Revision.objects.filter(description="hired").update(metadata={"ip": "10.0.0.1"})
    before = history_counts()
    (result,) = history.erase(actor=user)
    assert (result.subject, result.object_deltas) == ("actor", 2)
    assert result.revisions == 2
    erased = ObjectDelta.objects.filter(actor_id=ERASED)
    assert erased.count() == 2
    assert set(erased.values_list("actor_type", flat=True)) == {None}
    assert not AttributeDelta.objects.filter(actor_id=str(user.pk)).exists()
    assert (
        not ObjectDelta.objects.filter(actor_id=str(user.pk))
        .exclude(event_type=ERASURE_EVENT)
        .exists()
    )
    assert Revision.objects.get(description="hired").metadata == {"ip": ERASED}
    # other_user's rename keeps its actor and its values.
    rename = object_deltas(Author, ann)[1]
    assert (rename.actor_type_id, rename.actor_id) == actor_ref(other_user)
    assert rename.data["name"] == "Anne"
    assert history_counts() == (before[0] + 1, before[1] + 1, before[2])


def test_dry_run_counts_and_writes_nothing(ann, user):
    before = tables()
    results = history.erase(actor=user, obj=(Author, ann), dry_run=True)
    assert [(r.subject, r.object_deltas, r.dry_run) for r in results] == [
        ("actor", 2, True),
        ("object", 3, True),
    ]
    assert tables() == before


def test_erasing_twice_finds_only_markers(ann):
    history.erase(obj=(Author, ann))
    first = tables()
    history.erase(obj=(Author, ann))
    # Only the second erasure's own record is new.
    assert [row for row in tables() if row not in first]


def test_neither_actor_nor_object_is_an_error():
    with pytest.raises(ValueError, match="Say what to erase"):
        history.erase()


@settings(max_examples=25, deadline=None)
@given(
    # Any text a database stores (PostgreSQL refuses NUL in text).
    names=st.lists(
        st.text(
            st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
            min_size=1,
            max_size=20,
        ),
        min_size=1,
        max_size=4,
    ),
    email=st.emails(),
)
def test_no_recorded_value_survives_the_erasure(names, email):
    with Context():
        author = make_author(name=names[0], email=email)
    for name in names[1:]:
        with Context():
            author.name = name
            author.save()
    history.erase(obj=author)
    for delta in object_deltas(author):
        if delta.event_type == ERASURE_EVENT:
            continue
        assert delta.data == {"id": author.pk}
        for attribute in attribute_deltas(delta):
            assert attribute.old_value in (None, ERASED)
            assert attribute.new_value in (None, ERASED)
    history_snapshot = history.snapshot(Author, author.pk, delta=object_deltas(author)[0])
    assert history_snapshot.name == ""


# manage.py revy_erase -------------------------------------------------------------------------


def test_command_dry_run_prints_counts(ann, user):
    before = tables()
    out = run("--actor", f"auth.user:{user.pk}", "--object", f"testapp.author:{ann}", "--dry-run")
    assert out.splitlines() == [
        f"Would erase actor auth.user:{user.pk}: 2 object deltas, "
        f"{AttributeDelta.objects.filter(actor_id=str(user.pk)).count()} attribute deltas, "
        "2 revisions.",
        f"Would erase object testapp.author:{ann}: 3 object deltas, "
        f"{AttributeDelta.objects.filter(content_id=str(ann)).count()} attribute deltas, "
        "3 revisions.",
    ]
    assert tables() == before


def test_command_erases_and_records_who_and_why(ann, other_user):
    out = run(
        "--object",
        f"testapp.author:{ann}",
        "--reason",
        "asked",
        "--by",
        f"auth.user:{other_user.pk}",
    )
    assert out.startswith(f"Erased object testapp.author:{ann}: 3 object deltas")
    record = ObjectDelta.objects.get(event_type=ERASURE_EVENT)
    assert record.actor_id == str(other_user.pk)
    assert record.revision.description == "Erasure: asked"


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "Say what to erase"),
        (("--actor", "auth.user"), "names no row"),
        (("--actor", "nope.user:1"), "no installed model"),
        (("--object", "testapp.author:x"), "not a primary key"),
        (("--object", "testapp.author:1", "--by", "auth.user:999999"), "there is no"),
    ],
)
def test_command_refuses_bad_input_and_writes_nothing(ann, args, message):
    before = tables()
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert tables() == before
