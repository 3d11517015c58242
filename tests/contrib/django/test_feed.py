"""The changes feed (`revy.contrib.django.feed`): every delta once, in commit order."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, transaction

from revy import Context
from revy.contrib.django.feed import InvalidCursor, changes, decode_cursor, encode_cursor
from tests.conftest import feed_caught_up
from tests.factories import make_author
from tests.history_models import ObjectDelta

# Committed for real: on PostgreSQL the feed shows only what no running transaction (such as
# a test's own) can still precede.
pytestmark = pytest.mark.django_db(transaction=True)

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="transaction ids are PostgreSQL's"
)


def feed_ids(**kwargs) -> list[int]:
    return [delta.pk for delta in changes(ObjectDelta.objects.all(), **kwargs).deltas]


def test_every_delta_records_the_transaction_that_wrote_it():
    with transaction.atomic(), Context():
        make_author()
        make_author()
    with Context():
        make_author()
    first, second, third = ObjectDelta.objects.order_by("id")
    assert first.transaction_id == second.transaction_id
    if connection.vendor == "postgresql":
        assert 0 < first.transaction_id < third.transaction_id
    else:
        assert first.transaction_id == third.transaction_id == 0


def test_pages_follow_each_other_and_end_with_the_last_cursor():
    with Context():
        for _ in range(5):
            make_author()
    everything = list(ObjectDelta.objects.order_by("id").values_list("id", flat=True))
    feed_caught_up()

    first = changes(ObjectDelta.objects.all(), limit=2)
    second = changes(ObjectDelta.objects.all(), after=first.cursor, limit=2)
    third = changes(ObjectDelta.objects.all(), after=second.cursor, limit=2)

    assert [d.pk for d in first.deltas + second.deltas + third.deltas] == everything
    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    # Nothing new: the same cursor again, and nothing is lost by polling with it.
    idle = changes(ObjectDelta.objects.all(), after=third.cursor)
    assert idle.deltas == [] and decode_cursor(idle.cursor) == decode_cursor(third.cursor)
    with Context():
        author = make_author()
    feed_caught_up()
    later = changes(ObjectDelta.objects.all(), after=idle.cursor)
    assert [d.content_id for d in later.deltas] == [str(author.pk)]


def test_the_feed_keeps_the_filters_of_the_queryset_it_is_given():
    with Context():
        kept = make_author(name="kept")
        make_author(name="left out")
    feed_caught_up()
    page = changes(ObjectDelta.objects.filter(data__name="kept"))
    assert [d.content_id for d in page.deltas] == [str(kept.pk)]


@pytest.mark.parametrize(
    "cursor",
    ["", "garbage", encode_cursor((0, 5))[:-2] + "xx", "WzAsNV0:1tIiY0:forged"],
    # A signed cursor holds its time: ids of their own keep parallel runs' collections equal.
    ids=["empty", "garbage", "bad-signature", "forged"],
)
def test_a_cursor_the_feed_did_not_return_is_refused(cursor):
    if cursor == "":
        assert changes(ObjectDelta.objects.all()).deltas == []  # "" is no cursor: the start
        return
    with pytest.raises(InvalidCursor):
        changes(ObjectDelta.objects.all(), after=cursor)


def test_a_signed_value_that_is_no_position_is_refused():
    from django.core import signing

    for value in (["a", 1], [1], [-1, 3], {"t": 1}, [True, 2]):
        with pytest.raises(InvalidCursor):
            decode_cursor(signing.dumps(value, salt="revy.contrib.django.feed"))


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        changes(ObjectDelta.objects.all(), limit=0)


def test_history_older_than_the_transaction_ids_comes_first_by_id():
    with Context():
        make_author()
        make_author()
    old, new = ObjectDelta.objects.order_by("id")
    # As the migration leaves history recorded before it.
    ObjectDelta.objects.filter(pk=new.pk).update(transaction_id=0)
    ObjectDelta.objects.filter(pk=old.pk).update(transaction_id=0)
    with Context():
        newest = make_author()
    ids = feed_ids()
    assert ids[:2] == [old.pk, new.pk]
    # The newest follows them, unless a transaction of this database that began before it is
    # still running (another connection of the test run): the feed then holds it back, as
    # designed, until that transaction ends.
    later = list(
        ObjectDelta.objects.filter(pk__gt=new.pk).order_by("id").values_list("pk", flat=True)
    )
    assert later and ObjectDelta.objects.get(pk=later[-1]).content_id == str(newest.pk)
    assert ids[2:] in (later, [])


# Concurrent writers (PostgreSQL): threads with their own connections, committed for real ----


class Rollback(Exception):
    pass


def _in_thread(function, *args):
    """Run `function` in a thread with its own connection, closed when it is done."""
    errors: list[BaseException] = []

    def run():
        try:
            function(*args)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@postgres_only
def test_a_delta_that_commits_after_a_later_one_is_not_skipped():
    holding, release = threading.Event(), threading.Event()

    def slow_writer():
        with transaction.atomic(), Context():
            make_author(name="slow")  # takes the smaller id, commits last
            holding.set()
            assert release.wait(30)

    thread, errors = _in_thread(slow_writer)
    assert holding.wait(30)
    with Context():
        make_author(name="fast")
    # An id cursor would now deliver "fast" and move past "slow" for ever.
    assert [d.data["name"] for d in ObjectDelta.objects.order_by("id")] == ["fast"]
    page = changes(ObjectDelta.objects.all())
    assert page.deltas == []  # held back until the slow transaction ends
    release.set()
    thread.join()
    assert not errors
    feed_caught_up()
    page = changes(ObjectDelta.objects.all(), after=page.cursor)
    assert [d.data["name"] for d in page.deltas] == ["slow", "fast"]


def _connect_to_another_database():
    """A connection of the test server to one of its other databases."""
    import psycopg

    settings = connection.settings_dict
    return psycopg.connect(
        dbname="postgres",
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
    )


def _write_one_author(name: str) -> None:
    with Context():
        make_author(name=name)


@postgres_only
def test_a_consumer_polling_inside_one_transaction_is_not_held_back_by_other_databases():
    """PostgreSQL keeps what a transaction first reads of pg_stat_activity until it ends: a
    transaction of another database that began since must not count as one of this one's."""
    older, newer = _connect_to_another_database(), _connect_to_another_database()

    def committed_meanwhile(name: str) -> None:
        thread, errors = _in_thread(_write_one_author, name)
        thread.join()
        assert not errors

    try:
        with older.transaction():
            older.execute("SELECT pg_current_xact_id()")
            committed_meanwhile("behind the other database's transaction")
            with transaction.atomic():
                # The feed has a running transaction to place: it reads pg_stat_activity.
                first = changes(ObjectDelta.objects.all())
                assert [d.data["name"] for d in first.deltas] == [
                    "behind the other database's transaction"
                ]
                with newer.transaction():
                    newer.execute("SELECT pg_current_xact_id()")
                    committed_meanwhile("behind a newer one")
                    page = changes(ObjectDelta.objects.all(), after=first.cursor)
        assert [d.data["name"] for d in page.deltas] == ["behind a newer one"]
    finally:
        older.close()
        newer.close()


