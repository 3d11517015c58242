"""The history admins and HistoryAdminMixin, through the admin's real views."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from revy import Context
from revy.contrib.django.admin import HistoryAdminMixin
from tests.factories import make_author, object_deltas
from tests.history_models import ObjectDelta, Revision
from tests.testapp.models import Book, Car, Cylinder, Engine

pytestmark = pytest.mark.django_db


def admin_url(model, view: str) -> str:
    opts = model._meta
    return f"admin:{opts.app_label}_{opts.model_name}_{view}"


class BookAdmin(HistoryAdminMixin, admin.ModelAdmin):
    pass


class CarAdmin(HistoryAdminMixin, admin.ModelAdmin):
    pass


@pytest.fixture(autouse=True)
def registered_admins():
    """Register the test ModelAdmins on the default site for the duration of a test."""
    from django.urls import clear_url_caches

    admin.site.register(Book, BookAdmin)
    admin.site.register(Car, CarAdmin)
    clear_url_caches()
    yield
    admin.site.unregister(Book)
    admin.site.unregister(Car)
    clear_url_caches()


def staff(*permissions: str):
    user = get_user_model().objects.create_user(
        f"staff{len(permissions)}", password="pw", is_staff=True
    )
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def superuser_client():
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return user, client


@pytest.fixture
def book():
    with Context(revision_description="Created"):
        created = Book.objects.create(author=make_author(), title="First", pages=10)
    with Context(revision_description="Retitled"):
        created.title = "Second"
        created.save()
    return created


def history_url(obj) -> str:
    return reverse("admin:testapp_book_history", args=[obj.pk])


def restore_url(obj, delta) -> str:
    return reverse("admin:testapp_book_revy_restore", args=[obj.pk, delta.pk])


def test_history_page_shows_each_change_with_its_diff(superuser_client, book):
    _, client = superuser_client
    response = client.get(history_url(book))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Retitled" in page and "Created" in page
    assert "<del>First</del>" in page and "<ins>Second</ins>" in page
    assert page.count('class="button revy-restore"') == 2


def test_restoring_a_version_is_a_post_recorded_as_the_users_revision(superuser_client, book):
    user, client = superuser_client
    created = object_deltas(book)[0]
    page = client.get(history_url(book))
    token = page.cookies["csrftoken"].value

    response = client.post(restore_url(book, created), {"csrfmiddlewaretoken": token})

    assert response.status_code == 302 and response.url == history_url(book)
    book.refresh_from_db()
    assert book.title == "First"
    last = object_deltas(book)[-1]
    assert last.action == "Update" and last.actor == user
    assert last.revision.description.startswith("Restored the version of")


def test_restore_without_a_csrf_token_is_refused(superuser_client, book):
    _, client = superuser_client
    response = client.post(restore_url(book, object_deltas(book)[0]))
    assert response.status_code == 403
    book.refresh_from_db()
    assert book.title == "Second"


def test_restore_by_get_is_not_allowed(superuser_client, book):
    _, client = superuser_client
    assert client.get(restore_url(book, object_deltas(book)[0])).status_code == 405


def test_view_only_staff_sees_history_without_restore_buttons_and_cannot_restore(book):
    _, client = staff("view_book")
    response = client.get(history_url(book))
    assert response.status_code == 200
    assert "revy-restore" not in response.content.decode()
    assert client.post(restore_url(book, object_deltas(book)[0])).status_code == 403
    book.refresh_from_db()
    assert book.title == "Second"


def test_staff_without_permissions_cannot_see_history(book):
    _, client = staff()
    assert client.get(history_url(book)).status_code == 403


def test_a_deleted_object_keeps_its_history_page_and_can_be_restored(superuser_client, book):
    _, client = superuser_client
    with Context():
        Book.objects.get(pk=book.pk).delete()
    deletion = object_deltas(book)[-1]
    page = client.get(history_url(book))
    assert page.status_code == 200
    assert "This object has been deleted" in page.content.decode()

    client.post(
        restore_url(book, deletion), {"csrfmiddlewaretoken": page.cookies["csrftoken"].value}
    )
    assert Book.objects.get(pk=book.pk).title == "Second"
    assert object_deltas(book)[-1].action == "Create"


def test_a_delta_of_another_object_cannot_be_restored_through_this_page(superuser_client, book):
    _, client = superuser_client
    other = Book.objects.create(author=book.author, title="Other")
    with Context():
        other.title = "Other 2"
        other.save()
    page = client.get(history_url(book))
    response = client.post(
        restore_url(book, object_deltas(other)[-1]),
        {"csrfmiddlewaretoken": page.cookies["csrftoken"].value},
    )
    assert response.status_code == 404


def test_history_page_includes_the_changes_of_aggregated_objects(superuser_client):
    _, client = superuser_client
    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        engine = Engine.objects.create(car=car)
        cylinder = Cylinder.objects.create(engine=engine, volume=400)
    with Context():
        cylinder.volume = 420
        cylinder.save()
    page = client.get(reverse("admin:testapp_car_history", args=[car.pk])).content.decode()
    assert "testapp.cylinder.updated" in page
    assert "<ins>420</ins>" in page
    # Only the car's own versions can be restored from its page.
    assert page.count("revy-restore") == 1


def test_revision_and_delta_admins_are_read_only_lists_with_filters(superuser_client, book):
    _, client = superuser_client
    revision = Revision.objects.order_by("id").first()
    delta = ObjectDelta.objects.order_by("id").first()

    changelist = client.get(reverse(admin_url(ObjectDelta, "changelist")) + "?action__exact=Update")
    assert changelist.status_code == 200
    assert "testapp.book.updated" in changelist.content.decode()
    assert client.get(reverse(admin_url(Revision, "changelist")) + "?q=Retitled").status_code == 200
    assert client.get(reverse(admin_url(Revision, "change"), args=[revision.pk])).status_code == 200
    detail = client.get(reverse(admin_url(ObjectDelta, "change"), args=[delta.pk]))
    assert detail.status_code == 200
    assert "Save" not in detail.content.decode().split("submit-row")[-1][:200]
    assert client.get(reverse(admin_url(ObjectDelta, "add"))).status_code == 403
    assert client.get(reverse(admin_url(Revision, "delete"), args=[revision.pk])).status_code == 403
