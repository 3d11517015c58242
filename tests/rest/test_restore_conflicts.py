"""Restores the database refuses are 409 `restore-conflict` problems, and write nothing.

A rollback or revert puts back a state the database may refuse now: a unique value another
row took since, a row it refers to that was deleted, or the same row restored by a
concurrent request. Before, these were server errors (or, for foreign keys, an error at
commit after the response was built). The concurrent case runs on PostgreSQL, with two
threads holding their own connections.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from revy import Context
from revy_api import operations
from revy_api.errors import RestoreConflict
from tests.factories import history_counts, make_author, object_deltas, revisions
from tests.rest.conftest import assert_problem
from tests.testapp.models import Book, Car, Cylinder, Engine, Tag


@pytest.fixture
def taken_name(superuser):
    """Tag "red" renamed "blue", then another tag named "red": rolling back takes it twice."""
    with Context(actor=superuser):
        tag = Tag.objects.create(name="red")
    with Context(actor=superuser):
        tag.name = "blue"
        tag.save()
    with Context(actor=superuser):
        Tag.objects.create(name="red")
    return tag


@pytest.fixture
def gone_author(superuser):
    """A book moved from one author to another; the first author was deleted since."""
    first, second = make_author(name="First"), make_author(name="Second")
    with Context(actor=superuser):
        book = Book.objects.create(author=first, title="Dune")
    with Context(actor=superuser):
        book.author = second
        book.save()
    with Context(actor=superuser):
        first.delete()
    return book


pytestmark = pytest.mark.django_db


def test_a_rollback_to_a_unique_value_taken_since_is_a_conflict(admin_api, taken_name):
    before = history_counts()
    first = revisions()[0]

    response = admin_api.post(
        f"/api/tags/{taken_name.pk}/rollback/", {"revision": first.pk}, format="json"
    )

    body = assert_problem(response, 409, "restore-conflict")
    assert body["reason"] == "unique"
    assert body["fields"] == ["name"]
    assert "X-Revision-Id" not in response
    assert history_counts() == before
    taken_name.refresh_from_db()
    assert taken_name.name == "blue"


def test_a_rollback_to_a_parent_that_is_gone_is_a_conflict(admin_api, gone_author):
    before = history_counts()
    created = object_deltas(gone_author)[0]

    response = admin_api.post(
        f"/api/books/{gone_author.pk}/rollback/", {"delta": created.pk}, format="json"
    )

    body = assert_problem(response, 409, "restore-conflict")
    assert body["reason"] == "missing-related"
    assert body["fields"] == ["author_id"]
    assert history_counts() == before
    gone_author.refresh_from_db()
    assert gone_author.author.name == "Second"


def test_a_revert_to_a_parent_that_is_gone_is_a_conflict(admin_api, gone_author):
    moved = object_deltas(gone_author)[1].revision
    before = history_counts()

    response = admin_api.post(f"/api/revisions/{moved.pk}/revert/", {"force": True}, format="json")

    body = assert_problem(response, 409, "restore-conflict")
    assert body["reason"] == "missing-related"
    assert history_counts() == before


def test_a_revert_re_creating_a_unique_value_taken_since_is_a_conflict(admin_api, superuser):
    with Context(actor=superuser):
        tag = Tag.objects.create(name="red")
    with Context(actor=superuser):
        tag.delete()
    deletion = revisions()[-1]
    with Context(actor=superuser):
        Tag.objects.create(name="red")
    before = history_counts()

    response = admin_api.post(f"/api/revisions/{deletion.pk}/revert/", {}, format="json")

    assert assert_problem(response, 409, "restore-conflict")["reason"] == "unique"
    assert history_counts() == before
    assert list(Tag.objects.values_list("name", flat=True)) == ["red"]


def test_a_revert_re_creating_a_row_whose_aggregate_is_gone_is_a_conflict(admin_api, superuser):
    # Found by the stateful fuzzer: recording the re-created cylinder looks up its engine
    # (an aggregate, REVY_AGGREGATES) and the core raised Engine.DoesNotExist: a 500.
    with Context(actor=superuser):
        engine = Engine.objects.create(car=Car.objects.create(manufacturer="Saab"))
        cylinder = Cylinder.objects.create(engine=engine)
    with Context(actor=superuser):
        cylinder.delete()
    deletion = revisions()[-1]
    with Context(actor=superuser):
        engine.delete()
    before = history_counts()

    response = admin_api.post(f"/api/revisions/{deletion.pk}/revert/", {}, format="json")

    assert assert_problem(response, 409, "restore-conflict")["reason"] == "missing-related"
    assert history_counts() == before


def test_a_dry_run_of_a_refused_rollback_writes_nothing_and_succeeds(admin_api, taken_name):
    # A dry run does not write, so the database has nothing to refuse yet.
    response = admin_api.post(
        f"/api/tags/{taken_name.pk}/rollback/?dry_run=true",
        {"revision": revisions()[0].pk},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["changes"] == {"name": {"old": "blue", "new": "red"}}


# Two restores of one deleted row at once (PostgreSQL: real row locks) ------------------------


def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serializes writers, nothing would interleave")


def _blocked_backends() -> int:
    """How many other connections of this database wait for a lock right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else: one snapshot per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _race(first_step, second_step) -> tuple[object, object]:
    """Run `first_step` in a transaction that stays open until `second_step` waits on it.

    Each runs in its own thread (so on its own connection). Returns what each returned or
    raised.
    """
    outcomes: dict[str, object] = {}
    first_wrote = threading.Event()

    def first():
        try:
            with transaction.atomic():
                outcomes["first"] = first_step()
                first_wrote.set()
                # Keep the row locked until the second restore waits for it.
                while _blocked_backends() == 0:
                    threading.Event().wait(0.01)
        except Exception as error:  # reported to the test
            outcomes["first"] = error
        finally:
            first_wrote.set()
            connection.close()

    def second():
        first_wrote.wait(30)
        try:
            outcomes["second"] = second_step()
        except Exception as error:
            outcomes["second"] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes["first"], outcomes["second"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_rollbacks_re_creating_one_row_conflict(django_user_model):
    _postgresql_only()
    admin = django_user_model.objects.create_superuser("root", password="pw")
    with Context(actor=admin):
        book = Book.objects.create(author=make_author(), title="Dune")
    pk = book.pk
    with Context(actor=admin):
        book.delete()
    created = object_deltas(Book, pk)[0]

    def restore():
        with Context(actor=admin):
            return operations.rollback(Book, pk, created, user=admin)

    first, second = _race(restore, restore)

    assert isinstance(first, operations.RollbackResult) and first.created
    assert isinstance(second, RestoreConflict), second
    assert second.extra["reason"] == "concurrent"
    assert [delta.action for delta in object_deltas(Book, pk)] == ["Create", "Delete", "Create"]


@pytest.mark.django_db(transaction=True)
def test_a_rollback_waits_for_a_concurrent_one_and_then_finds_its_etag_stale(django_user_model):
    _postgresql_only()
    admin = django_user_model.objects.create_superuser("root", password="pw")
    with Context(actor=admin):
        author = make_author(name="Ann")
    with Context(actor=admin):
        author.name = "Bea"
        author.save()
    created = object_deltas(author)[0]
    tag = operations.etag(author)

    def restore():
        with Context(actor=admin):
            return operations.rollback(type(author), author.pk, created, user=admin, if_match=tag)

    first, second = _race(restore, restore)

    assert isinstance(first, operations.RollbackResult) and first.changes
    assert isinstance(second, operations.PreconditionFailed), second
    assert [delta.action for delta in object_deltas(author)] == ["Create", "Update", "Update"]
