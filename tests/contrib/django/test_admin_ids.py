"""Ids no row can have, in the URLs of `HistoryAdminMixin`'s pages: 404, not a server error.

The history page parsed the id with the primary key's `to_python()`, which raises for text
given to an integer key ("abc") and NUL characters: a 500 before.
"""

from __future__ import annotations

import pytest
from django.test import Client

# The demo's URLs (its admin registers the garage's cars): importing tests.urls here would fix
# the test project's admin URLs before test_admin.py registers its own ModelAdmins.
pytestmark = [pytest.mark.django_db, pytest.mark.urls("example.project.urls")]

HUGE = "99999999999999999999"


@pytest.fixture
def admin_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


@pytest.mark.parametrize("object_id", ["abc", "%00", "1.5", HUGE, "-1"])
def test_history_pages_of_ids_no_row_can_have_are_not_found(admin_client, object_id):
    assert admin_client.get(f"/admin/garage/car/{object_id}/history/").status_code == 404


@pytest.mark.parametrize(
    "path", ["abc/history/restore/1/", "%00/history/restore/1/", f"1/history/restore/{HUGE}/"]
)
def test_restores_of_ids_no_row_can_have_are_not_found(admin_client, path):
    assert admin_client.post(f"/admin/garage/car/{path}").status_code == 404
