"""URLs of the global history endpoints; `path("api/", include("revy_api.rest.urls"))`.

- `revisions/`, `revisions/{id}/`, `revisions/{id}/revert/`
- `deltas/`, `deltas/{id}/`
- `deleted/?content_type=app_label.model`
- `changes/`: every delta in commit order, from a cursor
"""

from rest_framework.routers import SimpleRouter

from revy_api.rest.views import ChangesViewSet, DeletedViewSet, DeltaViewSet, RevisionViewSet

__all__ = ["router", "urlpatterns"]


app_name = "revy_api"

router = SimpleRouter()
router.register("revisions", RevisionViewSet, basename="revision")
router.register("deltas", DeltaViewSet, basename="delta")
router.register("deleted", DeletedViewSet, basename="deleted")
router.register("changes", ChangesViewSet, basename="change")

urlpatterns = router.urls
