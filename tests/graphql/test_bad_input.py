"""Bad arguments to revy's GraphQL fields are `BAD_REQUEST` (or `NOT_FOUND`) errors.

The same values as REST's (`tests/rest/test_bad_input.py`) went through the same checks
(`revy_api.inputs`): before, they ended as errors without a code, carrying the database's
own message ("date value out of range", "PostgreSQL text fields cannot contain NUL (0x00)
bytes", "Python int too large to convert to SQLite INTEGER", "LIKE or GLOB pattern too
complex").
"""

from __future__ import annotations

import pytest
from strawberry import relay

from revy import Context
from revy_api import inputs
from tests.factories import make_book

HUGE = "99999999999999999999"
OVERFLOWING = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"]
HUGE_REVISION = relay.to_base64("Revision", HUGE)

REVISIONS = "query($filters: HistoryFilter) { revisions(filters: $filters) { totalCount } }"
SNAPSHOT = """query($id: ID!, $revision: ID, $at: DateTime) {
  snapshot(type: "testapp.book", id: $id, revision: $revision, at: $at) { etag }
}"""
DIFF = """query($id: ID!, $since: String, $until: String) {
  objectDiff(type: "testapp.book", id: $id, since: $since, until: $until) { changes { field } }
}"""
HISTORY = """query($type: String!, $id: ID!) {
  objectHistory(type: $type, id: $id) { totalCount }
}"""


@pytest.fixture
def admin_gql(gql, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="x")
    gql.login(admin)
    with Context(actor=admin):
        gql.book = make_book(title="Dune")
    return gql


BAD_FILTERS = [
    ({"contentType": "%"}, "contentType"),
    ({"actor": "%.%:1"}, "actor"),
    ({"search": "\x00"}, "search"),
    ({"search": "x" * 60_000}, "search"),
    ({"search": "x" * (inputs.MAX_SEARCH + 1)}, "search"),
    ({"eventType": "a\x00"}, "eventType"),
    ({"objectId": "\x00"}, "objectId"),
    ({"objectId": "1" * 256}, "objectId"),
    ({"actor": "auth.user:\x00"}, "actor"),
    ({"contentType": "testapp.\x00book"}, "contentType"),
]


@pytest.mark.parametrize(("filters", "argument"), BAD_FILTERS)
def test_bad_filters_are_bad_requests(admin_gql, filters, argument):
    response = admin_gql(REVISIONS, {"filters": filters})
    assert response.codes == ["BAD_REQUEST"], response.body
    assert response.errors[0]["extensions"]["argument"] == argument


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        (SNAPSHOT, {"revision": HUGE_REVISION}, "NOT_FOUND"),
        (DIFF, {"until": "\x00"}, "BAD_REQUEST"),
        (DIFF, {"since": HUGE_REVISION}, "NOT_FOUND"),
        (HISTORY, {"type": "testapp.book", "id": HUGE}, "BAD_REQUEST"),
        (HISTORY, {"type": "testapp.book", "id": "\x00"}, "BAD_REQUEST"),
        (HISTORY, {"type": "testapp.b\x00ook", "id": "1"}, "BAD_REQUEST"),
        (HISTORY, {"type": "%.%", "id": "1"}, "BAD_REQUEST"),
    ],
)
def test_bad_arguments_are_coded_errors(admin_gql, query, variables, code):
    response = admin_gql(query, {"id": str(admin_gql.book.pk), **variables})
    assert response.status == 200
    assert response.codes == [code], response.body


@pytest.mark.parametrize("field", ["revision", "node"])
def test_ids_beyond_64_bits_are_not_found(admin_gql, field):
    response = admin_gql(f'{{ {field}(id: "{HUGE_REVISION}") {{ id }} }}')
    assert response.codes == ["NOT_FOUND"], response.body


@pytest.mark.parametrize(
    ("filters", "total"),
    [
        ({"since": OVERFLOWING[0]}, 0),
        ({"until": OVERFLOWING[1]}, 0),
        ({"since": OVERFLOWING[1]}, 1),
        ({"until": OVERFLOWING[0]}, 1),
    ],
)
def test_datetimes_beyond_utc_bound_filters_as_the_exact_values_would(admin_gql, filters, total):
    response = admin_gql(REVISIONS, {"filters": filters})
    assert response.ok()["revisions"]["totalCount"] == total


def test_datetimes_beyond_utc_are_points_before_or_after_all_history(admin_gql):
    book = str(admin_gql.book.pk)
    assert admin_gql(SNAPSHOT, {"id": book, "at": OVERFLOWING[0]}).ok()["snapshot"]["etag"]
    assert admin_gql(SNAPSHOT, {"id": book, "at": OVERFLOWING[1]}).ok()["snapshot"] is None
    assert admin_gql(DIFF, {"id": book, "since": OVERFLOWING[0]}).ok()["objectDiff"] == {
        "changes": []
    }
