"""manage.py revy_prune: old history goes, later snapshots stay intact."""

from __future__ import annotations

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revy import Context
from revy.contrib.django.erasure import ERASURE_EVENT, erase
from revy.contrib.django.events import record_event
from revy.contrib.django.history import snapshot
from tests.conftest import count_queries
from tests.factories import make_author, make_book, object_deltas
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
    # 4 delta batches (3 deletes in a transaction, 1 read each; the last batch's end and the
    # end of the keys take 3 more reads), then 4 revision batches (1 read, 1 delete; 3 more
    # reads): bounded by batches, not rows.
    assert len(queries.statements) <= 4 * 6 + 3 + 4 * 2 + 3


# Set-based batches, keep-last at scale, dry-run counts, what pruning keeps.


def history_rows() -> list[tuple]:
    return list(
        ObjectDelta.objects.order_by("id").values_list(
            "id", "content_type_id", "content_id", "created_at", "event_type", "revision_id"
        )
    )


def expected_after(rows: list[tuple], cutoff, keep_last: int) -> set[int]:
    """The ids `revy_prune --before cutoff --keep-last N` leaves, computed in Python."""
    newer: dict[tuple, int] = {}
    kept = set()
    for pk, content_type, content, created, event_type, _ in reversed(rows):
        rank = newer[content_type, content] = newer.get((content_type, content), 0) + 1
        if created >= cutoff or event_type == ERASURE_EVENT or rank <= keep_last:
            kept.add(pk)
    return kept


OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["save", "erase", "event"]), st.integers(0, 2), st.integers(0, 9)),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
@given(
    operations=OPERATIONS,
    cutoff_days=st.integers(0, 10),
    keep_last=st.integers(0, 3),
    batch=st.integers(1, 4),
)
def test_prune_deletes_exactly_what_its_options_say_and_the_dry_run_counts_it(
    operations, cutoff_days, keep_last, batch
):
    """Property: whatever the history, batch size and options, what goes is exactly the
    deltas older than the cutoff, except each object's `keep_last` newest and erasure
    records, with their attribute deltas, then the old revisions left empty; and the dry run
    counted exactly that."""
    with transaction.atomic():
        authors = [Author.objects.create(name=f"a{index}") for index in range(3)]
        now = timezone.now()
        # Days ago, oldest first, as ids go.
        ages = sorted((days for _, _, days in operations), reverse=True)
        for (kind, index, _), days in zip(operations, ages, strict=True):
            with Context():
                author = authors[index]
                if kind == "save":
                    author.name = f"{author.name}+"
                    author.save()
                elif kind == "erase":
                    erase(obj=author)
                else:
                    record_event(author, "test.seen", {"n": days})
            moment = now - datetime.timedelta(days=days)
            latest = ObjectDelta.objects.order_by("-id").values("revision_id")[:1]
            ObjectDelta.objects.filter(revision_id__in=latest).update(created_at=moment)
            AttributeDelta.objects.filter(revision_id__in=latest).update(created_at=moment)
            Revision.objects.filter(pk__in=latest).update(created_at=moment)
        # The creations (no age set above) are the oldest of all.
        for model in (ObjectDelta, AttributeDelta, Revision):
            model.objects.filter(created_at__gt=now).update(
                created_at=now - datetime.timedelta(days=11)
            )
        Revision.objects.create()  # an empty revision, now
        rows = history_rows()
        cutoff = now - datetime.timedelta(days=cutoff_days) + datetime.timedelta(seconds=1)
        kept = expected_after(rows, cutoff, keep_last)
        kept_revisions = {revision for pk, *_, revision in rows if pk in kept}
        old_revisions = set(
            Revision.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)
        )
        options = ["--before", cutoff.isoformat(), "--keep-last", str(keep_last)]
        dry_run = prune(*options, "--dry-run")
        attributes_before = AttributeDelta.objects.count()

        output = prune(*options, "--batch-size", str(batch))

        assert [row[0] for row in history_rows()] == sorted(kept)
        assert not AttributeDelta.objects.exclude(parent_id__in=kept).exists()
        deleted_revisions = old_revisions - kept_revisions
        assert not Revision.objects.filter(pk__in=deleted_revisions).exists()
        assert Revision.objects.count() == len(set(Revision.objects.values_list("pk"))) and (
            set(Revision.objects.values_list("pk", flat=True)).isdisjoint(deleted_revisions)
        )
        assert kept_revisions <= set(Revision.objects.values_list("pk", flat=True))
        attributes = attributes_before - AttributeDelta.objects.count()
        deleted = len(rows) - len(kept)
        assert (
            f"Would delete {deleted} object deltas before {cutoff} ({attributes} attribute "
            f"deltas, 0 aggregates, {len(deleted_revisions)} empty revisions)." in dry_run
        )
        assert f"Deleted {deleted} object deltas and {len(deleted_revisions)} empty" in output
        transaction.set_rollback(True)


def make_history(objects: int, updates: int) -> None:
    """`objects` authors (created untracked), each updated `updates` times, 400 days ago."""
    authors = [make_author(name=f"a{index}") for index in range(objects)]
    for round_ in range(updates):
        with Context():
            for author in authors:
                author.name = f"a{author.pk}-{round_}"
                author.save()
    age(days=400)


