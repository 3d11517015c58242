"""The demo in a real browser: admin history and restore, Swagger UI and GraphiQL.

Run with `python3 dev.py nox -s browser` (see conftest.py for what is needed).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import Console, log_in

pytestmark = pytest.mark.browser


def _own(url: str, live_server: Any) -> bool:
    return urlsplit(url).netloc == urlsplit(live_server.url).netloc


def test_admin_history_shows_the_diff_and_restores_a_version(
    page: Any, console: Console, demo: dict[str, Any]
) -> None:
    from revy.contrib.django.history import history_of

    volvo = demo["volvo"]
    created = history_of(volvo).get(action="Create")
    log_in(page)

    page.goto(f"/admin/garage/car/{volvo.pk}/history/")
    table = page.locator("#revy-history")
    rename = table.locator("tr.revy-delta", has_text="It is a GL")
    assert rename.locator(".revy-old del").inner_text() == "240"
    assert rename.locator(".revy-new ins").inner_text() == "240 GL"
    assert "bob" in rename.inner_text()
    # The engine's and cylinders' changes are part of the car's history (aggregates).
    assert table.locator("tr.revy-delta", has_text="garage.engine.updated").count() == 1
    assert table.locator("tr.revy-delta", has_text="garage.car.inspected").count() == 1

    page.click(f'tr.revy-delta[data-delta="{created.pk}"] a.revy-restore')
    # A preview first: the diff between now and that version, nothing written yet.
    page.wait_for_selector("#revy-preview")
    assert page.locator("#revy-preview .revy-old del").inner_text() == "240 GL"
    assert page.locator("#revy-preview .revy-new ins").inner_text() == "240"
    volvo.refresh_from_db()
    assert volvo.model == "240 GL"  # nothing written by the preview
    page.click("input.revy-confirm-restore")
    page.wait_for_url(f"**/admin/garage/car/{volvo.pk}/history/")
    assert "restored" in page.locator(".messagelist").inner_text()
    volvo.refresh_from_db()
    assert volvo.model == "240"
    restore = history_of(volvo).first()
    assert restore.action == "Update"
    assert restore.actor.username == "admin"
    assert restore.revision.description.startswith("Restored the version of")
    assert page.locator("tr.revy-delta").first.locator(".revy-new ins").inner_text() == "240"
    assert console.errors == []


def test_admin_restores_a_deleted_object(page: Any, console: Console, demo: dict[str, Any]) -> None:
    from example.garage.models import Car
    from tests.history_models import ObjectDelta

    deletion = ObjectDelta.objects.get(event_type="garage.car.deleted")
    log_in(page)

    page.goto(f"/admin/garage/car/{deletion.content_id}/history/")
    assert "This object has been deleted" in page.locator("#content-main").inner_text()
    page.click(f'tr.revy-delta[data-delta="{deletion.pk}"] a.revy-restore')
    page.click("input.revy-confirm-restore")
    page.wait_for_selector(".messagelist")
    trabant = Car.objects.get(pk=deletion.content_id)
    assert (trabant.manufacturer, trabant.model) == ("Trabant", "601")
    assert console.errors == []


def test_admin_recovers_a_deleted_car_with_its_engine_and_cylinders(
    page: Any, console: Console, demo: dict[str, Any], screenshots: Any
) -> None:
    from example.garage.models import Car, Cylinder, Engine
    from revy.contrib.django.history import history_of
    from tests.history_models import ObjectDelta

    deletion = ObjectDelta.objects.get(event_type="garage.car.deleted")
    log_in(page)
    page.goto("/admin/garage/car/")
    page.click("a.revy-deleted-link")
    page.wait_for_selector("#revy-deleted")
    row = page.locator("tr.revy-deleted-row", has_text="Trabant 601")
    assert "alice" in row.inner_text() and "Scrap the Trabant" in row.inner_text()
    screenshots(page, "recover-1-deleted-list")

    row.locator("a.revy-recover").click()
    page.wait_for_selector("#revy-preview")
    preview = page.locator("#revy-preview")
    # The car, its engine and its two cylinders, re-created in one revision.
    assert preview.locator("tr.revy-write-add").count() == 4
    assert "Engine of Trabant 601" in preview.inner_text()
    assert Car.objects.filter(pk=deletion.content_id).count() == 0
    screenshots(page, "recover-2-preview")

    page.click("input.revy-confirm-restore")
    page.wait_for_selector(".messagelist")
    assert "with 3 rows its deletion took along" in page.locator(".messagelist").inner_text()
    trabant = Car.objects.get(pk=deletion.content_id)
    engine = Engine.objects.get(car=trabant)
    assert sorted(Cylinder.objects.filter(engine=engine).values_list("position", flat=True)) == [
        1,
        2,
    ]
    recovery = history_of(trabant).first().revision
    assert recovery.object_deltas.filter(action="Create").count() == 4
    screenshots(page, "recover-3-history")
    assert console.errors == []


def test_admin_reverts_a_revision_after_its_preview(
    page: Any, console: Console, demo: dict[str, Any], screenshots: Any
) -> None:
    from example.garage.models import Cylinder, Engine

    volvo = demo["volvo"]
    log_in(page)
    page.goto(f"/admin/garage/car/{volvo.pk}/history/")
    page.locator("tr.revy-delta", has_text="Fleet policy: diesel engines").first.locator(
        "a.revy-revision"
    ).click()
    page.wait_for_selector("#revy-revision-changes")
    assert "Fleet policy: diesel engines" in page.locator(".revy-description").inner_text()
    assert page.locator("#revy-revision-changes tr.revy-delta").count() == 5
    screenshots(page, "revert-1-revision")

    page.click("a.revy-revert")
    page.wait_for_selector("#revy-preview")
    changes = page.locator("#revy-preview tr.revy-write-change")
    assert changes.count() == 5
    fuel = changes.filter(has_text="diesel")
    assert fuel.count() == 1 and fuel.locator(".revy-new ins").inner_text() == "petrol"
    assert page.locator("#revy-conflicts").count() == 0
    assert Engine.objects.get(car=volvo).fuel == "diesel"  # nothing written by the preview
    screenshots(page, "revert-2-preview")

    page.click("input.revy-confirm-revert")
    page.wait_for_selector(".messagelist")
    assert "was reverted" in page.locator(".messagelist").inner_text()
    engine = Engine.objects.get(car=volvo)
    assert engine.fuel == "petrol"
    assert set(Cylinder.objects.filter(engine=engine).values_list("volume_cc", flat=True)) == {580}
    screenshots(page, "revert-3-undo")
    assert console.errors == []


def test_admin_history_diffs_wrap_on_a_narrow_screen(
    page: Any, console: Console, demo: dict[str, Any], screenshots: Any
) -> None:
    from example.garage.models import Car
    from revy import Context

    with_long_name = Car.objects.get(pk=demo["volvo"].pk)
    with Context(revision_description="A long name"):
        with_long_name.model = "GL-" + "x" * 45
        with_long_name.save()
    page.set_viewport_size({"width": 375, "height": 800})
    log_in(page)
    page.goto(f"/admin/garage/car/{with_long_name.pk}/history/")
    page.wait_for_selector("#revy-history")
    screenshots(page, "history-narrow")
    assert console.errors == []


def test_admin_edit_is_recorded_with_the_user_as_actor(
    page: Any, console: Console, demo: dict[str, Any]
) -> None:
    from revy.contrib.django.history import history_of

    volvo = demo["volvo"]
    log_in(page, "alice", "alice")
    page.goto(f"/admin/garage/car/{volvo.pk}/change/")
    page.fill("#id_model", "245")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/garage/car/")

    delta = history_of(volvo).first()
    assert delta.actor.username == "alice"
    assert {child.field_name: child.new_value for child in delta.children.all()} == {"model": "245"}
    assert console.errors == []


def test_swagger_ui_renders_from_local_assets(
    page: Any, console: Console, live_server: Any, demo: dict[str, Any]
) -> None:
    response = page.goto("/api/docs/")
    assert response.status == 200
    page.wait_for_selector(".swagger-ui .info .title")
    assert "revy demo API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/revisions/" in path for path in paths)
    assert any("rollback" in path for path in paths)
    assert console.errors == []
    assert console.failed == []
    assert console.http_errors == []
    # Swagger UI is served by the project itself (drf-spectacular-sidecar), no CDN.
    loaded = page.evaluate("() => performance.getEntriesByType('resource').map((e) => e.name)")
    assert any(url.endswith("swagger-ui-bundle.js") for url in loaded), loaded
    assert [url for url in loaded if not _own(url, live_server)] == []


def test_graphiql_renders_from_local_assets_and_runs_a_query(
    page: Any, console: Console, live_server: Any, demo: Any
) -> None:
    """GraphiQL's scripts are the project's own static files: no CDN, no console errors."""
    outside: list[str] = []

    def block_other_origins(route: Any) -> None:
        if _own(route.request.url, live_server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", block_other_origins)
    log_in(page)
    response = page.goto("/graphql/")
    assert response.status == 200
    page.wait_for_selector(".graphiql-container")
    page.click(".graphiql-execute-button")
    result = page.locator(".graphiql-response")
    result.locator("text=Scrap the Trabant").wait_for()
    assert "errors" not in result.inner_text()
    assert outside == []
    assert console.errors == []
    assert console.failed == []
    assert console.http_errors == []
