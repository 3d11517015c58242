"""Filters of /deltas/, and the same filters on /revisions/ (revisions with a matching delta)."""

from __future__ import annotations

import datetime

import pytest

from revy import Context
from tests.factories import object_deltas
from tests.rest.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(user, other_user, organization):
    """Five revisions: alice creates Ann and a book; bob renames Ann; ACME renames the book;
    alice sets Ann's email while the system renames her; the system deletes the book."""
    from tests.testapp.models import Author, Book

    with Context(actor=user, revision_description="first draft"):
        ann = Author.objects.create(name="Ann")
        book = Book.objects.create(author=ann, title="Draft")
    with Context(actor=other_user, revision_description="spelling"):
        ann.name = "Anne"
        ann.save()
    with Context(actor=organization, revision_description="publisher's title"):
        book.title = "Final"
        book.save()
    with Context(actor=user, revision_description="collaboration"):
        ann = Author.objects.get(pk=ann.pk)  # loaded in the context, as a view loads it
        ann.email = "anne@example.com"
        with Context.via_actor(None):
            ann.name = "ANNE"
        ann.save()
    with Context(actor=None, revision_description="cleanup"):
        book.delete()
    return ann, book


def _deltas(client, **params):
    response = client.get("/api/deltas/", params)
    assert response.status_code == 200, response.content
    return [
        (delta["content"]["type"].split(".")[1], delta["action"])
        for delta in response.json()["results"]
    ]


def _revisions(client, **params):
    response = client.get("/api/revisions/", params)
    assert response.status_code == 200, response.content
    return [revision["description"] for revision in response.json()["results"]]


def test_no_filter(admin_api, story):
    assert _revisions(admin_api) == [
        "cleanup",
        "collaboration",
        "publisher's title",
        "spelling",
        "first draft",
    ]


def test_actor_filter_takes_app_label_model_and_pk(admin_api, story, other_user):
    assert _deltas(admin_api, actor=f"auth.user:{other_user.pk}") == [("author", "Update")]
    assert _revisions(admin_api, actor=f"auth.user:{other_user.pk}") == ["spelling"]


def test_actor_filter_matches_attribute_deltas_too(admin_api, story, user):
    # In "collaboration" the system renamed Ann inside alice's update. The keys the database
    # gave Ann and the book in "first draft" are the system's values, but nobody's action.
    assert _revisions(admin_api, actor="system") == ["cleanup", "collaboration"]
    assert _revisions(admin_api, actor=f"auth.user:{user.pk}") == [
        "collaboration",
        "first draft",
    ]


def test_actor_filter_with_an_organization(admin_api, story, organization):
    assert _deltas(admin_api, actor=f"testapp.organization:{organization.pk}") == [
        ("book", "Update")
    ]


@pytest.mark.parametrize("value", ["alice", "auth.user", "nope.model:1", ":5", "auth.user:"])
def test_invalid_actor_is_400(admin_api, story, value):
    for url in ("/api/deltas/", "/api/revisions/"):
        body = assert_problem(admin_api.get(url, {"actor": value}), 400, "validation-error")
        assert "actor" in body["errors"]


def test_content_type_and_object_id(admin_api, story):
    ann, _book = story

    assert _deltas(admin_api, content_type="testapp.book") == [
        ("book", "Delete"),
        ("book", "Update"),
        ("book", "Create"),
    ]
    assert _deltas(admin_api, content_type="TESTAPP.Author", object_id=str(ann.pk)) == [
        ("author", "Update"),
        ("author", "Update"),
        ("author", "Create"),
    ]
    assert _revisions(admin_api, content_type="testapp.book") == [
        "cleanup",
        "publisher's title",
        "first draft",
    ]


def test_unknown_content_type_is_400(admin_api, story):
    body = assert_problem(
        admin_api.get("/api/deltas/", {"content_type": "testapp.nothing"}), 400, "validation-error"
    )
    assert "content_type" in body["errors"]


def test_action_and_event_type(admin_api, story):
    assert _deltas(admin_api, action="Delete") == [("book", "Delete")]
    assert _deltas(admin_api, event_type="testapp.author.updated") == [
        ("author", "Update"),
        ("author", "Update"),
    ]
    assert _revisions(admin_api, action="Create") == ["first draft"]
    assert_problem(admin_api.get("/api/deltas/", {"action": "Explode"}), 400, "validation-error")


def test_since_and_until_are_inclusive(admin_api, story):
    deltas = object_deltas()
    third = deltas[2].created_at.isoformat()
    fourth = deltas[3].created_at.isoformat()

    assert len(_deltas(admin_api, since=third, until=fourth)) == 2
    assert _revisions(admin_api, since=fourth, until=fourth) == ["publisher's title"]
    future = (deltas[-1].created_at + datetime.timedelta(days=1)).isoformat()
    assert _deltas(admin_api, since=future) == []
    assert_problem(admin_api.get("/api/deltas/", {"since": "soon"}), 400, "validation-error")


def test_search_looks_at_descriptions_and_event_types(admin_api, story):
    assert _revisions(admin_api, search="PUBLISHER") == ["publisher's title"]
    assert _revisions(admin_api, search="book.deleted") == ["cleanup"]
    assert _deltas(admin_api, search="spelling") == [("author", "Update")]


def test_on_revisions_one_delta_must_match_every_filter(admin_api, story, other_user):
    # bob updated an author, and "first draft" created a book: no single delta is both.
    assert _revisions(admin_api, actor=f"auth.user:{other_user.pk}", action="Create") == []
    assert _revisions(admin_api, content_type="testapp.book", action="Update") == [
        "publisher's title"
    ]


def test_filters_never_reveal_invisible_deltas(story, user, client_for):
    from tests.rest.conftest import grant

    grant(user, "testapp.view_author")
    client = client_for(user)

    assert _revisions(client, content_type="testapp.book") == []
    assert _deltas(client, content_type="testapp.book") == []
    # "publisher's title" changed only the book: alice does not see it at all.
    assert "publisher's title" not in _revisions(client)


@pytest.mark.parametrize("resource", ["deltas", "revisions"])
@pytest.mark.parametrize("dense_over", [0, 10_000])  # both shapes of actor and search
def test_filtered_pages_cost_the_same_queries_whatever_the_page(
    admin_api, story, user, resource, dense_over, monkeypatch
):
    """The actor, since/until and search filters cost a fixed number of small queries (those
    that choose their query shape), on the first page as on any later one."""
    from revy.contrib.django import export
    from tests.conftest import count_queries

    monkeypatch.setattr(export, "DENSE_ACTOR_ROWS", dense_over)
    monkeypatch.setattr(export, "DENSE_SEARCH_REVISIONS", dense_over)
    for number in range(7):  # three pages of two authors, newer than the story
        with Context(actor=user):
            object_deltas_story_extra(number)
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).isoformat()
    for params in ({"actor": f"auth.user:{user.pk}"}, {"since": since}, {"search": "AUTHOR"}):
        counts = []
        url, query = f"/api/{resource}/", {**params, "page_size": 2}
        for _ in range(3):
            with count_queries() as queries:
                response = admin_api.get(url, query)
            assert response.status_code == 200, response.content
            counts.append(len(queries))
            url, query = response.json()["next"], {}
            assert url
        assert len(set(counts)) == 1, (params, counts)


def object_deltas_story_extra(number: int) -> None:
    from tests.testapp.models import Author

    Author.objects.create(name=f"Extra {number}")
