"""`objectHistory`, the `history` field, `snapshot` and `objectDiff`."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from revy import Context
from tests.factories import make_author, make_book, object_deltas, revisions
from tests.graphql.conftest import delta_id, grant, revision_id
from tests.testapp.models import Car, Cylinder, Engine

HISTORY = """
query($type: String!, $id: ID!, $aggregates: Boolean, $first: Int, $after: String) {
  objectHistory(type: $type, id: $id, aggregates: $aggregates, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id action eventType description data
        actor { type id display }
        content { type id display }
        revision { id description }
        changes { field action old new description actor { type id display } }
      }
    }
  }
}
"""
SNAPSHOT = """
query($type: String!, $id: ID!, $revision: ID, $delta: ID, $at: DateTime) {
  snapshot(type: $type, id: $id, revision: $revision, delta: $delta, at: $at) {
    type id state etag
  }
}
"""
DIFF = """
query($type: String!, $id: ID!, $since: String, $until: String) {
  objectDiff(type: $type, id: $id, since: $since, until: $until) {
    type id since until changes { field old new }
  }
}
"""


@pytest.fixture
def book(user):
    """A book created by alice, retitled by the system, then given pages by alice."""
    author = make_author(name="Herbert")
    with Context(actor=user, revision_description="create"):
        book = make_book(author=author, title="Dune", pages=100)
    with Context(revision_description="retitle", attribute_delta_description="typo"):
        book.title = "Dune!"
        book.save()
    with Context(actor=user, revision_description="pages"):
        book.pages = 412
        book.save()
    return book


@pytest.fixture
def reader(gql, user):
    grant(user, "testapp.view_book", "testapp.view_author")
    gql.login(user)
    return gql


def _history(gql, obj, **variables):
    label = f"{obj._meta.app_label}.{obj._meta.model_name}"
    return gql(HISTORY, {"type": label, "id": str(obj.pk), **variables})


def test_object_history_lists_the_rows_deltas_newest_first(reader, user, book):
    data = _history(reader, book).ok()["objectHistory"]
    assert data["totalCount"] == 3
    nodes = [edge["node"] for edge in data["edges"]]
    assert [node["action"] for node in nodes] == ["UPDATE", "UPDATE", "CREATE"]
    assert [node["revision"]["description"] for node in nodes] == ["pages", "retitle", "create"]
    alice = {"type": "auth.user", "id": str(user.pk), "display": "alice"}
    assert nodes[0]["actor"] == alice
    assert nodes[1]["actor"] is None
    assert nodes[0]["content"] == {"type": "testapp.book", "id": str(book.pk), "display": "Dune!"}
    assert nodes[0]["changes"] == [
        {
            "field": "pages",
            "action": "SET",
            "old": 100,
            "new": 412,
            "description": "",
            "actor": alice,
        }
    ]
    assert nodes[1]["changes"][0]["description"] == "typo"
    assert nodes[0]["data"]["title"] == "Dune!"
    assert nodes[0]["id"] == delta_id(object_deltas(book)[-1])
    created = {change["field"]: change["new"] for change in nodes[2]["changes"]}
    assert created["title"] == "Dune" and created["pages"] == 100


def test_object_history_of_a_deleted_row(reader, book):
    pk = book.pk
    with Context():
        book.delete()
    book.pk = pk
    data = _history(reader, book).ok()["objectHistory"]
    assert data["edges"][0]["node"]["action"] == "DELETE"
    content = data["edges"][0]["node"]["content"]
    assert content == {
        "type": "testapp.book",
        "id": str(pk),
        "display": f"testapp.book #{pk} (deleted)",
    }


def test_object_history_is_paginated(reader, book):
    page = _history(reader, book, first=2).ok()["objectHistory"]
    assert len(page["edges"]) == 2 and page["pageInfo"]["hasNextPage"]
    rest = _history(reader, book, first=2, after=page["pageInfo"]["endCursor"]).ok()
    assert [edge["node"]["action"] for edge in rest["objectHistory"]["edges"]] == ["CREATE"]


def test_object_history_with_aggregates(gql, user):
    grant(user, "testapp.view_car", "testapp.view_engine", "testapp.view_cylinder")
    gql.login(user)
    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        engine = Engine.objects.create(car=car)
        Cylinder.objects.create(engine=engine)
    own = _history(gql, car).ok()["objectHistory"]["edges"]
    everything = _history(gql, car, aggregates=True).ok()["objectHistory"]["edges"]
    assert [edge["node"]["content"]["type"] for edge in own] == ["testapp.car"]
    # Aggregates are recursive: the cylinder's engine belongs to the car.
    assert {edge["node"]["content"]["type"] for edge in everything} == {
        "testapp.car",
        "testapp.engine",
        "testapp.cylinder",
    }


def test_aggregated_history_shows_only_visible_models(gql, user):
    grant(user, "testapp.view_car")
    gql.login(user)
    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        Engine.objects.create(car=car)
    edges = _history(gql, car, aggregates=True).ok()["objectHistory"]["edges"]
    assert [edge["node"]["content"]["type"] for edge in edges] == ["testapp.car"]


def test_history_needs_the_view_permission(gql, user, book):
    gql.login(user)
    response = _history(gql, book)
    assert response.codes == ["FORBIDDEN"]
    assert response.data is None


def test_the_change_permission_is_enough_to_see_history(gql, user, book):
    grant(user, "testapp.change_book")
    gql.login(user)
    assert _history(gql, book).ok()["objectHistory"]["totalCount"] == 3


def test_history_is_not_for_anonymous_users(gql, book):
    assert _history(gql, book).codes == ["FORBIDDEN"]


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"type": "testapp"}, "type"),
        ({"type": "nothing.here"}, "type"),
        ({"type": "testapp.book", "id": "abc"}, "id"),
        ({"type": "testapp.book", "id": ""}, "id"),
        ({"type": "testapp.book", "id": "99999999999999999999999"}, "id"),
    ],
)
def test_bad_type_or_id_is_a_bad_request(reader, book, variables, argument):
    response = reader(HISTORY, {"id": str(book.pk), **variables})
    assert response.codes == ["BAD_REQUEST"]
    assert response.errors[0]["extensions"]["argument"] == argument


def test_type_is_case_insensitive(reader, book):
    response = reader(HISTORY, {"type": "TestApp.Book", "id": str(book.pk)})
    assert response.ok()["objectHistory"]["totalCount"] == 3


def test_a_row_without_history_has_an_empty_history(reader):
    data = reader(HISTORY, {"type": "testapp.book", "id": "424242"}).ok()
    assert data["objectHistory"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [],
    }


# The history field ------------------------------------------------------------------------

BOOKS = "{ books { title history(first: 2) { totalCount edges { node { action } } } } }"


def test_the_history_field_lists_each_rows_history(reader, book):
    with Context():
        make_book(title="Other")
    data = reader(BOOKS).ok()["books"]
    by_title = {row["title"]: row["history"] for row in data}
    assert by_title["Dune!"]["totalCount"] == 3
    assert [edge["node"]["action"] for edge in by_title["Dune!"]["edges"]] == ["UPDATE", "UPDATE"]
    assert by_title["Other"]["totalCount"] == 1


def test_the_history_field_needs_the_view_permission(gql, user, book):
    grant(user, "testapp.view_author")
    gql.login(user)
    response = gql(BOOKS)
    assert response.codes == ["FORBIDDEN"]


def test_the_history_field_with_aggregates(gql, user):
    grant(user, "testapp.view_car", "testapp.view_engine")
    gql.login(user)
    with Context():
        car = Car.objects.create(manufacturer="Saab")
        Engine.objects.create(car=car)
    data = gql("{ cars { history { edges { node { content { type } } } } } }").ok()
    types = [edge["node"]["content"]["type"] for edge in data["cars"][0]["history"]["edges"]]
    assert types == ["testapp.engine", "testapp.car"]
    data = gql("{ cars { history(aggregates: false) { totalCount } } }").ok()
    assert data["cars"][0]["history"]["totalCount"] == 1


# Snapshots ----------------------------------------------------------------------------------


def _snapshot(gql, book, **variables):
    return gql(SNAPSHOT, {"type": "testapp.book", "id": str(book.pk), **variables})


def test_snapshot_at_a_revision(reader, book):
    retitle = revisions()[1]
    data = _snapshot(reader, book, revision=revision_id(retitle)).ok()["snapshot"]
    assert data["type"] == "testapp.book" and data["id"] == str(book.pk)
    assert data["state"]["title"] == "Dune!" and data["state"]["pages"] == 100
    assert data["etag"].startswith('"')


def test_snapshot_at_a_delta_and_at_a_time(reader, book):
    first = object_deltas(book)[0]
    state = _snapshot(reader, book, delta=delta_id(first)).ok()["snapshot"]["state"]
    assert state["title"] == "Dune"
    before = (first.created_at - datetime.timedelta(seconds=1)).isoformat()
    assert _snapshot(reader, book, at=before).ok()["snapshot"] is None
    now = timezone.now().isoformat()
    assert _snapshot(reader, book, at=now).ok()["snapshot"]["state"]["pages"] == 412


def test_snapshot_without_a_point_is_the_latest_state_with_the_current_etag(reader, book):
    from revy_api.operations import etag

    data = _snapshot(reader, book).ok()["snapshot"]
    assert data["state"]["pages"] == 412
    book.refresh_from_db()
    assert data["etag"] == etag(book)


def test_snapshot_of_a_revision_that_deleted_the_row_is_null(reader, book):
    pk = book.pk
    with Context():
        book.delete()
    book.pk = pk
    deleted = revisions()[-1]
    assert _snapshot(reader, book, revision=revision_id(deleted)).ok()["snapshot"] is None


def test_snapshot_of_a_deletion_delta_is_the_state_before_it(reader, book):
    pk = book.pk
    with Context():
        book.delete()
    book.pk = pk
    deletion = object_deltas(book)[-1]
    state = _snapshot(reader, book, delta=delta_id(deletion)).ok()["snapshot"]["state"]
    assert state["pages"] == 412


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"revision": "UmV2aXNpb246OTk5OQ=="}, "NOT_FOUND"),
        ({"delta": "T2JqZWN0RGVsdGE6OTk5OQ=="}, "NOT_FOUND"),
        ({"revision": "garbage!"}, "BAD_REQUEST"),
        ({"delta": "UmV2aXNpb246MQ=="}, "BAD_REQUEST"),  # a Revision id
        ({"revision": "UmV2aXNpb246MQ==", "at": "2020-01-01T00:00:00Z"}, "BAD_REQUEST"),
    ],
)
def test_snapshot_errors(reader, book, variables, code):
    response = _snapshot(reader, book, **variables)
    assert response.codes == [code]


def test_snapshot_of_a_delta_of_another_row_is_not_found(reader, book):
    with Context():
        other = make_book()
    other_delta = object_deltas(other)[0]
    assert _snapshot(reader, book, delta=delta_id(other_delta)).codes == ["NOT_FOUND"]


def test_snapshot_of_a_row_without_history_is_not_found(reader):
    response = reader(SNAPSHOT, {"type": "testapp.book", "id": "4242"})
    assert response.codes == ["NOT_FOUND"]


def test_snapshot_needs_the_view_permission(gql, user, book):
    gql.login(user)
    assert _snapshot(gql, book).codes == ["FORBIDDEN"]


def test_masked_fields_are_not_in_snapshots(gql, user):
    from tests.testapp.models import Secret

    grant(user, "testapp.view_secret")
    gql.login(user)
    with Context():
        secret = Secret.objects.create(name="door", pin="1234", internal="x")
    state = gql(SNAPSHOT, {"type": "testapp.secret", "id": str(secret.pk)}).ok()["snapshot"]
    assert state["state"] == {"id": secret.pk, "name": "door"}


# Diffs --------------------------------------------------------------------------------------


def _diff(gql, book, **variables):
    return gql(DIFF, {"type": "testapp.book", "id": str(book.pk), **variables})


def test_diff_between_two_revisions(reader, book):
    create, _retitle, pages = revisions()
    data = _diff(reader, book, since=revision_id(create), until=revision_id(pages)).ok()
    assert data["objectDiff"] == {
        "type": "testapp.book",
        "id": str(book.pk),
        "since": revision_id(create),
        "until": revision_id(pages),
        "changes": [
            {"field": "title", "old": "Dune", "new": "Dune!"},
            {"field": "pages", "old": 100, "new": 412},
        ],
    }


def test_diff_between_deltas_and_times(reader, book):
    first, second, _third = object_deltas(book)
    data = _diff(reader, book, since=delta_id(first), until=delta_id(second)).ok()
    assert data["objectDiff"]["changes"] == [{"field": "title", "old": "Dune", "new": "Dune!"}]
    since = (first.created_at - datetime.timedelta(seconds=1)).isoformat()
    changes = _diff(reader, book, since=since).ok()["objectDiff"]["changes"]
    assert {"field": "pages", "old": None, "new": 412} in changes


def test_diff_of_a_point_with_itself_is_empty(reader, book):
    revision = revision_id(revisions()[1])
    assert _diff(reader, book, since=revision, until=revision).ok()["objectDiff"]["changes"] == []


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"since": "yesterday"}, "BAD_REQUEST"),
        ({"until": "Zm9vOmJhcg=="}, "BAD_REQUEST"),  # foo:bar
        ({"since": "UmV2aXNpb246OTk5OQ=="}, "NOT_FOUND"),
        ({"since": "T2JqZWN0RGVsdGE6OTk5OQ=="}, "NOT_FOUND"),
    ],
)
def test_diff_errors(reader, book, variables, code):
    assert _diff(reader, book, **variables).codes == [code]


def test_diff_needs_the_view_permission(gql, user, book):
    gql.login(user)
    assert _diff(gql, book).codes == ["FORBIDDEN"]