@pytest.mark.parametrize("keep_last", [0, 3])
def test_statements_do_not_grow_with_the_history_only_with_the_batches(keep_last):
    """One batch deletes any number of deltas of any number of objects in the same handful
    of statements: nothing is done per object or per row in Python, with --keep-last too."""
    cutoff = (timezone.now() - datetime.timedelta(days=30)).isoformat()
    options = ["--before", cutoff, "--keep-last", str(keep_last), "--batch-size", "1000"]
    statements = []
    for objects, updates in ((2, 4), (8, 6)):
        ObjectDelta.objects.all().delete()
        Revision.objects.all().delete()
        make_history(objects, updates)
        with count_queries() as queries:
            prune(*options)
        statements.append(len(queries.statements))
        remaining = ObjectDelta.objects.values("content_id").annotate(n=Count("id"))
        assert {row["n"] for row in remaining} == ({keep_last} if keep_last else set())
    assert statements[0] == statements[1]


def test_batches_split_by_id_range_and_report_progress():
    make_history(objects=3, updates=3)
    assert ObjectDelta.objects.count() == 9
    cutoff = (timezone.now() - datetime.timedelta(days=30)).isoformat()
    output = prune("--before", cutoff, "--batch-size", "4")
    progress = [line for line in output.splitlines() if line.endswith("object deltas/s)...")]
    assert [line.split(",")[0] for line in progress[:3]] == [
        "Deleted 4 object deltas",
        "Deleted 8 object deltas",
        "Deleted 9 object deltas",
    ]
    assert not ObjectDelta.objects.exists()
    with pytest.raises(CommandError, match="batch-size"):
        prune("--before", cutoff, "--batch-size", "0")


def test_erasure_records_outlive_retention_but_not_their_models_history():
    with Context():
        author = make_author(name="Ann")
    erase(obj=author, reason="asked to be forgotten")
    age(days=400)
    cutoff = timezone.now().isoformat()

    prune("--before", cutoff)
    (record,) = ObjectDelta.objects.all()
    assert record.event_type == ERASURE_EVENT
    assert Revision.objects.filter(pk=record.revision_id).exists()

    prune("--model", "testapp.author")
    assert not ObjectDelta.objects.exists()


def test_a_row_unchanged_since_the_cutoff_keeps_its_state_with_keep_last_1():
    """Pruning by date alone drops all the history of a row untouched since the cutoff, its
    baseline included (`revy_baseline` can record it again); --keep-last 1 keeps its latest
    state, so its snapshots still work."""
    from revy.contrib.django.history import HistoryNotFound

    author = Author.objects.create(name="untracked")  # no context: no history
    call_command("revy_baseline", "testapp.Author", stdout=StringIO())
    with Context():
        changed = make_author(name="v1")
    age(days=400)
    cutoff = timezone.now().isoformat()

    prune("--before", cutoff, "--keep-last", "1")
    assert [delta.action for delta in object_deltas(author)] == ["Baseline"]
    assert snapshot(Author, author.pk).name == "untracked"
    assert snapshot(Author, changed.pk).name == "v1"

    prune("--before", cutoff)
    with pytest.raises(HistoryNotFound):
        snapshot(Author, author.pk)
    call_command("revy_baseline", "testapp.Author", stdout=StringIO())
    assert snapshot(Author, author.pk).name == "untracked"


def test_prune_model_deletes_the_aggregates_naming_it_in_batches():
    from django.contrib.contenttypes.models import ContentType

    from revy.contrib.django.models import ObjectDeltaAggregate

    with Context():
        book = make_book()
    delta = ObjectDelta.objects.filter(content_id=str(book.pk)).first()
    author_type = ContentType.objects.get_for_model(Author)
    for index in range(5):
        ObjectDeltaAggregate.objects.create(
            delta=delta, content_type=author_type, content_id=str(index)
        )
    dry_run = prune("--model", "testapp.author", "--dry-run")
    assert "5 aggregates" in dry_run
    prune("--model", "testapp.author", "--batch-size", "2")
    assert not ObjectDeltaAggregate.objects.filter(content_type=author_type).exists()
    assert ObjectDelta.objects.filter(pk=delta.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_with_its_foreign_keys_satisfied():
    """Object deltas go before their children within a batch: the database checks the
    foreign keys at each batch's commit (not only inside a test's rolled-back transaction)."""
    from django.contrib.contenttypes.models import ContentType

    from revy.contrib.django.models import ObjectDeltaAggregate

    make_history(objects=3, updates=3)
    with Context():
        make_book()
    for delta in ObjectDelta.objects.all():
        ObjectDeltaAggregate.objects.create(
            delta=delta, content_type=ContentType.objects.get_for_model(Author), content_id="1"
        )
    cutoff = (timezone.now() - datetime.timedelta(days=30)).isoformat()
    prune("--before", cutoff, "--batch-size", "4")
    assert ObjectDelta.objects.count() == 2  # the book's and its author's creation
    assert AttributeDelta.objects.exclude(parent__in=ObjectDelta.objects.all()).count() == 0
    assert ObjectDeltaAggregate.objects.count() == 2
