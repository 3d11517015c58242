"""Models with a composite primary key are tracked like any other."""

from __future__ import annotations

import pytest

from revy import Context
from revy.contrib.django.history import diff, history_of, revert, rollback, snapshot
from tests.testapp.models import Club, Enrollment

pytestmark = pytest.mark.django_db


def test_create_update_delete_and_restore_a_row_with_a_composite_key():
    club = Club.objects.create(name="chess")
    with Context():
        row = Enrollment.objects.create(club=club, seat="A1", note="first")
    created = history_of(row).get()
    assert created.content_id == f'[{club.pk},"A1"]'
    with Context():
        row = Enrollment.objects.get(pk=(club.pk, "A1"))
        row.note = "second"
        row.save()
    assert snapshot(Enrollment, (club.pk, "A1")).note == "second"
    assert diff(Enrollment, (club.pk, "A1"), since=created, until=None) == {
        "note": {"old": "first", "new": "second"}
    }
    with Context():
        row.delete()
    assert snapshot(Enrollment, (club.pk, "A1")) is None
    rollback(Enrollment, (club.pk, "A1"), delta=created)
    assert Enrollment.objects.get(pk=(club.pk, "A1")).note == "first"
    revert(history_of(Enrollment, (club.pk, "A1")).first().revision)
    assert not Enrollment.objects.filter(pk=(club.pk, "A1")).exists()


def test_bulk_paths_on_a_composite_key():
    club = Club.objects.create(name="go")
    with Context():
        Enrollment.objects.bulk_create([Enrollment(club=club, seat=s) for s in ("1", "2")])
        Enrollment.objects.filter(seat="1").update(note="x")
        Enrollment.objects.bulk_create(
            [Enrollment(club=club, seat="2", note="y")],
            update_conflicts=True,
            unique_fields=["club", "seat"],
            update_fields=["note"],
        )
        Enrollment.objects.filter(seat="1").delete()
    assert [d.action for d in history_of(Enrollment, (club.pk, "1"))] == [
        "Delete",
        "Update",
        "Create",
    ]
    assert snapshot(Enrollment, (club.pk, "2")).note == "y"
    assert snapshot(Enrollment, f'[{club.pk},"2"]').note == "y"  # the stored content id
