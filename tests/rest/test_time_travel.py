"""Time travel and recovery over REST: `?as_of=` lists, `deleted/` and cascading rollbacks."""

from __future__ import annotations

import pytest

from revy import Context
from tests.conftest import count_queries
from tests.contrib.django.helpers import change, moment
from tests.factories import grant, history_counts, make_author, object_deltas
from tests.rest.conftest import assert_problem, token_client
from tests.testapp.models import Author, Book, Car, Cylinder, Engine

pytestmark = pytest.mark.django_db


@pytest.fixture
def shelf(editor):
    """Four books; at `before` "B" had 20 pages and "D" did not exist; "C" is deleted since."""
    author = make_author(name="Ann")
    with Context(actor=editor):
        a = Book.objects.create(author=author, title="A", pages=10)
        b = Book.objects.create(author=author, title="B", pages=20)
        c = Book.objects.create(author=author, title="C", pages=30)
    before = moment()
    change(b, pages=5)
    with Context(actor=editor):
        c.delete()
        Book.objects.create(author=author, title="D", pages=40)
    return {"before": before, "a": a, "b": b, "c": c}


# ?as_of= ------------------------------------------------------------------------------------


def test_as_of_lists_the_objects_as_they_were_with_the_viewsets_serializer(editor_api, shelf):
    response = editor_api.get("/api/books/", {"as_of": shelf["before"].isoformat()})

    assert response.status_code == 200
    assert [(book["title"], book["pages"]) for book in response.json()] == [
        ("A", 10),
        ("B", 20),
        ("C", 30),
    ]
    now = editor_api.get("/api/books/").json()
    assert [(book["title"], book["pages"]) for book in now] == [("A", 10), ("B", 5), ("D", 40)]


def test_as_of_keeps_the_ordering_and_the_pagination(editor_api, shelf):
    at = shelf["before"].isoformat()

    first = editor_api.get("/api/paged-books/", {"as_of": at, "ordering": "-pages"}).json()
    assert first["count"] == 3
    assert [book["title"] for book in first["results"]] == ["C", "B"]
    second = editor_api.get(first["next"]).json()
    assert [book["title"] for book in second["results"]] == ["A"]


def test_as_of_costs_the_same_queries_as_the_present_list(editor_api, shelf):
    editor_api.get("/api/paged-books/")  # warm the session, token and content type caches
    with count_queries() as present:
        editor_api.get("/api/paged-books/", {"ordering": "title"})
    with count_queries() as past:
        response = editor_api.get(
            "/api/paged-books/", {"as_of": shelf["before"].isoformat(), "ordering": "title"}
        )
    assert response.status_code == 200
    # The page's count and its rows are one query each, for the past as for the present; the
    # policy's view of the model's history adds the user's and groups' permissions.
    assert len(past) == len(present) + 2
    change(shelf["a"], pages=11)
    change(shelf["a"], pages=12)
    with count_queries() as longer:
        editor_api.get("/api/paged-books/", {"as_of": shelf["before"].isoformat()})
    assert len(longer) == len(past)  # whatever the length of the history


def test_as_of_applies_the_viewsets_queryset_to_the_past_values(user, other_user):
    grant(user, "testapp.view_author")
    with Context():
        mine = Author.objects.create(name="Mine", user=user)
    before = moment()
    with Context():
        mine.user = other_user
        mine.save()
    client = token_client(user)

    assert client.get("/api/own-authors/").json() == []
    past = client.get("/api/own-authors/", {"as_of": before.isoformat()}).json()
    assert [author["name"] for author in past] == ["Mine"]


def test_as_of_needs_the_policys_view_of_the_models_history(other_user, shelf):
    grant(other_user, "testapp.add_book")  # may list books (DjangoModelPermissions), not view
    client = token_client(other_user)
    assert client.get("/api/books/").status_code == 200

    response = client.get("/api/books/", {"as_of": shelf["before"].isoformat()})

    assert_problem(response, 403, "forbidden")


def test_a_bad_as_of_is_a_400_problem(editor_api):
    response = editor_api.get("/api/books/", {"as_of": "yesterday"})

    body = assert_problem(response, 400, "bad-request")
    assert "as_of" in body["detail"]


# deleted/ -----------------------------------------------------------------------------------


@pytest.fixture
def wreck(editor):
    """A car with its engine and two cylinders, deleted by alice (one revision)."""
    with Context(actor=editor):
        car = Car.objects.create(manufacturer="Saab")
        engine = Engine.objects.create(car=car, num_cylinders=2)
        cylinders = [Cylinder.objects.create(engine=engine, volume=v) for v in (400, 600)]
    keys = {"car": car.pk, "engine": engine.pk, "cylinders": [c.pk for c in cylinders]}
    with Context(actor=editor, revision_description="scrapped"):
        car.delete()
    return keys


