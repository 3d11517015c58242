"""The OpenAPI document is one client generators and stateful fuzzers can use.

Checked on the checked-in `openapi/openapi.yaml` (the demo's, proven current by
`test_schema.py`): readable operation ids, JSON bodies for revy's own operations, the
rollback body as a `oneOf`, 401 with its challenge, `Link` headers, a typed `metadata`,
examples, and OpenAPI links that all lead to operations of the document. And the API does
what the document says about them.
"""

from __future__ import annotations

import pytest
import yaml
from django.test import override_settings

from example.api import contracts
from example.garage.models import Car
from revy import Context
from tests.factories import make_book
from tests.rest.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(contracts.OPENAPI_SCHEMA.read_text())


def _operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_operation_ids_are_readable_and_unique(document):
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))
    assert {
        "listCars",
        "createCar",
        "getCar",
        "updateCar",
        "patchCar",
        "deleteCar",
        "getCarHistory",
        "getCarSnapshot",
        "getCarDiff",
        "rollbackCar",
        "listRevisions",
        "getRevision",
        "revertRevision",
        "listObjectDeltas",
        "getObjectDelta",
    } <= set(ids)
    assert all("_" not in operation_id for operation_id in ids)


def test_revys_own_operations_take_json_bodies_only(document):
    for path, _method, operation in _operations(document):
        if path.endswith(("/rollback/", "/revert/")):
            assert set(operation["requestBody"]["content"]) == {"application/json"}, path


def test_the_rollback_body_is_one_of_its_three_forms(document):
    body = document["paths"]["/api/cars/{id}/rollback/"]["post"]["requestBody"]
    assert body["required"] is True
    content = body["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/RollbackPoint"}
    assert set(content["examples"]) == {"ToRevision", "ToDelta", "ToMoment"}
    forms = document["components"]["schemas"]["RollbackPoint"]["oneOf"]
    assert [form["required"] for form in forms] == [["revision"], ["delta"], ["at"]]
    assert all(form["additionalProperties"] is False for form in forms)


def test_401_comes_with_its_challenge_and_403_as_well(document):
    responses = document["paths"]["/api/revisions/"]["get"]["responses"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "403" in responses


def test_pages_document_their_link_header(document):
    for path in ("/api/revisions/", "/api/deltas/", "/api/cars/", "/api/cars/{id}/history/"):
        assert "Link" in document["paths"][path]["get"]["responses"]["200"]["headers"], path


def test_metadata_is_typed(document):
    metadata = document["components"]["schemas"]["RevisionDetail"]["properties"]["metadata"]
    assert set(metadata["properties"]) == {"user", "request_id"}
    assert metadata["properties"]["user"]["required"] == ["type", "id"]


def test_parameters_allow_only_what_the_api_accepts(document):
    revisions = {
        p["name"]: p["schema"] for p in document["paths"]["/api/revisions/"]["get"]["parameters"]
    }
    assert revisions["page_size"] == {"type": "integer", "minimum": 1}
    assert "garage.car" in revisions["content_type"]["enum"]
    assert revisions["search"]["maxLength"] == 200
    snapshot = document["paths"]["/api/cars/{id}/snapshot/"]["get"]["parameters"]
    assert {p["name"]: p["schema"].get("minimum") for p in snapshot if p["in"] == "query"} == {
        "revision": 1,
        "delta": 1,
        "at": None,
    }


def test_links_walk_create_history_rollback_revert(document):
    ids = {operation["operationId"] for _, _, operation in _operations(document)}
    create = document["paths"]["/api/cars/"]["post"]["responses"]["201"]["links"]
    history = document["paths"]["/api/cars/{id}/history/"]["get"]["responses"]["200"]["links"]
    rollback = document["paths"]["/api/cars/{id}/rollback/"]["post"]["responses"]["200"]["links"]

    assert create["GetCreatedHistory"] == {
        "operationId": "getCarHistory",
        "parameters": {"id": "$response.body#/id"},
    }
    assert history["RollbackToLatestChange"]["operationId"] == "rollbackCar"
    assert history["RollbackToLatestChange"]["requestBody"] == {
        "delta": "$response.body#/results/0/id"
    }
    assert rollback["RevertRollback"]["operationId"] == "revertRevision"
    for _, _, operation in _operations(document):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ids


# The API does what the document says ---------------------------------------------------


def test_a_rollback_body_that_is_not_json_is_415(admin_api, superuser):
    with Context(actor=superuser):
        book = make_book()
    response = admin_api.post(f"/api/books/{book.pk}/rollback/", {"revision": "1"})  # multipart
    assert_problem(response, 415, "unsupported-media-type")


@override_settings(ROOT_URLCONF="example.project.urls")
def test_the_demo_api_refuses_a_multipart_body_with_415(admin_api):
    # Django's multipart parser reads a body without parts as an empty form: this PATCH was
    # answered 200, changing nothing, where the document asks for a JSON object (found by the
    # schema fuzzer, whose cases depend on the ids an earlier test left).
    car = Car.objects.create(manufacturer="Volkswagen")
    body = "--B\r\n-1.9138198166349723e+29--B--\r\n"
    with contracts.demo_api_settings():
        response = admin_api.generic(
            "PATCH", f"/api/cars/{car.pk}/", body, content_type="multipart/form-data; boundary=B"
        )
    assert_problem(response, 415, "unsupported-media-type")


@override_settings(ROOT_URLCONF="example.project.urls")
def test_a_url_no_endpoint_serves_is_a_404_problem_for_api_clients(admin_api):
    with contracts.demo_api_settings():
        assert_problem(admin_api.get("/api/cars/0.5/"), 404, "not-found")
        assert admin_api.get("/admin/nope/")["Content-Type"].startswith("text/html")


@override_settings(ROOT_URLCONF="example.project.urls")
def test_anonymous_clients_of_the_demo_get_401_with_a_challenge(client):
    with contracts.demo_api_settings():
        response = client.get("/api/revisions/")
    assert_problem(response, 401, "not-authenticated")
    assert response["WWW-Authenticate"] == "Token"
