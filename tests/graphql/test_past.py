"""`deletedObjects` and `objectsAsOf`: deleted rows and whole tables at a past moment."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry import relay

from revy import Context
from revy.contrib.django.history import as_of, deleted
from tests.conftest import count_queries
from tests.contrib.django.helpers import change, moment
from tests.factories import make_author
from tests.graphql.conftest import delta_id, grant, revision_id
from tests.testapp.models import Author, Book, Review

DELETED = """
query($type: String!, $first: Int, $after: String) {
  deletedObjects(type: $type, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        type id state deletedAt description
        actor { type id display }
        revision { id description actors { display } deltaCount }
        delta { id action }
      }
    }
  }
}
"""

AS_OF = """
query($type: String!, $at: DateTime!, $first: Int, $after: String) {
  objectsAsOf(type: $type, at: $at, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { type id state } }
  }
}
"""

HUGE = "99999999999999999999"
OVERFLOWING = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"]


@pytest.fixture
def shelf(user):
    """Books "A", "B", "C"; at `before` "B" had 20 pages and "D" did not exist; "C" is deleted
    since (by alice, "Weed out")."""
    author = make_author(name="Ann")
    with Context(actor=user):
        a = Book.objects.create(author=author, title="A", pages=10)
        b = Book.objects.create(author=author, title="B", pages=20)
        c = Book.objects.create(author=author, title="C", pages=30)
    before = moment()
    keys = {"a": a.pk, "b": b.pk, "c": c.pk}
    change(b, pages=5)
    with Context(actor=user, revision_description="Weed out"):
        c.delete()
        Book.objects.create(author=author, title="D", pages=40)
    return {"before": before, "keys": keys, "author": author}


def deleted_books(count: int, actors: list) -> list[int]:
    """Delete `count` books, each in a revision of its own, by the actors in turn."""
    author = make_author()
    keys = []
    for number in range(count):
        with Context(actor=actors[number % len(actors)]):
            book = Book.objects.create(author=author, title=f"b{number}", pages=number)
        keys.append(book.pk)
        with Context(actor=actors[number % len(actors)], revision_description=f"d{number}"):
            book.delete()
    return keys


# deletedObjects -----------------------------------------------------------------------------


def test_deleted_objects_lists_the_deleted_rows_with_their_last_state(gql, user, shelf):
    grant(user, "testapp.view_book")
    gql.login(user)

    data = gql(DELETED, {"type": "testapp.book"}).ok()["deletedObjects"]

    assert data["totalCount"] == 1
    node = data["edges"][0]["node"]
    deletion = deleted(Book).get()
    assert node["type"] == "testapp.book"
    assert node["id"] == str(shelf["keys"]["c"])
    assert node["state"]["title"] == "C"
    assert node["state"]["pages"] == 30
    assert node["description"] == deletion.description  # the delta's own reason
    assert node["actor"] == {"type": "auth.user", "id": str(user.pk), "display": "alice"}
    assert node["delta"] == {"id": delta_id(deletion), "action": "DELETE"}
    assert node["revision"]["id"] == revision_id(deletion.revision)
    assert node["revision"]["description"] == "Weed out"
    assert node["deletedAt"]


def test_deleted_objects_are_newest_first_and_paginated(gql, user):
    grant(user, "testapp.view_book")
    keys = deleted_books(5, [user])
    gql.login(user)

    first = gql(DELETED, {"type": "testapp.book", "first": 3}).ok()["deletedObjects"]
    after = first["pageInfo"]["endCursor"]
    second = gql(DELETED, {"type": "testapp.book", "first": 3, "after": after}).ok()

    assert [edge["node"]["id"] for edge in first["edges"]] == [str(k) for k in keys[:1:-1]]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = second["deletedObjects"]
    assert [edge["node"]["id"] for edge in rest["edges"]] == [str(k) for k in keys[1::-1]]
    assert rest["pageInfo"]["hasNextPage"] is False


def test_a_recreated_row_is_no_longer_deleted(gql, user):
    grant(user, "testapp.view_book")
    [key] = deleted_books(1, [user])
    with Context(actor=user):
        Book.objects.create(pk=key, author=make_author(), title="back")
    gql.login(user)

    data = gql(DELETED, {"type": "testapp.book"}).ok()["deletedObjects"]

    assert data["edges"] == []
    assert data["totalCount"] == 0


def test_a_deleted_objects_delta_restores_it(gql, user, shelf):
    grant(
        user, "testapp.view_book", "testapp.change_book", "testapp.add_book", "testapp.delete_book"
    )
    gql.login(user)
    node = gql(DELETED, {"type": "testapp.book"}).ok()["deletedObjects"]["edges"][0]["node"]

    restored = gql(
        """mutation($id: ID!, $delta: ID!) {
          rollbackObject(type: "testapp.book", id: $id, delta: $delta) { created }
        }""",
        {"id": node["id"], "delta": node["delta"]["id"]},
    ).ok()

    assert restored["rollbackObject"]["created"] is True
    assert Book.objects.get(pk=shelf["keys"]["c"]).title == "C"
    assert gql(DELETED, {"type": "testapp.book"}).ok()["deletedObjects"]["totalCount"] == 0


def test_deleted_objects_hides_what_the_policy_hides(gql, user, shelf):
    grant(user, "testapp.view_author")  # authors, not books
    gql.login(user)

    books = gql(DELETED, {"type": "testapp.book"}).ok()["deletedObjects"]

    assert books["edges"] == []
    assert books["totalCount"] == 0
    with Context(actor=user):
        Author.objects.create(name="Gone").delete()
    authors = gql(DELETED, {"type": "testapp.author"}).ok()["deletedObjects"]
    assert [edge["node"]["state"]["name"] for edge in authors["edges"]] == ["Gone"]


def test_deleted_objects_shows_cascades_with_the_system_as_actor(gql, user):
    grant(user, "testapp.view_book", "testapp.view_review")
    author = make_author()
    with Context(actor=user):
        book = Book.objects.create(author=author, title="T")
        Review.objects.create(book=book, text="good")
        book.delete()
    gql.login(user)

    reviews = gql(DELETED, {"type": "testapp.review"}).ok()["deletedObjects"]["edges"]

    assert [(edge["node"]["state"]["text"], edge["node"]["actor"]) for edge in reviews] == [
        ("good", None)
    ]
    deleting = deleted(Book).get().revision
    assert reviews[0]["node"]["revision"]["id"] == revision_id(deleting)


def test_deleted_objects_costs_the_same_for_2_and_20_rows(gql, user, other_user):
    grant(user, "testapp.view_book")
    actors = [user, other_user, None]
    deleted_books(2, actors)
    gql.login(user)
    gql(DELETED, {"type": "testapp.book"}).ok()  # warm the session and permission caches
    with count_queries() as small:
        small_data = gql(DELETED, {"type": "testapp.book"}).ok()
    deleted_books(18, actors)
    with count_queries() as large:
        large_data = gql(DELETED, {"type": "testapp.book"}).ok()

    assert len(small_data["deletedObjects"]["edges"]) == 2
    assert len(large_data["deletedObjects"]["edges"]) == 20
    print(f"deletedObjects ({gql.view}): {len(small)} queries for 2 rows, {len(large)} for 20")
    assert len(small) == len(large)


@pytest.mark.parametrize("label", ["testapp", "testapp.nosuchmodel", "%.%", "a\x00.b", "x" * 300])
def test_deleted_objects_of_a_bad_type_is_a_bad_request(gql, user, label):
    gql.login(user)

    response = gql(DELETED, {"type": label})

    assert response.codes == ["BAD_REQUEST"]
    assert response.errors[0]["extensions"]["argument"] == "type"
    assert response.data is None


@pytest.mark.parametrize(
    ("variables", "argument"),
    [({"first": -1}, "first"), ({"after": "not a cursor"}, "after")],
)
def test_deleted_objects_with_bad_paging_is_a_bad_request(gql, user, variables, argument):
    grant(user, "testapp.view_book")
    gql.login(user)

    response = gql(DELETED, {"type": "testapp.book", **variables})

    assert response.codes == ["BAD_REQUEST"]
    assert response.errors[0]["extensions"]["argument"] == argument


def test_deleted_objects_refuses_anonymous_users(gql, shelf):
    response = gql(DELETED, {"type": "testapp.book"})

    assert response.codes == ["FORBIDDEN"]
    assert response.data is None


# objectsAsOf --------------------------------------------------------------------------------


def test_objects_as_of_lists_the_rows_as_they_were(gql, user, shelf):
    grant(user, "testapp.view_book")
    gql.login(user)

    data = gql(AS_OF, {"type": "testapp.book", "at": shelf["before"].isoformat()}).ok()
    page = data["objectsAsOf"]

    assert page["totalCount"] == 3
    nodes = [edge["node"] for edge in page["edges"]]
    assert [(node["state"]["title"], node["state"]["pages"]) for node in nodes] == [
        ("A", 10),
        ("B", 20),
        ("C", 30),
    ]
    assert [node["id"] for node in nodes] == [str(shelf["keys"][k]) for k in "abc"]
    assert {node["type"] for node in nodes} == {"testapp.book"}
    assert nodes[0]["state"]["author_id"] == shelf["author"].pk
    assert page["pageInfo"]["hasNextPage"] is False


def test_objects_as_of_pages_by_primary_key(gql, user):
    grant(user, "testapp.view_book")
    author = make_author()
    with Context(actor=user):
        books = [Book.objects.create(author=author, title=f"b{n}") for n in range(5)]
    at = moment().isoformat()
    with Context(actor=user):
        Book.objects.create(author=author, title="later")
    gql.login(user)

    seen, after, pages = [], None, 0
    while True:
        page = gql(AS_OF, {"type": "testapp.book", "at": at, "first": 2, "after": after}).ok()
        connection = page["objectsAsOf"]
        seen += [edge["node"]["state"]["title"] for edge in connection["edges"]]
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        assert after == connection["edges"][-1]["cursor"]

    assert seen == [book.title for book in books]
    assert pages == 3


def test_objects_as_of_first_zero_gives_no_rows(gql, user, shelf):
    grant(user, "testapp.view_book")
    gql.login(user)

    data = gql(AS_OF, {"type": "testapp.book", "at": shelf["before"].isoformat(), "first": 0})

    page = data.ok()["objectsAsOf"]
    assert page["edges"] == []
    assert page["totalCount"] == 3


def test_objects_as_of_needs_the_policys_view_of_the_model(gql, other_user, shelf):
    grant(other_user, "testapp.add_book")
    gql.login(other_user)

    response = gql(AS_OF, {"type": "testapp.book", "at": shelf["before"].isoformat()})

    assert response.codes == ["FORBIDDEN"]
    assert response.data is None


def test_objects_as_of_refuses_anonymous_users(gql, shelf):
    response = gql(AS_OF, {"type": "testapp.book", "at": shelf["before"].isoformat()})

    assert response.codes == ["FORBIDDEN"]


@pytest.mark.parametrize("at", OVERFLOWING)
def test_objects_as_of_an_overflowing_moment_never_fails(gql, user, shelf, at):
    grant(user, "testapp.view_book")
    gql.login(user)

    page = gql(AS_OF, {"type": "testapp.book", "at": at}).ok()["objectsAsOf"]

    expected = 3 if at.startswith("9999") else 0  # after everything, or before anything
    assert page["totalCount"] == expected
    assert len(page["edges"]) == expected


def test_objects_as_of_an_unparsable_datetime_fails_validation(gql, user):
    gql.login(user)

    response = gql(AS_OF, {"type": "testapp.book", "at": "yesterday"})

    assert response.codes == ["GRAPHQL_VALIDATION_FAILED"]


BAD_CURSORS = [
    "not a cursor",
    relay.to_base64("Revision", "1"),
    relay.to_base64("PastObject", HUGE),
    relay.to_base64("PastObject", "abc"),
    relay.to_base64("PastObject", "1\x00"),
    relay.to_base64("PastObject", "-" + HUGE),
]


@pytest.mark.parametrize("after", BAD_CURSORS)
def test_objects_as_of_with_a_bad_cursor_is_a_bad_request(gql, user, shelf, after):
    grant(user, "testapp.view_book")
    gql.login(user)

    response = gql(
        AS_OF, {"type": "testapp.book", "at": shelf["before"].isoformat(), "after": after}
    )

    assert response.codes == ["BAD_REQUEST"]
    assert response.errors[0]["extensions"]["argument"] == "after"


@pytest.mark.parametrize(
    ("variables", "argument"),
    [({"type": "nope.nope"}, "type"), ({"type": "testapp"}, "type"), ({"first": -1}, "first")],
)
def test_objects_as_of_bad_arguments_are_bad_requests(gql, user, shelf, variables, argument):
    grant(user, "testapp.view_book")
    gql.login(user)

    response = gql(AS_OF, {"type": "testapp.book", "at": shelf["before"].isoformat(), **variables})

    assert response.codes == ["BAD_REQUEST"]
    assert response.errors[0]["extensions"]["argument"] == argument


def test_objects_as_of_costs_the_same_for_2_and_20_rows_and_any_history(gql, user):
    grant(user, "testapp.view_book")
    author = make_author()
    with Context(actor=user):
        books = [Book.objects.create(author=author, title=f"b{n}") for n in range(2)]
    gql.login(user)
    at = moment().isoformat()
    gql(AS_OF, {"type": "testapp.book", "at": at}).ok()  # warm the session and permissions
    with count_queries() as small:
        small_data = gql(AS_OF, {"type": "testapp.book", "at": at}).ok()
    with Context(actor=user):
        books += [Book.objects.create(author=author, title=f"b{n}") for n in range(2, 20)]
    for book in books:
        change(book, pages=7)
        change(book, pages=8)
    at = moment().isoformat()
    with count_queries() as large:
        large_data = gql(AS_OF, {"type": "testapp.book", "at": at}).ok()

    assert len(small_data["objectsAsOf"]["edges"]) == 2
    assert len(large_data["objectsAsOf"]["edges"]) == 20
    assert {edge["node"]["state"]["pages"] for edge in large_data["objectsAsOf"]["edges"]} == {8}
    print(f"objectsAsOf ({gql.view}): {len(small)} queries for 2 rows, {len(large)} for 20")
    assert len(small) == len(large)


@given(size=st.integers(min_value=1, max_value=9))
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_pages_of_either_list_are_the_whole_list_once_whatever_their_size(gql, user, size):
    grant(user, "testapp.view_book")
    if not Book.objects.exists():  # the same rows for every example
        author = make_author()
        with Context(actor=user):
            for number in range(7):
                book = Book.objects.create(author=author, title=f"b{number}")
                change(book, pages=number)
        deleted_books(5, [user, None])
    gql.login(user)
    at = moment()

    def walk(query: str, field: str, **variables) -> list[str]:
        seen, after = [], None
        while True:
            page = gql(query, {**variables, "first": size, "after": after}).ok()[field]
            seen += [edge["node"]["id"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return seen
            after = page["pageInfo"]["endCursor"]

    past = walk(AS_OF, "objectsAsOf", type="testapp.book", at=at.isoformat())
    assert past == [str(book.pk) for book in as_of(Book, at).order_by("pk")]
    gone = walk(DELETED, "deletedObjects", type="testapp.book")
    assert gone == [deletion.content_id for deletion in deleted(Book)]
    assert len(past) == 7 and len(gone) == 5