def test_deleted_lists_the_deleted_rows_with_their_last_state_time_and_actor(
    editor, admin_api, wreck
):
    deletion = object_deltas(Car, wreck["car"])[-1]

    response = admin_api.get("/api/deleted/", {"content_type": "testapp.car"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    (row,) = body["results"]
    assert row["delta"] == deletion.pk
    assert row["revision"] == deletion.revision_id
    assert row["actor"] == {"type": "auth.user", "id": str(editor.pk), "display": "alice"}
    assert row["description"] == deletion.description
    assert row["content"]["type"] == "testapp.car"
    assert row["content"]["id"] == str(wreck["car"])
    assert row["state"] == {"id": wreck["car"], "manufacturer": "Saab"}
    assert row["deleted_at"]
    cylinders = admin_api.get("/api/deleted/", {"content_type": "testapp.cylinder"}).json()
    assert len(cylinders["results"]) == 2
    assert {row["actor"] for row in cylinders["results"]} == {None}  # the cascade: the system


def test_deleted_is_cursor_paginated_and_costs_the_same_queries_for_any_page_size(admin_api):
    with Context():
        cars = [Car.objects.create(manufacturer=f"car {n}") for n in range(6)]
    with Context():
        for car in cars:
            car.delete()
    admin_api.get("/api/deleted/", {"content_type": "testapp.car"})  # warm the caches

    with count_queries() as small:
        first = admin_api.get("/api/deleted/", {"content_type": "testapp.car", "page_size": 2})
    with count_queries() as large:
        admin_api.get("/api/deleted/", {"content_type": "testapp.car", "page_size": 6})

    assert len(small) == len(large)
    page = first.json()
    assert [row["state"]["manufacturer"] for row in page["results"]] == ["car 5", "car 4"]
    rest = admin_api.get(page["next"]).json()
    assert [row["state"]["manufacturer"] for row in rest["results"]] == ["car 3", "car 2"]


def test_deleted_shows_only_what_the_policy_lets_the_user_see(other_user, wreck):
    grant(other_user, "testapp.view_car")
    client = token_client(other_user)

    cars = client.get("/api/deleted/", {"content_type": "testapp.car"}).json()["results"]
    engines = client.get("/api/deleted/", {"content_type": "testapp.engine"}).json()["results"]

    assert [row["content"]["id"] for row in cars] == [str(wreck["car"])]
    assert engines == []


@pytest.mark.parametrize("label", ["", "testapp", "testapp.nothing", "a.b.c"])
def test_deleted_needs_a_known_content_type(admin_api, label):
    response = admin_api.get("/api/deleted/", {"content_type": label} if label else {})

    body = assert_problem(response, 400, "bad-request")
    assert "content_type" in body["detail"]


def test_deleted_needs_a_login(client):
    assert client.get("/api/deleted/", {"content_type": "testapp.car"}).status_code in (401, 403)


# rollback/ with {"cascade": true} -----------------------------------------------------------


def test_cascading_rollback_re_creates_the_car_engine_and_cylinders_in_one_revision(
    admin_api, wreck
):
    deletion = object_deltas(Car, wreck["car"])[-1]

    response = admin_api.post(
        f"/api/cars/{wreck['car']}/rollback/",
        {"delta": deletion.pk, "cascade": True},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["created"] is True
    assert [(row["type"], row["id"]) for row in body["cascaded"]] == [
        ("testapp.engine", str(wreck["engine"])),
        *(("testapp.cylinder", str(pk)) for pk in wreck["cylinders"]),
    ]
    engine = Engine.objects.get(pk=wreck["engine"])
    assert engine.car_id == wreck["car"]
    assert sorted(engine.cylinders.values_list("volume", flat=True)) == [400, 600]
    re_created = [
        object_deltas(model, pk)[-1]
        for model, pk in [
            (Car, wreck["car"]),
            (Engine, wreck["engine"]),
            *((Cylinder, pk) for pk in wreck["cylinders"]),
        ]
    ]
    assert {delta.action for delta in re_created} == {"Create"}
    assert {delta.revision_id for delta in re_created} == {int(response["X-Revision-Id"])}


def test_without_cascade_only_the_car_comes_back(admin_api, wreck):
    deletion = object_deltas(Car, wreck["car"])[-1]

    body = admin_api.post(
        f"/api/cars/{wreck['car']}/rollback/", {"delta": deletion.pk}, format="json"
    ).json()

    assert body["cascaded"] == []
    assert Car.objects.filter(pk=wreck["car"]).exists()
    assert not Engine.objects.exists()


def test_a_cascading_dry_run_lists_the_rows_and_writes_nothing(admin_api, wreck):
    deletion = object_deltas(Car, wreck["car"])[-1]
    before = history_counts()

    body = admin_api.post(
        f"/api/cars/{wreck['car']}/rollback/?dry_run=true",
        {"delta": deletion.pk, "cascade": True},
        format="json",
    ).json()

    assert body["dry_run"] is True
    assert len(body["cascaded"]) == 3
    assert history_counts() == before
    assert not Car.objects.exists() and not Engine.objects.exists()


def test_a_cascading_rollback_needs_add_on_every_row_it_re_creates(editor, editor_api, wreck):
    # alice may add cars, not engines or cylinders.
    deletion = object_deltas(Car, wreck["car"])[-1]
    before = history_counts()

    for query in ("", "?dry_run=true"):
        response = editor_api.post(
            f"/api/cars/{wreck['car']}/rollback/{query}",
            {"delta": deletion.pk, "cascade": True},
            format="json",
        )
        assert_problem(response, 403, "forbidden")

    assert history_counts() == before
    assert not Car.objects.exists()
