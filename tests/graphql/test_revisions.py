"""`revisions`, `revision(id)` and `node(id)`: what a user may see, filtered and paginated."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from revy import Context
from revy.contrib.django.utils import get_revision_model
from tests.factories import make_book, make_note, object_deltas, revisions
from tests.graphql.conftest import delta_id, grant, revision_id
from tests.testapp.models import Organization

LIST = """
query($filters: HistoryFilter, $first: Int, $after: String) {
  revisions(filters: $filters, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id description deltaCount actors { type id display } } }
  }
}
"""
DETAIL = """
query($id: ID!) {
  revision(id: $id) {
    id description createdAt metadata deltaCount
    actors { type id display }
    deltas { totalCount edges { node { id action content { type id } } } }
  }
}
"""


def _descriptions(response) -> list[str]:
    return [edge["node"]["description"] for edge in response.ok()["revisions"]["edges"]]


@pytest.fixture
def history(user, other_user):
    """Three revisions: a book by alice, a note by bob, a book update by the system."""
    with Context(actor=user, revision_description="book"):
        book = make_book(title="Dune")
    with Context(actor=other_user, revision_description="note"):
        make_note(text="Remember")
    with Context(revision_description="system fix"):
        book.pages = 412
        book.save()
    return book


def test_revisions_lists_what_the_user_may_see_newest_first(gql, user, history):
    grant(user, "testapp.view_book", "testapp.view_author")
    gql.login(user)
    response = gql(LIST)
    assert _descriptions(response) == ["system fix", "book"]
    first = response.data["revisions"]["edges"][1]["node"]
    assert first["deltaCount"] == 2  # the book and its author; not the note
    # The system assigned the primary keys, which makes it no actor.
    assert first["actors"] == [{"type": "auth.user", "id": str(user.pk), "display": "alice"}]
    assert response.data["revisions"]["totalCount"] == 2


def test_total_count_stops_counting_at_its_cap(gql, history, monkeypatch):
    """An exact count of a filtered history reads all of it: totalCount counts up to a cap,
    in one query whatever the size of history."""
    from django.contrib.auth import get_user_model

    from revy_api.graphql import connections
    from tests.conftest import count_queries

    monkeypatch.setattr(connections, "TOTAL_COUNT_CAP", 2)
    admin = get_user_model().objects.create_superuser("root", password="x")
    gql.login(admin)
    with count_queries() as queries:
        data = gql("{ revisions(first: 1) { totalCount } }").ok()
    assert data["revisions"]["totalCount"] == 2  # of 3
    counts = [sql for sql in queries.statements if "COUNT(" in sql.upper()]
    assert len(counts) == 1 and "LIMIT 2" in counts[0]
    monkeypatch.setattr(connections, "TOTAL_COUNT_CAP", 10)
    assert gql("{ revisions(first: 1) { totalCount } }").ok()["revisions"]["totalCount"] == 3


def test_a_revision_shows_only_its_visible_deltas(gql, user, history):
    grant(user, "testapp.view_book")
    gql.login(user)
    book_revision = revisions()[0]
    data = gql(DETAIL, {"id": revision_id(book_revision)}).ok()["revision"]
    assert data["deltaCount"] == 1
    assert [edge["node"]["content"]["type"] for edge in data["deltas"]["edges"]] == ["testapp.book"]
    assert data["deltas"]["totalCount"] == 1


def test_a_superuser_sees_everything(gql, history):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", password="x")
    gql.login(admin)
    assert _descriptions(gql(LIST)) == ["system fix", "note", "book"]


def test_anonymous_users_see_no_history(gql, history):
    response = gql(LIST)
    assert response.codes == ["FORBIDDEN"]
    assert response.data is None


def test_a_user_without_permissions_sees_no_revision(gql, user, history):
    gql.login(user)
    assert _descriptions(gql(LIST)) == []


def test_revisions_are_paginated_with_cursors(gql, user, history):
    grant(user, "testapp.view_book", "testapp.view_note")
    gql.login(user)
    page = gql(LIST, {"first": 2}).ok()["revisions"]
    assert [edge["node"]["description"] for edge in page["edges"]] == ["system fix", "note"]
    assert page["pageInfo"]["hasNextPage"] is True
    # A revision written meanwhile does not shift the next page.
    with Context(revision_description="newer"):
        make_note()
    after = page["pageInfo"]["endCursor"]
    rest = gql(LIST, {"first": 2, "after": after}).ok()["revisions"]
    assert [edge["node"]["description"] for edge in rest["edges"]] == ["book"]
    assert rest["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("first", [0, 1, 500, 501, 10_000])
def test_first_is_capped_at_500(gql, user, history, first):
    grant(user, "testapp.view_book")
    gql.login(user)
    edges = gql(LIST, {"first": first}).ok()["revisions"]["edges"]
    assert len(edges) == min(first, 2)


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"first": -1}, "first"),
        ({"after": "not a cursor"}, "after"),
        ({"after": "b3Q6MQ=="}, "after"),
    ],
)
def test_bad_pagination_arguments_are_bad_requests(gql, user, history, variables, argument):
    grant(user, "testapp.view_book")
    gql.login(user)
    response = gql(LIST, variables)
    assert response.codes == ["BAD_REQUEST"]
    assert response.errors[0]["extensions"]["argument"] == argument


def test_the_default_page_holds_50_revisions(gql, user):
    grant(user, "testapp.view_note")
    for number in range(55):
        with Context(revision_description=f"r{number}"):
            make_note()
    gql.login(user)
    page = gql(LIST).ok()["revisions"]
    assert len(page["edges"]) == 50
    assert page["pageInfo"]["hasNextPage"] is True


# Filters ------------------------------------------------------------------------------------


@pytest.fixture
def superuser_gql(gql, db):
    from django.contrib.auth import get_user_model

    gql.login(get_user_model().objects.create_superuser("root", password="x"))
    return gql


def test_filter_by_actor(superuser_gql, user, other_user, history):
    actor = {"actor": f"auth.user:{other_user.pk}"}
    assert _descriptions(superuser_gql(LIST, {"filters": actor})) == ["note"]


def test_filter_by_an_organization_actor(superuser_gql, history):
    organization = Organization.objects.create(slug="acme", name="Acme")
    with Context(actor=organization, revision_description="by acme"):
        make_note()
    actor = {"actor": f"testapp.organization:{organization.pk}"}
    assert _descriptions(superuser_gql(LIST, {"filters": actor})) == ["by acme"]


def test_filter_by_content_type_and_object(superuser_gql, history):
    assert _descriptions(superuser_gql(LIST, {"filters": {"contentType": "testapp.note"}})) == [
        "note"
    ]
    filters = {"contentType": "testapp.book", "objectId": str(history.pk)}
    assert _descriptions(superuser_gql(LIST, {"filters": filters})) == ["system fix", "book"]


def test_filter_by_action_and_event_type(superuser_gql, history):
    assert _descriptions(superuser_gql(LIST, {"filters": {"action": "UPDATE"}})) == ["system fix"]
    filters = {"eventType": "testapp.note.created"}
    assert _descriptions(superuser_gql(LIST, {"filters": filters})) == ["note"]


def test_filter_by_time(superuser_gql, history):
    later = timezone.now() + datetime.timedelta(hours=1)
    get_revision_model().objects.filter(description="system fix").update(created_at=later)
    deltas = [delta for delta in object_deltas() if delta.revision.description == "system fix"]
    type(deltas[0]).objects.filter(pk__in=[d.pk for d in deltas]).update(created_at=later)
    since = (later - datetime.timedelta(minutes=1)).isoformat()
    assert _descriptions(superuser_gql(LIST, {"filters": {"since": since}})) == ["system fix"]
    assert _descriptions(superuser_gql(LIST, {"filters": {"until": since}})) == ["note", "book"]


def test_filter_by_search(superuser_gql, history):
    assert _descriptions(superuser_gql(LIST, {"filters": {"search": "FIX"}})) == ["system fix"]
    assert _descriptions(superuser_gql(LIST, {"filters": {"search": "note.created"}})) == ["note"]


def test_filters_match_only_visible_deltas(gql, user, history):
    grant(user, "testapp.view_book")
    gql.login(user)
    assert _descriptions(gql(LIST, {"filters": {"contentType": "testapp.note"}})) == []


@pytest.mark.parametrize(
    ("filters", "argument"),
    [
        ({"actor": "auth.user"}, "actor"),
        ({"actor": "nothing.here:1"}, "actor"),
        ({"contentType": "testapp"}, "contentType"),
        ({"contentType": "no.model"}, "contentType"),
    ],
)
def test_bad_filters_are_bad_requests(superuser_gql, history, filters, argument):
    response = superuser_gql(LIST, {"filters": filters})
    assert response.codes == ["BAD_REQUEST"]
    assert response.errors[0]["extensions"]["argument"] == argument


# revision(id) and node(id) -------------------------------------------------------------------


def test_revision_by_relay_id(gql, user, history):
    grant(user, "testapp.view_book", "testapp.view_author")
    gql.login(user)
    revision = revisions()[0]
    data = gql(DETAIL, {"id": revision_id(revision)}).ok()["revision"]
    assert data["id"] == revision_id(revision)
    assert data["description"] == "book"
    assert data["metadata"] == {}
    assert data["deltaCount"] == 2
    assert [edge["node"]["action"] for edge in data["deltas"]["edges"]] == ["CREATE", "CREATE"]


def test_a_hidden_revision_is_not_found(gql, user, history):
    grant(user, "testapp.view_book")
    gql.login(user)
    note_revision = revisions()[1]
    response = gql(DETAIL, {"id": revision_id(note_revision)})
    assert response.codes == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("UmV2aXNpb246OTk5OQ==", "NOT_FOUND"),  # Revision:9999
        ("UmV2aXNpb246eA==", "NOT_FOUND"),  # Revision:x
        ("!!!", "BAD_REQUEST"),
        ("", "BAD_REQUEST"),
        ("Zm9v", "BAD_REQUEST"),  # "foo": no type name
    ],
)
def test_an_unknown_revision_id_is_an_error_with_a_code(gql, user, history, value, code):
    grant(user, "testapp.view_book")
    gql.login(user)
    response = gql(DETAIL, {"id": value})
    assert response.data is None
    assert response.codes == [code]


def test_a_delta_id_is_not_a_revision_id(gql, user, history):
    grant(user, "testapp.view_book")
    gql.login(user)
    response = gql(DETAIL, {"id": delta_id(object_deltas()[0])})
    assert response.codes == ["BAD_REQUEST"]


NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename
    ... on Revision { description }
    ... on ObjectDelta { action eventType }
  }
}
"""


