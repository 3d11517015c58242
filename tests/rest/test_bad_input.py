"""Bad input to the REST API is a documented 4xx problem, never a server error.

Each case reached a 500 (or a database error) before `revy_api.inputs` checked it: `%` in a
filter's error message, datetimes that overflow once converted to UTC, hand-made cursors,
integers beyond 64 bits, NUL characters (PostgreSQL refuses them), search texts longer than
SQLite's LIKE patterns allow and bodies nested beyond Python's recursion limit. They run on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revy import Context
from revy_api import inputs
from tests.factories import make_book, revisions
from tests.rest.conftest import PROBLEM_MEDIA_TYPE, assert_problem

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"  # beyond 64 bits
OVERFLOWING = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"]
DEEP = "[" * 100_000 + "]" * 100_000
DEEPISH = "[" * (inputs.MAX_JSON_DEPTH + 1) + "]" * (inputs.MAX_JSON_DEPTH + 1)


def _cursor(query: str) -> str:
    return quote(base64.b64encode(query.encode()).decode())


@pytest.fixture
def book(superuser):
    with Context(actor=superuser):
        return make_book(title="Dune")


BAD_GETS = [
    # `%` in a filter value reached the message's %-formatting: 500.
    ("/api/deltas/?actor=%25", 400, "validation-error"),
    ("/api/deltas/?actor=%25.%25:1", 400, "validation-error"),
    ("/api/deltas/?content_type=%25", 400, "validation-error"),
    ("/api/revisions/?content_type=a%25.b", 400, "validation-error"),
    # Cursors made by hand: positions that are not ids, or beyond 64 bits.
    (f"/api/deltas/?cursor={_cursor('p=abc')}", 404, "not-found"),
    (f"/api/revisions/?cursor={_cursor('r=1&p=1.5')}", 404, "not-found"),
    (f"/api/books/{{book}}/history/?cursor={_cursor('p=' + HUGE)}", 404, "not-found"),
    # Page sizes that are not positive integers.
    ("/api/deltas/?page_size=abc", 400, "validation-error"),
    ("/api/revisions/?page_size=0", 400, "validation-error"),
    ("/api/books/{book}/history/?page_size=-1", 400, "validation-error"),
    # Integers no row can have.
    (f"/api/books/{HUGE}/history/", 404, "not-found"),
    (f"/api/revisions/{HUGE}/", 404, "not-found"),
    (f"/api/deltas/{HUGE}/", 404, "not-found"),
    (f"/api/books/{{book}}/snapshot/?revision={HUGE}", 404, "not-found"),
    (f"/api/books/{{book}}/snapshot/?delta={HUGE}", 404, "not-found"),
    (f"/api/books/{{book}}/diff/?since={HUGE}", 404, "not-found"),
    ("/api/books/{book}/snapshot/?revision=%C2%B2", 400, "bad-request"),  # "²" is a digit
    # NUL characters (PostgreSQL refuses them in text).
    ("/api/books/%00/history/", 404, "not-found"),
    ("/api/deltas/?search=%00", 400, "validation-error"),
    ("/api/deltas/?object_id=a%00", 400, "validation-error"),
    ("/api/deltas/?event_type=%00", 400, "validation-error"),
    ("/api/deltas/?actor=auth.user:%00", 400, "validation-error"),
    ("/api/deltas/?content_type=auth.%00", 400, "validation-error"),
    ("/api/books/{book}/snapshot/?at=%00", 400, "bad-request"),
    # Texts longer than any stored value (SQLite: "LIKE or GLOB pattern too complex").
    ("/api/deltas/?search=" + "x" * 60_000, 400, "validation-error"),
    ("/api/revisions/?search=" + "x" * (inputs.MAX_SEARCH + 1), 400, "validation-error"),
    ("/api/deltas/?object_id=" + "1" * 256, 400, "validation-error"),
]


@pytest.mark.parametrize(("url", "status", "problem"), BAD_GETS)
def test_bad_query_input_is_a_problem(admin_api, book, url, status, problem):
    response = admin_api.get(url.format(book=book.pk))
    assert_problem(response, status, problem)


BAD_POSTS = [
    ("/api/books/{book}/rollback/", DEEP, 400, "malformed-request"),
    ("/api/books/{book}/rollback/", DEEPISH, 400, "malformed-request"),
    ("/api/revisions/{revision}/revert/", DEEP, 400, "malformed-request"),
    ("/api/books/{book}/rollback/", f'{{"revision": {HUGE}}}', 400, "validation-error"),
    ("/api/books/{book}/rollback/", f'{{"delta": {HUGE}}}', 400, "validation-error"),
    ("/api/books/{book}/rollback/", "[]", 400, "validation-error"),
    ("/api/books/{book}/rollback/", '"revision"', 400, "validation-error"),
    (f"/api/revisions/{HUGE}/revert/", "{}", 404, "not-found"),
]


@pytest.mark.parametrize(("url", "body", "status", "problem"), BAD_POSTS)
def test_bad_bodies_are_problems(admin_api, book, url, body, status, problem):
    revision = revisions()[0]
    response = admin_api.post(
        url.format(book=book.pk, revision=revision.pk), data=body, content_type="application/json"
    )
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_MEDIA_TYPE
    if problem is not None:
        assert_problem(response, status, problem)


def test_deeply_nested_bodies_of_the_viewsets_own_writes_are_refused(admin_api, book):
    response = admin_api.put(f"/api/books/{book.pk}/", data=DEEP, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The body nests arrays and objects too deeply."


# Datetimes beyond what UTC holds (they overflowed into a server error) ---------------------


LATEST, EARLIEST = OVERFLOWING  # after 9999-12-31T23:59:59Z, before 0001-01-01T00:00:00Z


@pytest.mark.parametrize("endpoint", ["deltas", "revisions"])
def test_datetimes_beyond_utc_bound_filters_as_the_exact_values_would(admin_api, book, endpoint):
    def count(**params):
        response = admin_api.get(f"/api/{endpoint}/", params)
        assert response.status_code == 200, response.content
        return len(response.json()["results"])

    everything = count()
    assert everything > 0
    assert count(since=LATEST) == count(until=EARLIEST) == 0
    assert count(since=EARLIEST) == count(until=LATEST) == everything


@pytest.mark.parametrize("offset", ["+19:15", "-17:41", "+23:59"])
def test_offsets_postgresql_cannot_store_are_answered(admin_api, book, offset):
    # Valid ISO 8601 offsets, beyond PostgreSQL's +-15:59: a server error there before.
    moment = f"2020-01-01T00:00:00{offset}"
    assert admin_api.get("/api/deltas/", {"until": moment}).status_code == 200
    assert admin_api.get(f"/api/books/{book.pk}/diff/", {"until": moment}).status_code == 200


def test_datetimes_beyond_utc_are_points_before_or_after_all_history(admin_api, book):
    latest = admin_api.get(f"/api/books/{book.pk}/snapshot/", {"at": LATEST})
    assert latest.status_code == 200
    assert latest.json()["title"] == "Dune"
    assert_problem(
        admin_api.get(f"/api/books/{book.pk}/snapshot/", {"at": EARLIEST}), 404, "not-found"
    )
    assert admin_api.get(f"/api/books/{book.pk}/diff/", {"since": LATEST}).json()["changes"] == {}
    everything = admin_api.get(f"/api/books/{book.pk}/diff/", {"since": EARLIEST})
    assert everything.json()["changes"]["title"] == {"old": None, "new": "Dune"}
    rollback = admin_api.post(f"/api/books/{book.pk}/rollback/", {"at": LATEST}, format="json")
    assert rollback.status_code == 200
    assert rollback.json()["changes"] == {}


# Every value of every filter: a 200 or a 400, never anything else -----------------------------

FILTERS = ["actor", "content_type", "object_id", "event_type", "since", "until", "search"]
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.punctuation + "\x00é.:", max_size=12),
    st.sampled_from(["auth.user:1", "system", "testapp.book", *OVERFLOWING, HUGE, "%", "%s"]),
)


@given(
    name=st.sampled_from(FILTERS), value=HOSTILE, endpoint=st.sampled_from(["deltas", "revisions"])
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_filter_value_is_answered_or_refused(admin_api, book, name, value, endpoint):
    response = admin_api.get(f"/api/{endpoint}/", {name: value})
    assert response.status_code in (200, 400), (name, value, response.content)
    if response.status_code == 400:
        assert_problem(response, 400, "validation-error")