@postgres_only
def test_a_consumer_polling_while_writers_commit_sees_every_delta_exactly_once():
    writers, transactions_each = 4, 30
    done = threading.Event()
    seen: list[int] = []
    positions: list[tuple[int, int]] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for number in range(transactions_each):
            try:
                with transaction.atomic(), Context():
                    for _ in range(rng.randint(1, 3)):
                        make_author(name=f"w{seed}-{number}")
                        time.sleep(rng.random() / 200)
                    if rng.random() < 0.2:
                        raise Rollback
            except Rollback:
                pass

    def consumer() -> None:
        rng = random.Random(99)
        cursor = None
        deadline: float | None = None
        while True:
            finished = done.is_set()  # read before polling: the last poll sees every commit
            page = changes(ObjectDelta.objects.all(), after=cursor, limit=rng.randint(1, 7))
            seen.extend(delta.pk for delta in page.deltas)
            positions.extend((delta.transaction_id, delta.pk) for delta in page.deltas)
            cursor = page.cursor
            # Once the writers are done, poll until every delta came: another transaction of
            # the test database (autovacuum's) may still hold the feed back for a moment.
            if finished and not page.has_more:
                if deadline is None:
                    deadline = time.monotonic() + 30
                everything = ObjectDelta.objects.count()
                if len(set(seen)) >= everything or time.monotonic() > deadline:
                    return
            if not page.has_more:
                time.sleep(0.002)

    threads = [_in_thread(writer, seed) for seed in range(writers)]
    reader, reader_errors = _in_thread(consumer)
    for thread, errors in threads:
        thread.join()
        assert not errors
    done.set()
    reader.join()
    assert not reader_errors

    committed = set(ObjectDelta.objects.values_list("id", flat=True))
    assert len(committed) > writers * transactions_each // 2
    assert len(seen) == len(set(seen)), "a delta was delivered twice"
    assert set(seen) == committed, f"missed: {sorted(committed - set(seen))}"
    assert positions == sorted(positions)
