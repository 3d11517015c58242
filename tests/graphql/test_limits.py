"""`QueryLimits`: documents too large, with too many aliases or too deep are refused unrun.

Before, 500 aliases of `objectHistory` took 24 s. Now a document over a limit is refused
while it is parsed or validated: no resolver runs, so no SQL is sent.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from graphql import get_introspection_query

from revy import Context
from revy_api.graphql.errors import with_code
from revy_api.graphql.limits import DEFAULT_LIMITS, limit
from tests.api.graphql_schema import schema
from tests.conftest import count_queries
from tests.factories import make_book

pytestmark = pytest.mark.django_db


def _aliases(count: int, book_pk: int) -> str:
    fields = "\n".join(
        f'h{n}: objectHistory(type: "testapp.book", id: "{book_pk}") {{ totalCount }}'
        for n in range(count)
    )
    return "{\n" + fields + "\n}"


def _nested(cycles: int) -> str:
    """A valid document 3 + 4 * cycles fields deep (revision > deltas > edges > node > ...)."""
    inner = "id"
    for _ in range(cycles):
        inner = f"deltas {{ edges {{ node {{ revision {{ {inner} }} }} }} }}"
    return f"{{ revisions {{ edges {{ node {{ {inner} }} }} }} }}"


@pytest.fixture
def context(superuser_request):
    return {"request": superuser_request}


@pytest.fixture
def superuser_request(rf, django_user_model):
    request = rf.post("/graphql/")
    request.user = django_user_model.objects.create_superuser("root", password="x")
    with Context(actor=request.user):
        request.book = make_book(title="Dune")
    return request


def _codes(result) -> list[str]:
    # As the view codes them (the token limit is a parse error of graphql-core's).
    return [with_code(error).extensions["code"] for error in result.errors or []]


def test_a_thousand_aliases_are_refused_before_any_sql(context, superuser_request):
    document = _aliases(1_000, superuser_request.book.pk)
    with count_queries() as queries:
        result = schema.execute_sync(document, context_value=context)
    assert result.data is None
    assert _codes(result) == ["QUERY_TOO_COMPLEX"]
    assert queries.statements == []


def test_aliases_over_the_limit_are_refused_before_any_sql(context, superuser_request):
    document = _aliases(DEFAULT_LIMITS["GRAPHQL_MAX_ALIASES"] + 1, superuser_request.book.pk)
    with count_queries() as queries:
        result = schema.execute_sync(document, context_value=context)
    assert _codes(result) == ["QUERY_TOO_COMPLEX"]
    assert "aliases" in result.errors[0].message
    assert queries.statements == []


def test_aliases_up_to_the_limit_run(context, superuser_request):
    document = _aliases(DEFAULT_LIMITS["GRAPHQL_MAX_ALIASES"], superuser_request.book.pk)
    result = schema.execute_sync(document, context_value=context)
    assert result.errors is None
    assert result.data["h0"] == {"totalCount": 1}


def test_documents_nested_too_deeply_are_refused_before_any_sql(context):
    with count_queries() as queries:
        result = schema.execute_sync(_nested(4), context_value=context)  # 19 deep
    assert _codes(result) == ["QUERY_TOO_COMPLEX"]
    assert "depth" in result.errors[0].message
    assert queries.statements == []


def test_too_many_tokens_are_refused_while_parsing(context):
    document = "{ revisions { totalCount } " + "__typename " * 2_000 + "}"
    with count_queries() as queries:
        result = schema.execute_sync(document, context_value=context)
    assert "Document contains more than 2000 tokens" in result.errors[0].message
    assert _codes(result) == ["QUERY_TOO_COMPLEX"]
    assert queries.statements == []


def test_documents_nested_up_to_the_limit_run(context):
    assert schema.execute_sync(_nested(3), context_value=context).errors is None  # 15 deep


def test_introspection_fits_within_the_defaults(context):
    result = schema.execute_sync(get_introspection_query(descriptions=True), context_value=context)
    assert result.errors is None


@override_settings(REVY_API={"GRAPHQL_MAX_ALIASES": 2, "GRAPHQL_MAX_DEPTH": None})
def test_limits_come_from_the_settings(context, superuser_request):
    assert _codes(
        schema.execute_sync(_aliases(3, superuser_request.book.pk), context_value=context)
    ) == ["QUERY_TOO_COMPLEX"]
    assert schema.execute_sync(_nested(4), context_value=context).errors is None


@override_settings(REVY_API={"GRAPHQL_MAX_TOKENS": 0})
def test_a_limit_that_is_no_positive_integer_is_a_configuration_error(context):
    with pytest.raises(ImproperlyConfigured, match="GRAPHQL_MAX_TOKENS"):
        limit("GRAPHQL_MAX_TOKENS")
    result = schema.execute_sync("{ __typename }", context_value=context)
    assert "GRAPHQL_MAX_TOKENS" in result.errors[0].message


def test_over_http_a_refusal_is_a_coded_error_and_reads_no_history(gql, django_user_model):
    gql.login(django_user_model.objects.create_superuser("root", password="x"))
    with Context():
        book = make_book()
    with count_queries() as queries:
        response = gql(_aliases(1_000, book.pk))
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    # The session and the user were read; history never was.
    assert not [sql for sql in queries.statements if "revy_" in sql]
