"""Cursor pagination of history lists, and the cost of a page (queries per page size)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from revy import Context
from tests.rest.conftest import assert_problem, grant
from tests.testapp.models import Author, Organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def many_revisions(user, other_user):
    """120 revisions, each an author's creation and update, by four different actors."""
    organization = Organization.objects.create(slug="acme", name="ACME")
    actors = [user, other_user, organization, None]
    for number in range(120):
        with Context(actor=actors[number % 4], revision_description=f"change {number}"):
            author = Author.objects.create(name=f"Author {number}")
            author.email = f"a{number}@example.com"
            with Context.via_actor(actors[(number + 1) % 4]):
                author.name = f"Author #{number}"
            author.save()


@pytest.fixture
def long_history(user, other_user):
    """One author changed 120 times, by two users in turn."""
    with Context(actor=user):
        author = Author.objects.create(name="Ann")
    for number in range(120):
        with Context(actor=(user, other_user)[number % 2]):
            author.name = f"Ann {number}"
            author.save()
    return author


def test_default_page_is_50_newest_first(admin_api, many_revisions):
    first = admin_api.get("/api/revisions/").json()
    second = admin_api.get(first["next"]).json()

    assert len(first["results"]) == len(second["results"]) == 50
    ids = [revision["id"] for revision in first["results"] + second["results"]]
    assert ids == sorted(ids, reverse=True)
    assert admin_api.get(second["previous"]).json()["results"] == first["results"]


def test_page_size_is_capped_at_500(admin_api, many_revisions):
    # 120 creations and 120 updates: 240 deltas; 500 fit, 501 are capped.
    assert len(admin_api.get("/api/deltas/", {"page_size": 1000}).json()["results"]) == 240
    assert len(admin_api.get("/api/deltas/", {"page_size": 7}).json()["results"]) == 7
    assert len(admin_api.get("/api/deltas/").json()["results"]) == 50


@pytest.mark.parametrize("page_size", ["", "0", "-1", "x", "1.5", "²"])
def test_a_page_size_that_is_not_a_positive_integer_is_refused(admin_api, page_size):
    # It was the default page before: a client's mistake went unnoticed.
    response = admin_api.get("/api/deltas/", {"page_size": page_size})
    assert_problem(response, 400, "validation-error")
    assert set(response.json()["errors"]) == {"page_size"}


def test_pages_name_the_next_and_previous_ones_in_a_link_header(admin_api, many_revisions):
    first = admin_api.get("/api/revisions/", {"page_size": 10})
    assert first["Link"] == f'<{first.json()["next"]}>; rel="next"'
    second = admin_api.get(first.json()["next"])
    body = second.json()
    assert second["Link"] == f'<{body["next"]}>; rel="next", <{body["previous"]}>; rel="prev"'
    assert "Link" not in admin_api.get("/api/revisions/", {"page_size": 500})


def test_page_size_above_500_returns_500(admin_api):
    with Context():
        Author.objects.bulk_create([Author(name=f"Author {number}") for number in range(520)])

    response = admin_api.get("/api/deltas/", {"page_size": 999})

    assert len(response.json()["results"]) == 500
    assert response.json()["next"]


def test_an_invalid_cursor_is_404(admin_api, many_revisions):
    assert_problem(admin_api.get("/api/deltas/", {"cursor": "garbage"}), 404, "not-found")


# Queries per page --------------------------------------------------------------------------


def _queries(client, url: str, page_size: int) -> int:
    client.get(url, {"page_size": page_size})  # warm caches (content types, permissions)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {"page_size": page_size})
    assert response.status_code == 200
    assert len(response.json()["results"]) == page_size
    return len(captured)


@pytest.mark.parametrize("url", ["/api/revisions/", "/api/deltas/"])
def test_a_page_of_100_costs_the_queries_of_a_page_of_10(admin_api, many_revisions, url):
    assert _queries(admin_api, url, 10) == _queries(admin_api, url, 100)


@pytest.mark.parametrize("url", ["/api/revisions/", "/api/deltas/"])
def test_the_same_for_a_user_who_sees_by_permission(client_for, user, many_revisions, url):
    grant(user, "testapp.view_author")
    client = client_for(user)

    assert _queries(client, url, 10) == _queries(client, url, 100)


def test_history_pages_cost_the_same_queries(editor_api, long_history):
    url = f"/api/authors/{long_history.pk}/history/"

    assert _queries(editor_api, url, 10) == _queries(editor_api, url, 100)


def test_query_counts_measured(admin_api, editor_api, many_revisions, long_history, capsys):
    """Not an assertion on exact numbers: reports them (run with -s to read them)."""
    counts = {
        url: _queries(client, url, 100)
        for client, url in (
            (admin_api, "/api/revisions/"),
            (admin_api, "/api/deltas/"),
            (editor_api, f"/api/authors/{long_history.pk}/history/"),
        )
    }
    with capsys.disabled():
        print(f"\nqueries for a page of 100: {counts}")
    assert all(count <= 12 for count in counts.values()), counts
