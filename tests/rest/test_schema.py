"""The OpenAPI document: up to date, and documenting every header, parameter and error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.test import override_settings

from example.api import contracts

pytestmark = pytest.mark.django_db

PROBLEM = {"$ref": "#/components/schemas/Problem"}
HEADERS = {"X-Commit-Message", "X-Perform-As-Organization", "X-Request-ID"}


@pytest.fixture(scope="module")
def generated() -> str:
    return contracts.openapi_yaml()


@pytest.fixture(scope="module")
def document(generated) -> dict:
    return yaml.safe_load(generated)


def test_checked_in_openapi_document_is_up_to_date():
    # Made by the demo itself: the document lists the models the demo installs (filters
    # take `app_label.model`), which are not those of the test suite.
    result = subprocess.run(
        [
            sys.executable,
            str(contracts.ROOT / "example" / "manage.py"),
            "export_contracts",
            "--check",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "example.project.settings"},
        check=False,
    )

    assert result.returncode == 0, (
        "openapi/openapi.yaml is stale; run `python example/manage.py export_contracts` and "
        f"commit the result. The differences:\n{result.stdout}{result.stderr}"
    )


def test_generation_is_deterministic(generated):
    assert contracts.openapi_yaml() == generated


def test_export_contracts_command_writes_and_checks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(contracts, "OPENAPI_SCHEMA", tmp_path / "openapi" / "openapi.yaml")
    monkeypatch.setattr(contracts, "GRAPHQL_SCHEMA", tmp_path / "schema" / "schema.graphql")
    with pytest.raises(Exception, match="stale"):
        call_command("export_contracts", "--check")

    call_command("export_contracts")
    call_command("export_contracts", "--check")

    assert (tmp_path / "openapi" / "openapi.yaml").read_text() == contracts.openapi_yaml()
    assert "up to date" in capsys.readouterr().out


def _operation(document, path, method):
    return document["paths"][path][method]


def _parameters(operation, where):
    return {parameter["name"] for parameter in operation["parameters"] if parameter["in"] == where}


def test_writes_of_the_mixins_document_the_revision_headers_and_reads_do_not(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if method == "get":  # reads record nothing
                assert not _parameters(operation, "header") & HEADERS, (method, path)
            else:
                assert _parameters(operation, "header") >= HEADERS, (method, path)


def test_writes_document_x_revision_id_and_reads_the_etag(document):
    create = _operation(document, "/api/transactions/", "post")
    retrieve = _operation(document, "/api/transactions/{id}/", "get")
    patch = _operation(document, "/api/transactions/{id}/", "patch")
    delete = _operation(document, "/api/transactions/{id}/", "delete")

    assert "X-Revision-Id" in create["responses"]["201"]["headers"]
    assert "X-Revision-Id" in delete["responses"]["204"]["headers"]
    assert set(patch["responses"]["200"]["headers"]) == {"X-Revision-Id", "ETag"}
    assert set(retrieve["responses"]["200"]["headers"]) == {"ETag"}


def test_history_actions_are_documented(document):
    history = _operation(document, "/api/cars/{id}/history/", "get")
    snapshot = _operation(document, "/api/cars/{id}/snapshot/", "get")
    diff = _operation(document, "/api/cars/{id}/diff/", "get")
    rollback = _operation(document, "/api/cars/{id}/rollback/", "post")

    assert {"aggregates", "cursor", "page_size"} <= _parameters(history, "query")
    assert history["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ObjectDeltaPage"
    }
    assert {"revision", "delta", "at"} == _parameters(snapshot, "query")
    assert snapshot["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Car"
    }
    assert {"since", "until"} == _parameters(diff, "query")
    assert "If-Match" in _parameters(rollback, "header")
    assert "dry_run" in _parameters(rollback, "query")
    assert rollback["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CarRollback"
    }
    assert set(rollback["responses"]) == {"200", "400", "401", "403", "404", "409", "412"}
    car_rollback = document["components"]["schemas"]["CarRollback"]["properties"]
    assert car_rollback["object"]["allOf"] == [{"$ref": "#/components/schemas/Car"}]


def test_global_endpoints_and_their_filters(document):
    revisions = _operation(document, "/api/revisions/", "get")
    deltas = _operation(document, "/api/deltas/", "get")
    revert = _operation(document, "/api/revisions/{id}/revert/", "post")
    filters = {"actor", "content_type", "object_id", "action", "event_type", "since", "until"}

    assert filters | {"search", "cursor", "page_size"} <= _parameters(revisions, "query")
    # /deltas/ is also an export: `format` chooses it in the query string.
    assert _parameters(revisions, "query") | {"format"} == _parameters(deltas, "query")
    assert {"application/x-ndjson", "text/csv"} <= set(deltas["responses"]["200"]["content"])
    changes = _operation(document, "/api/changes/", "get")
    assert {"after", "page_size", *filters} <= _parameters(changes, "query")
    assert revert["responses"]["409"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/ConflictProblem"
    }
    assert _operation(document, "/api/deltas/{id}/", "get")
    assert _operation(document, "/api/revisions/{id}/", "get")


def test_every_error_response_is_problem_details(document):
    statuses = set()
    for methods in document["paths"].values():
        for operation in methods.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    statuses.add(status)
                    assert set(response["content"]) == {"application/problem+json"}
    assert statuses == {"400", "401", "403", "404", "409", "412"}
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


def test_object_delta_and_revision_components(document):
    schemas = document["components"]["schemas"]

    assert set(schemas["ObjectDelta"]["properties"]) == {
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
    assert set(schemas["Revision"]["properties"]) == {
        "id",
        "description",
        "created_at",
        "actors",
        "delta_count",
    }
    assert set(schemas["RevisionDetail"]["properties"]) == set(
        schemas["Revision"]["properties"]
    ) | {"metadata", "deltas", "deltas_next"}


@override_settings(ROOT_URLCONF="example.project.urls", STATIC_URL="/static/")
def test_swagger_ui_is_served_from_local_assets(client):
    import drf_spectacular_sidecar

    with contracts.demo_api_settings():
        page = client.get("/api/docs/")
        schema = client.get("/api/schema/")

    assert page.status_code == 200
    html = page.content.decode()
    bundle = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert f'"/static/{bundle}"' in html
    assert (Path(drf_spectacular_sidecar.__file__).parent / "static" / bundle).is_file()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert schema.status_code == 200
    assert b"/api/revisions/" in schema.content


def test_in_a_project_without_the_problem_handler_errors_keep_both_formats():
    """The test project answers its viewsets' own errors in DRF's format."""
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator(urlconf="tests.urls").get_schema(request=None, public=True)
    create = document["paths"]["/api/authors/"]["post"]["responses"]["400"]["content"]
    rollback = document["paths"]["/api/authors/{id}/rollback/"]["post"]["responses"]

    # A bad header is problem details, invalid input is DRF's usual JSON.
    assert set(create) == {"application/problem+json", "application/json"}
    assert set(rollback["400"]["content"]) == {"application/problem+json"}
