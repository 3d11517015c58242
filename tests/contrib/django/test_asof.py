"""`history.as_of(model, at)`: a whole table as it was at a past moment, in one query."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revy import Context
from revy.contrib.django.asof import AsOfQuerySet
from revy.contrib.django.history import as_of, snapshot
from tests.conftest import count_queries
from tests.contrib.django.helpers import change, deleted, moment, row_values
from tests.factories import make_author, make_book
from tests.testapp.models import (
    Author,
    Book,
    Club,
    Enrollment,
    Ledger,
    Place,
    ProxyBook,
    Restaurant,
    Secret,
    Stamped,
)

pytestmark = pytest.mark.django_db


def titles(queryset) -> list[str]:
    return sorted(book.title for book in queryset)


@pytest.fixture
def story():
    """Three books: one changed, one deleted and one created after the moment `before`."""
    author = make_author(name="Ann")
    with Context():
        kept = Book.objects.create(author=author, title="Kept", pages=100)
        renamed = Book.objects.create(author=author, title="Old title", pages=200)
        gone = Book.objects.create(author=author, title="Gone", pages=300)
    before = moment()
    change(renamed, title="New title", pages=250)
    deleted(gone)
    with Context():
        Book.objects.create(author=author, title="Newcomer", pages=400)
    return {"before": before, "after": moment(), "kept": kept, "renamed": renamed}


# What it shows ----------------------------------------------------------------------------------


def test_rows_deleted_since_are_included_and_rows_created_since_are_not(story):
    assert titles(as_of(Book, story["before"])) == ["Gone", "Kept", "Old title"]
    assert titles(as_of(Book, story["after"])) == ["Kept", "New title", "Newcomer"]


def test_each_instance_holds_the_rows_state_at_that_moment(story):
    past = as_of(Book, story["before"]).get(pk=story["renamed"].pk)
    assert isinstance(past, Book)
    assert (past.title, past.pages) == ("Old title", 200)
    assert row_values(past) == row_values(snapshot(Book, story["renamed"].pk, at=story["before"]))
    assert not past._state.adding
    assert past._state.db == "default"


def test_a_moment_before_any_history_shows_an_empty_table(story):
    long_ago = timezone.now() - datetime.timedelta(days=365)
    assert not as_of(Book, long_ago).exists()
    assert as_of(Book, long_ago).count() == 0


def test_rows_that_predate_tracking_appear_once_a_baseline_records_them(db):
    from django.core.management import call_command

    untracked = Author.objects.create(name="Before revy")  # outside any context
    assert not as_of(Author, moment()).filter(pk=untracked.pk).exists()
    call_command("revy_baseline", "testapp.Author", verbosity=0)
    assert as_of(Author, moment()).get(pk=untracked.pk).name == "Before revy"


# A queryset like any other ----------------------------------------------------------------------


def test_filters_orderings_slices_and_aggregates_work_on_the_past_values(story):
    past = as_of(Book, story["before"])
    assert titles(past.filter(pages__gte=200)) == ["Gone", "Old title"]
    assert titles(past.exclude(title__startswith="Old")) == ["Gone", "Kept"]
    assert [book.title for book in past.order_by("-pages")[:2]] == ["Gone", "Old title"]
    assert list(past.order_by("pages").values_list("pages", flat=True)) == [100, 200, 300]
    assert past.aggregate(total=Sum("pages")) == {"total": 600}
    assert past.filter(title__icontains="O").count() == 2
    assert past.order_by("pk").first().title == "Kept"
    assert set(past.in_bulk([story["kept"].pk])) == {story["kept"].pk}
    grouped = past.values("author_id").annotate(books=Count("id"))
    assert list(grouped) == [{"author_id": story["kept"].author_id, "books": 3}]


def test_every_evaluation_is_one_query_whatever_the_length_of_the_history(story):
    for number in range(30):
        change(story["kept"], pages=number)
    then = moment()
    for queryset in (
        as_of(Book, story["before"]),
        as_of(Book, then),
        as_of(Book, then).filter(pages__lt=10).order_by("-title")[:5],
    ):
        with count_queries() as queries:
            list(queryset)
        assert len(queries) == 1
    with count_queries() as queries:
        assert as_of(Book, then).count() == 3
    assert len(queries) == 1


def test_it_is_lazy(story):
    with count_queries() as queries:
        queryset = as_of(Book, story["before"]).filter(pages=100).order_by("title")
    assert len(queries) == 0
    assert isinstance(queryset, AsOfQuerySet)
    assert queryset.as_of_at == story["before"]


def test_it_can_be_used_as_a_subquery(story):
    past_ids = as_of(Book, story["before"]).filter(pages__lte=200).values("pk")
    assert titles(Book.objects.filter(pk__in=past_ids)) == ["Kept", "New title"]


def test_relations_lead_to_the_present(story):
    author = story["kept"].author
    change(author, name="Anne")
    past = as_of(Book, story["before"])
    assert past.filter(author__name="Anne").count() == 3  # the author as it is now
    assert past.filter(author__name="Ann").count() == 0
    assert past.select_related("author").get(pk=story["kept"].pk).author.name == "Anne"


def test_a_proxy_gives_instances_of_the_proxy(story):
    past = as_of(ProxyBook, story["before"])
    assert {type(book) for book in past} == {ProxyBook}
    assert titles(past) == ["Gone", "Kept", "Old title"]


# Read-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda qs: qs.update(title="x"),
        lambda qs: qs.delete(),
        lambda qs: qs.create(title="x"),
        lambda qs: qs.get_or_create(title="x"),
        lambda qs: qs.update_or_create(title="x"),
        lambda qs: qs.bulk_create([]),
        lambda qs: qs.bulk_update([], ["title"]),
        lambda qs: qs.select_for_update(),
    ],
)
def test_it_is_read_only(story, write):
    before = sorted(Book.objects.values_list("title", flat=True))
    with pytest.raises(TypeError, match="read-only"):
        write(as_of(Book, story["before"]))
    assert sorted(Book.objects.values_list("title", flat=True)) == before


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="datetime"):
        as_of(Book, "2024-01-01")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model class"):
        as_of(make_book(), timezone.now())  # type: ignore[arg-type]


def test_a_naive_moment_is_in_the_current_time_zone(story):
    naive = timezone.make_naive(story["before"])
    assert titles(as_of(Book, naive)) == ["Gone", "Kept", "Old title"]


# Values of every kind -------------------------------------------------------------------------


def test_values_of_every_field_type_come_back_exactly_and_filter_exactly(db):
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    with Context():
        stamped = Stamped.objects.create(
            label="a",
            payload={"k": [1, "two", None], "n": 1.5},
            blob=b"\x00\xffbytes",
            duration=datetime.timedelta(days=-2, seconds=5, microseconds=7),
        )
        # A datetime in another zone: history stores its offset, the database UTC.
        stamped.created = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=plus_two)
        stamped.save()
        whole = Stamped.objects.create(label="b", duration=datetime.timedelta(hours=1))
        whole.created = datetime.datetime(2024, 5, 6, 5, 8, 9, tzinfo=datetime.UTC)
        whole.save()
        book = make_book(price=Decimal("12.50"), published=datetime.date(2021, 2, 3))
        place = Restaurant.objects.create(name="Luigi", serves_pizza=True)
    then = moment()
    for instance in (stamped, whole):
        instance.refresh_from_db()
        past = as_of(Stamped, then).get(pk=instance.pk)
        assert row_values(past) == {**row_values(instance), "blob": past.blob}
        assert bytes(past.blob or b"") == bytes(instance.blob or b"")
    past = as_of(Stamped, then)
    assert past.filter(created=stamped.created).get().pk == stamped.pk
    assert past.filter(created__lt=stamped.created).get().pk == whole.pk
    assert past.filter(pk=stamped.pk).exists()
    assert past.filter(id=str(stamped.pk)).exists()
    assert past.filter(payload__k__1="two").get().pk == stamped.pk
    assert past.filter(duration__lt=datetime.timedelta(0)).get().pk == stamped.pk
    assert past.filter(duration=datetime.timedelta(hours=1)).get().pk == whole.pk
    assert as_of(Book, then).get(price=Decimal("12.5")).pk == book.pk
    assert as_of(Book, then).filter(price__gt=Decimal("12.49")).get().pk == book.pk
    assert as_of(Book, then).get(published__year=2021).pk == book.pk
    assert as_of(Restaurant, then).get(serves_pizza=True).pk == place.pk


def test_a_decimal_keeps_its_places(db):
    with Context():
        ledger = Ledger.objects.create(amount=Decimal("10.10"), exchange_rate=Decimal("1.2345"))
    past = as_of(Ledger, moment()).get(pk=ledger.pk)
    assert (past.amount, past.exchange_rate) == (Decimal("10.10"), Decimal("1.2345"))


def test_fields_revy_does_not_record_read_as_their_default(db):
    with Context():
        secret = Secret.objects.create(name="s", pin="1234", internal="not recorded")
    past = as_of(Secret, moment()).get(pk=secret.pk)
    assert (past.name, past.pin, past.internal) == ("s", "", "")
    assert row_values(past) == row_values(snapshot(Secret, secret.pk))


def test_a_multi_table_child_reads_its_parent_as_of_the_same_moment(db):
    with Context():
        restaurant = Restaurant.objects.create(name="Luigi", serves_pizza=False)
    before = moment()
    change(restaurant, name="Mario", serves_pizza=True)
    past = as_of(Restaurant, before)
    assert [(r.name, r.serves_pizza) for r in past] == [("Luigi", False)]
    assert past.filter(name="Luigi").count() == 1
    assert as_of(Place, before).get().name == "Luigi"
    with count_queries() as queries:
        list(past.all())
    assert len(queries) == 1


def test_composite_primary_keys(db):
    with Context():
        club = Club.objects.create(name="Chess")
        enrollment = Enrollment.objects.create(club=club, seat="A1", note="first")
    before = moment()
    change(enrollment, note="second")
    past = as_of(Enrollment, before).get()
    assert (past.pk, past.note) == ((club.pk, "A1"), "first")
    assert as_of(Enrollment, before).filter(pk=(club.pk, "A1")).exists()


# Property: as_of agrees with snapshot for every row and moment --------------------------------

TITLES = st.text(alphabet="abcXYZ é'%_", min_size=1, max_size=8)
PAGES = st.integers(min_value=-5, max_value=5)
PRICES = st.one_of(st.none(), st.decimals(min_value=-100, max_value=100, places=2))
DATES = st.one_of(st.none(), st.dates(datetime.date(1990, 1, 1), datetime.date(2030, 1, 1)))
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), TITLES, PAGES, PRICES, DATES),
        st.tuples(st.just("update"), st.integers(0, 5), TITLES, PAGES, PRICES),
        st.tuples(st.just("delete"), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
@given(operations=OPERATIONS, threshold=PAGES, data=st.data())
def test_as_of_agrees_with_snapshot_for_every_row_and_moment(operations, threshold, data):
    """Property: the table at t is exactly the rows whose snapshot at t exists, with those
    states; filters and orderings on it agree with Python's."""
    with transaction.atomic():
        author = Author.objects.create(name="a")
        alive: list[Book] = []
        every_pk: list[int] = []
        moments = [moment()]
        for operation in operations:
            with Context():
                if operation[0] == "create":
                    _, title, pages, price, published = operation
                    book = Book.objects.create(
                        author=author, title=title, pages=pages, price=price, published=published
                    )
                    alive.append(book)
                    every_pk.append(book.pk)
                elif operation[0] == "update" and alive:
                    _, index, title, pages, price = operation
                    book = alive[index % len(alive)]
                    book.title, book.pages, book.price = title, pages, price
                    book.save()
                elif operation[0] == "delete" and alive:
                    alive.pop(operation[1] % len(alive)).delete()
            moments.append(moment())
        at = data.draw(st.sampled_from(moments))
        expected = {}
        for pk in every_pk:
            state = snapshot(Book, pk, at=at)
            if state is not None:
                expected[pk] = row_values(state)
        past = as_of(Book, at)
        assert {book.pk: row_values(book) for book in past} == expected
        assert sorted(past.filter(pages__gte=threshold).values_list("pk", flat=True)) == sorted(
            pk for pk, values in expected.items() if values["pages"] >= threshold
        )
        ordered = list(past.order_by("-pages", "title", "pk").values_list("pk", flat=True))
        assert ordered == [
            pk
            for pk, _ in sorted(
                expected.items(), key=lambda item: (-item[1]["pages"], item[1]["title"], item[0])
            )
        ]
        transaction.set_rollback(True)


