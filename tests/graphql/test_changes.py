"""`changes(after, first)`: the feed of every visible delta in commit order."""

from __future__ import annotations

import pytest

from revy import Context
from tests.conftest import feed_caught_up
from tests.factories import make_author, make_book
from tests.graphql.conftest import GraphQLClient, grant
from tests.history_models import ObjectDelta

FEED = """
query($after: String, $first: Int) {
  changes(after: $after, first: $first) {
    cursor hasMore
    deltas { action content { type id } actor { id } changes { field new } revision { id } }
  }
}
"""


@pytest.fixture(params=["sync", "async"])
def gql(request, transactional_db) -> GraphQLClient:
    # Committed for real: on PostgreSQL the feed shows only what no running transaction (such
    # as a test's own) can still precede.
    return GraphQLClient(request.param)


def test_pages_of_the_feed_follow_each_other(gql, user, admin_user):
    with Context(actor=user):
        author = make_author()
        make_book(author=author)
        make_book(author=author)
    feed_caught_up()
    gql.login(admin_user)
    first = gql(FEED, {"first": 2}).ok()["changes"]
    rest = gql(FEED, {"after": first["cursor"], "first": 2}).ok()["changes"]
    assert (first["hasMore"], rest["hasMore"]) == (True, False)
    deltas = first["deltas"] + rest["deltas"]
    assert [d["content"]["type"] for d in deltas] == ["testapp.author", *["testapp.book"] * 2]
    assert deltas[0]["actor"]["id"] == str(user.pk)
    assert len(deltas) == ObjectDelta.objects.count()
    idle = gql(FEED, {"after": rest["cursor"]}).ok()["changes"]
    assert idle == {"cursor": rest["cursor"], "hasMore": False, "deltas": []}


def test_the_feed_shows_only_models_the_user_may_view(gql, user):
    with Context():
        make_book()
    grant(user, "testapp.view_author")
    feed_caught_up()
    gql.login(user)
    deltas = gql(FEED).ok()["changes"]["deltas"]
    assert [d["content"]["type"] for d in deltas] == ["testapp.author"]


def test_a_forged_cursor_is_a_bad_request(gql, admin_user):
    gql.login(admin_user)
    response = gql(FEED, {"after": "WzAsNV0:1tIiY0:forged"})
    assert response.codes == ["BAD_REQUEST"]


def test_first_zero_is_a_bad_request(gql, admin_user):
    gql.login(admin_user)
    assert gql(FEED, {"first": 0}).codes == ["BAD_REQUEST"]


def test_anonymous_users_are_refused(gql):
    assert gql(FEED).codes == ["FORBIDDEN"]
