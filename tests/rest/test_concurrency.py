"""Concurrent requests by different users against a live server: no actor or revision leaks.

Each request runs in its own server thread; their writes interleave (the view pauses between
them). Every delta must carry its own request's actor and revision, and every revision its
own request's description and metadata.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from tests.factories import actor_ref
from tests.history_models import ObjectDelta, Revision
from tests.testapp.models import Note, Organization

pytestmark = pytest.mark.django_db(transaction=True)

USERS = 6
REQUESTS_PER_USER = 4


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: the live server's threads cannot share SQLite's in-memory "
            "test database, and SQLite serializes writers, so nothing would interleave"
        )


def _post(url: str, token: str, text: str, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode(),
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {
            "status": response.status,
            "revision": int(response.headers["X-Revision-Id"]),
            "body": json.loads(response.read()),
        }


def test_concurrent_requests_keep_their_own_actor_revision_and_metadata(live_server):
    users = [get_user_model().objects.create_user(f"user{n}", password="pw") for n in range(USERS)]
    tokens = {user.pk: Token.objects.create(user=user).key for user in users}
    acme = Organization.objects.create(slug="acme", name="ACME")
    acme.members.add(*users[::2])  # the even users act as ACME
    start = threading.Barrier(USERS)

    def work(user) -> list[tuple]:
        start.wait()  # all users at once
        results = []
        for number in range(REQUESTS_PER_USER):
            text = f"{user.username}-{number}"
            headers = {"X-Commit-Message": text, "X-Request-ID": f"req-{text}"}
            if user in users[::2]:
                headers["X-Perform-As-Organization"] = "acme"
            url = f"{live_server.url}/api/two-notes/?pause=0.02"
            results.append((user, text, _post(url, tokens[user.pk], text, headers)))
        return results

    with ThreadPoolExecutor(max_workers=USERS) as pool:
        outcomes = [item for result in pool.map(work, users) for item in result]

    assert len(outcomes) == USERS * REQUESTS_PER_USER
    assert len({outcome["revision"] for _, _, outcome in outcomes}) == len(outcomes)
    for user, text, outcome in outcomes:
        assert outcome["status"] == 201
        revision = Revision.objects.get(pk=outcome["revision"])
        assert revision.description == text
        assert revision.metadata == {
            "user": {"type": "auth.user", "id": str(user.pk)},
            "request_id": f"req-{text}",
        }
        expected = actor_ref(acme) if user in users[::2] else actor_ref(user)
        deltas = list(
            ObjectDelta.objects.filter(revision=revision)
            .order_by("id")
            .prefetch_related("children")
        )
        assert [delta.action for delta in deltas] == ["Create", "Create", "Update"]
        notes = set(
            Note.objects.filter(pk__in=outcome["body"]["ids"]).values_list("text", flat=True)
        )
        assert notes == {f"{text} first, edited", f"{text} second"}
        for delta in deltas:
            assert delta.content_id in {str(pk) for pk in outcome["body"]["ids"]}
            assert (delta.actor_type_id, delta.actor_id) == expected
            for child in delta.children.all():
                assert child.revision_id == revision.pk
                if child.field_name != "id":  # the pk is the database's
                    assert (child.actor_type_id, child.actor_id) == expected
    # The requests really ran at the same time: some revisions' deltas interleave.
    spans = sorted(
        (min(ids), max(ids))
        for ids in (
            list(ObjectDelta.objects.filter(revision_id=o["revision"]).values_list("id", flat=True))
            for _, _, o in outcomes
        )
    )
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    # Nothing was written outside those revisions.
    assert ObjectDelta.objects.filter(content_type__model="note").count() == 3 * len(outcomes)
