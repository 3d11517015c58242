"""manage.py revy_prune: old history goes, later snapshots stay intact."""

from __future__ import annotations

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from revy import Context
from revy.contrib.django.history import snapshot
from tests.conftest import count_queries
from tests.factories import make_author, object_deltas
from tests.history_models import AttributeDelta, ObjectDelta, Revision
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db


def age(days: int) -> None:
    """Make every existing history row `days` old."""
    moment = timezone.now() - datetime.timedelta(days=days)
    Revision.objects.update(created_at=moment)
    ObjectDelta.objects.update(created_at=moment)
    AttributeDelta.objects.update(created_at=moment)


@pytest.fixture
def old_and_new_history():
    with Context():
        book = Book.objects.create(author=make_author(), title="v1")
    with Context():
        book.title = "v2"
        book.save()
    age(days=400)
    with Context():
        book.title = "v3"
        book.save()
    return book


def prune(*args: str) -> str:
    out = StringIO()
    call_command("revy_prune", *args, stdout=out)
    return out.getvalue()


def test_prune_deletes_deltas_and_empty_revisions_before_the_date(old_and_new_history):
    book = old_and_new_history
    cutoff = (timezone.now() - datetime.timedelta(days=30)).date().isoformat()
    output = prune("--before", cutoff)

    assert [delta.data["title"] for delta in object_deltas(book)] == ["v3"]
    assert Revision.objects.count() == 1
    assert not AttributeDelta.objects.filter(parent__isnull=True).exists()
    assert "Deleted" in output
    # Later points stay reconstructible: every delta carries the full state.
    assert snapshot(Book, book.pk).title == "v3"


def test_keep_last_keeps_each_objects_most_recent_deltas(old_and_new_history):
    book = old_and_new_history
    prune("--before", timezone.now().isoformat(), "--keep-last", "2")
    assert [delta.data["title"] for delta in object_deltas(book)] == ["v2", "v3"]


def test_dry_run_deletes_nothing(old_and_new_history):
    before = ObjectDelta.objects.count()
    output = prune("--before", timezone.now().isoformat(), "--dry-run")
    assert ObjectDelta.objects.count() == before
    assert "Would delete" in output


def test_bad_arguments_are_clear_errors():
    with pytest.raises(CommandError, match="ISO date"):
        prune("--before", "last tuesday")
    with pytest.raises(CommandError, match="keep-last"):
        prune("--before", "2020-01-01", "--keep-last", "-1")


def test_deleting_a_content_type_with_history_says_why_and_what_to_do():
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command

    from revy.contrib.django.models import HistoryProtectedError

    with Context():
        make_author()
    content_type = ContentType.objects.get_for_model(Author)
    with pytest.raises(HistoryProtectedError, match=r"revy_prune --model testapp\.author"):
        content_type.delete()
    call_command("revy_prune", "--model", "testapp.author", stdout=StringIO())
    assert not ObjectDelta.objects.filter(content_type=content_type).exists()
    content_type.delete()  # nothing refers to it any more


def test_stale_content_types_lose_their_history_with_prune_stale():
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command

    with Context():
        author = make_author()
    gone = ContentType.objects.create(app_label="dropped", model="thing")
    ObjectDelta.objects.filter(content_type=ContentType.objects.get_for_model(author)).update(
        content_type=gone
    )
    out = StringIO()
    call_command("revy_prune", "--stale", stdout=out)
    assert "Deleted 1 object deltas" in out.getvalue()
    call_command("remove_stale_contenttypes", "--include-stale-apps", interactive=False)
    assert not ContentType.objects.filter(app_label="dropped").exists()


def test_prune_works_in_batches_of_keys_whatever_the_size(monkeypatch):
    """Batches follow each other by key: the statements grow with the number of batches (a
    handful each), every old delta and empty revision goes, and nothing newer."""
    from revy.contrib.django.management.commands import revy_prune

    for index in range(7):
        with Context():
            make_author(name=f"a{index}")
    age(days=400)
    with Context():
        kept = make_author(name="new")
    monkeypatch.setattr(revy_prune, "BATCH", 2)
    cutoff = (timezone.now() - datetime.timedelta(days=30)).isoformat()
    with count_queries() as queries:
        output = prune("--before", cutoff)
    assert [delta.content_id for delta in ObjectDelta.objects.all()] == [str(kept.pk)]
    assert Revision.objects.count() == 1
    assert AttributeDelta.objects.exclude(content_id=str(kept.pk)).count() == 0
    assert "Deleted 7 object deltas and 7 empty revisions" in output
    # 4 delta batches (3 deletes in a transaction, 1 read each, + the empty read), then 4
    # revision batches (1 read, 1 delete) + the empty read: bounded by batches, not rows.
    assert len(queries.statements) <= 4 * 6 + 1 + 4 * 2 + 1
