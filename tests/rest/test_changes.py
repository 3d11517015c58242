"""GET /changes/: the feed of every visible delta in commit order, from a cursor."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from revy import Context
from tests.conftest import count_queries, feed_caught_up
from tests.factories import make_author, make_book
from tests.history_models import ObjectDelta
from tests.rest.conftest import assert_problem, grant, token_client

# Committed for real: on PostgreSQL the feed shows only what no running transaction (such as
# a test's own) can still precede.
pytestmark = pytest.mark.django_db(transaction=True)

DELTA_KEYS = {
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


def follow(client: APIClient, page_size: int = 2, **filters: str) -> list[dict]:
    """Read the whole feed page by page, as a consumer would."""
    results, cursor = [], None
    while True:
        params = {"page_size": page_size, **filters}
        if cursor:
            params["after"] = cursor
        response = client.get("/api/changes/", params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"results", "cursor", "has_more"}
        results += body["results"]
        cursor = body["cursor"]
        if not body["has_more"]:
            return results


def test_the_feed_lists_every_delta_oldest_first_in_the_delta_json(admin_api, user):
    with Context(actor=user, revision_description="first"):
        author = make_author(name="Ann")
        make_book(author=author)
    with Context(actor=user):
        author.name = "Anne"
        author.save()
    feed_caught_up()

    results = follow(admin_api)

    assert [r["id"] for r in results] == list(
        ObjectDelta.objects.order_by("id").values_list("id", flat=True)
    )
    assert set(results[0]) == DELTA_KEYS
    assert results[-1]["changes"][0]["new"] == "Anne"
    assert results[-1]["actor"]["id"] == str(user.pk)


def test_resuming_from_the_cursor_gives_only_what_is_new(admin_api):
    with Context():
        make_author()
    feed_caught_up()
    first = admin_api.get("/api/changes/").json()
    assert len(first["results"]) == 1 and not first["has_more"]
    idle = admin_api.get("/api/changes/", {"after": first["cursor"]}).json()
    assert idle == {"results": [], "cursor": first["cursor"], "has_more": False}
    with Context():
        author = make_author()
    feed_caught_up()
    later = admin_api.get("/api/changes/", {"after": idle["cursor"]}).json()
    assert [r["content"]["id"] for r in later["results"]] == [str(author.pk)]


def test_a_user_follows_only_the_models_they_may_view(user):
    with Context():
        author = make_author()
        make_book(author=author)
    grant(user, "testapp.view_book")
    feed_caught_up()
    results = follow(token_client(user))
    assert {r["content"]["type"] for r in results} == {"testapp.book"}


def test_the_filters_of_deltas_apply(admin_api):
    with Context():
        author = make_author()
        make_book(author=author)
    feed_caught_up()
    results = follow(admin_api, content_type="testapp.author")
    assert [r["content"]["id"] for r in results] == [str(author.pk)]


@pytest.mark.parametrize("cursor", ["nonsense", "WzAsNV0:1tIiY0:forged"])
def test_a_forged_cursor_is_a_400_problem(admin_api, cursor):
    body = assert_problem(
        admin_api.get("/api/changes/", {"after": cursor}), 400, "validation-error"
    )
    assert "after" in body["errors"]


@pytest.mark.parametrize("size", ["0", "-3", "many"])
def test_a_bad_page_size_is_a_400_problem(admin_api, size):
    assert_problem(admin_api.get("/api/changes/", {"page_size": size}), 400, "validation-error")


def test_page_size_is_capped_at_500(admin_api):
    with Context():
        for _ in range(3):
            make_author()
    feed_caught_up()
    body = admin_api.get("/api/changes/", {"page_size": 100000}).json()
    assert len(body["results"]) == 3


def test_anonymous_requests_are_refused():
    response = APIClient().get("/api/changes/")
    assert response.status_code in (401, 403)


def test_a_page_costs_the_same_number_of_queries_for_2_deltas_as_for_40(admin_api):
    def cost(count: int) -> int:
        ObjectDelta.objects.all().delete()
        with Context():
            for _ in range(count):
                make_book()
        feed_caught_up()
        admin_api.get("/api/changes/")  # warm caches
        with count_queries() as queries:
            assert len(admin_api.get("/api/changes/", {"page_size": 500}).json()["results"]) == (
                count * 2
            )
        return len(queries)

    assert cost(1) == cost(20)