def test_uuid_primary_keys_filter_by_value(db):
    with Context():
        stamped = Stamped.objects.create(label="x")
    assert as_of(Stamped, moment()).get(pk=uuid.UUID(str(stamped.pk))).label == "x"


# A queryset of the present, read as of a moment -------------------------------------------------


def test_a_querysets_filters_and_ordering_apply_to_the_past_values(story):
    present = Book.objects.filter(pages__lt=260).order_by("-pages")
    past = as_of(present, story["before"])
    assert isinstance(past, AsOfQuerySet)
    assert [book.title for book in past] == ["Old title", "Kept"]
    # Now the renamed book has 250 pages: its past state (200) decides, not its present one.
    assert [book.title for book in as_of(present, story["after"])] == ["New title", "Kept"]
    with count_queries() as queries:
        assert as_of(present, story["before"]).count() == 2
    assert len(queries) == 1


def test_a_querysets_joins_lead_to_the_present_and_its_database_is_kept(story):
    author = story["kept"].author
    present = Book.objects.using("default").filter(author__name="Ann").select_related("author")
    past = as_of(present, story["before"])
    assert past.db == "default"
    with count_queries() as queries:
        books = list(past)
    assert len(queries) == 1
    assert {book.author.name for book in books} == {author.name}
    past_titles = as_of(Book.objects.values_list("title", flat=True), story["before"])
    assert sorted(past_titles) == ["Gone", "Kept", "Old title"]


def test_a_multi_table_childs_queryset_filters_its_parent_as_of_the_same_moment(db):
    with Context():
        restaurant = Restaurant.objects.create(name="Old name", serves_pizza=True)
    before = moment()
    change(restaurant, name="New name")
    present = Restaurant.objects.filter(name="Old name")
    assert not present.exists()
    assert [r.name for r in as_of(present, before)] == ["Old name"]
    assert not as_of(present, moment()).exists()


def test_a_queryset_of_the_past_is_refused(story):
    with pytest.raises(TypeError, match="of the present"):
        as_of(as_of(Book, story["before"]), story["after"])


def test_a_multi_table_child_of_the_past_works_as_a_subquery(db):
    # A subquery's aliases are relabeled: the parent link's join must survive the relabel
    # (it raised TypeError, a clone missing its moment).
    with Context():
        restaurant = Restaurant.objects.create(name="Luigi", serves_pizza=False)
        Restaurant.objects.create(name="Gino", serves_pizza=True)
    before = moment()
    change(restaurant, name="Mario")
    past = as_of(Restaurant, before).filter(name="Luigi").values("pk")
    assert [place.name for place in Place.objects.filter(pk__in=past)] == ["Mario"]
