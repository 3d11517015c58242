"""The REST API on erased history: no errors, nothing erased shows."""

from __future__ import annotations

import pytest

from revy import Context
from revy.contrib.django import history
from revy.contrib.django.erasure import ERASED
from tests.factories import make_author, make_book, object_deltas

pytestmark = pytest.mark.django_db


@pytest.fixture
def erased(user):
    with Context(actor=user):
        author = make_author(name="Ann", email="ann@example.com")
        make_book(author=author, title="One")
    with Context(actor=user):
        author.name = "Anne"
        author.save()
    history.erase(actor=user, obj=author, reason="asked")
    return author


def test_rest_endpoints_serve_erased_history(admin_api, erased):
    first = object_deltas(erased)[0]
    urls = [
        "/api/deltas/",
        "/api/revisions/",
        "/api/changes/",
        f"/api/authors/{erased.pk}/history/",
        f"/api/authors/{erased.pk}/snapshot/?delta={first.pk}",
        f"/api/authors/{erased.pk}/diff/?since={first.revision_id}",
    ]
    for url in urls:
        response = admin_api.get(url)
        assert response.status_code == 200, (url, response.content)
        assert "ann@example.com" not in response.content.decode(), url
    deltas = admin_api.get("/api/deltas/", {"content_type": "testapp.author"}).json()["results"]
    # The erased actor reads as no actor; the values as the marker.
    assert {delta["actor"] for delta in deltas[1:]} == {None}
    export = b"".join(
        admin_api.get("/api/deltas/", HTTP_ACCEPT="application/x-ndjson").streaming_content
    )
    assert ERASED.encode() in export and b"Ann" not in export