def test_node_resolves_visible_revisions_and_deltas(gql, user, history):
    grant(user, "testapp.view_book")
    gql.login(user)
    revision = revisions()[0]
    assert gql(NODE, {"id": revision_id(revision)}).ok()["node"] == {
        "__typename": "Revision",
        "description": "book",
    }
    book_delta = object_deltas(history)[0]
    assert gql(NODE, {"id": delta_id(book_delta)}).ok()["node"] == {
        "__typename": "ObjectDelta",
        "action": "CREATE",
        "eventType": "testapp.book.created",
    }


def test_node_hides_what_the_user_may_not_see(gql, user, history):
    grant(user, "testapp.view_book")
    gql.login(user)
    note_delta = next(
        delta for delta in object_deltas() if delta.event_type.startswith("testapp.note")
    )
    response = gql(NODE, {"id": delta_id(note_delta)})
    assert response.data == {"node": None}  # nullable, as Relay's node field is
    assert response.codes == ["NOT_FOUND"]


def test_a_revisions_deltas_page_knows_whether_more_follow(gql, user, history):
    grant(user, "testapp.view_book", "testapp.view_author")
    gql.login(user)
    query = """
    query($first: Int) { revisions { edges { node { description deltas(first: $first) {
      totalCount pageInfo { hasNextPage } edges { node { action } }
    } } } } }
    """
    for first, edges, more in ((0, 0, True), (1, 1, True), (2, 2, False)):
        rows = gql(query, {"first": first}).ok()["revisions"]["edges"]
        book = next(row["node"]["deltas"] for row in rows if row["node"]["description"] == "book")
        assert book["totalCount"] == 2
        assert len(book["edges"]) == edges
        assert book["pageInfo"]["hasNextPage"] is more


def test_filter_by_an_actor_who_took_part_through_a_field(superuser_gql, user, other_user):
    with Context(actor=user):
        book = make_book(title="Dune")
    with Context(actor=user, revision_description="together"):
        book = type(book).objects.get(pk=book.pk)  # watched: loaded inside the context
        book.title = "Dune!"
        with Context.via_actor(other_user):
            book.pages = 12
        book.save()
    update = object_deltas(book)[-1]
    assert update.actor_id == str(user.pk)  # bob only set a field
    actor = {"actor": f"auth.user:{other_user.pk}"}
    assert _descriptions(superuser_gql(LIST, {"filters": actor})) == ["together"]


def test_filter_by_the_system(superuser_gql, history):
    # Primary keys are the system's values, but assigning them is nobody's action: the
    # creations by alice and bob are not the system's (as in their `actors`).
    assert _descriptions(superuser_gql(LIST, {"filters": {"actor": "system"}})) == ["system fix"]
    filters = {"actor": "system", "action": "UPDATE"}
    assert _descriptions(superuser_gql(LIST, {"filters": filters})) == ["system fix"]
